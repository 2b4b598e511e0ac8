"""How far this project's input pipeline is from what the notebooks computed, measured.

The notebooks resized and RandAugmented PIL images; this project's uint8 tensor kernels are
pixel-exact to torchvision's tensor kernels (tests/test_augment.py), which differ a little from
PIL's. Measured for the resize and each RandAugment operation and sign, at the run's sizes and
magnitude. (RandomErasing and normalisation ran on tensors in the notebooks too.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF  # noqa: N812
from torchvision.transforms.autoaugment import _apply_op

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.data.augment import OPS, apply_op, op_table
from convnext_tinyimagenet.data.store import make_synthetic
from convnext_tinyimagenet.data.transforms import resize_uint8
from convnext_tinyimagenet.report.tables import save_table

IMAGES = 32  # half uniform noise (the worst case for rounding), half synthetic class images


def source_images(image_size: int, n: int = IMAGES, seed: int = 0) -> np.ndarray:
    """Deterministic uint8 images (n, H, W, 3): uniform noise, then synthetic class images."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (n // 2, image_size, image_size, 3), dtype=np.uint8)
    train, _, _ = make_synthetic(n - n // 2, 1, 1, image_size, 0.0, 0.25, seed)
    return np.concatenate([noise, np.asarray(train.images)])


def _differences(ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    diff = (ours.int() - theirs.int()).abs()
    return {
        "pixels_differing_pct": 100.0 * float((diff > 0).double().mean()),
        "pixels_over_one_pct": 100.0 * float((diff > 1).double().mean()),
        "mean_abs_diff": float(diff.double().mean()),
        "max_abs_diff": int(diff.max()),
    }


def measure(image_size: int, input_size: int, randaugment: dict | None, n: int = IMAGES,
            seed: int = 0) -> dict:  # fmt: skip
    """Our resize and RandAugment kernels against PIL's on `n` images of side `image_size`,
    resized to `input_size`: per step, the share of channel values that differ (%), their mean
    and largest absolute difference in grey levels."""
    sources = source_images(image_size, n, seed)
    pil = [Image.fromarray(a).resize((input_size, input_size), Image.BILINEAR) for a in sources]
    pil_tensors = torch.stack([TF.pil_to_tensor(im) for im in pil])
    ours = resize_uint8(torch.from_numpy(sources).permute(0, 3, 1, 2).contiguous(), input_size)
    result: dict = {"images": n, "image_size": image_size, "input_size": input_size,
                    "resize": _differences(ours, pil_tensors), "randaugment": randaugment,
                    "ops": []}  # fmt: skip
    if randaugment:
        table = op_table(int(randaugment["num_ops"]), int(randaugment["magnitude"]), 31,
                         input_size, input_size)  # fmt: skip
        result["ops"] = _op_differences(pil, pil_tensors, table)
    return result


def _op_differences(pil: list, pil_tensors: torch.Tensor, table: dict) -> list[dict]:
    """Per operation and sign: ours against torchvision's PIL kernel, on the same images."""
    rows = []
    for op in OPS:
        value, signed = table[op]
        for negated in (False, True) if signed else (False,):
            # both start from PIL's resized image: only the operation's kernels differ
            augmented = apply_op(pil_tensors, op, negated, table)
            v = -value if negated else value
            theirs = [_apply_op(im, op, v, InterpolationMode.NEAREST, None) for im in pil]
            theirs = torch.stack([TF.pil_to_tensor(im) for im in theirs])
            sign = "-" if negated else ("+" if signed else "")
            rows.append({"op": op, "sign": sign, **_differences(augmented, theirs)})
    return rows


def fidelity_frame(result: dict) -> pd.DataFrame:
    """Per step (the resize, each operation and sign): how often and how far ours differs."""
    steps = [("Resize (bilinear)", result["resize"])]
    steps += [(f"RandAugment {r['op']}" + (" (negated)" if r["sign"] == "-" else ""), r)
              for r in result["ops"]]  # fmt: skip
    rows = [(step, f"{r['pixels_differing_pct']:.2f}", f"{r['mean_abs_diff']:.3f}",
             int(r["max_abs_diff"])) for step, r in steps]  # fmt: skip
    columns = ["Step", "Values differing (%)", "Mean difference", "Largest difference"]
    return pd.DataFrame(rows, columns=columns)


def summary(result: dict) -> dict:
    """What the paper says about it: operations identical to PIL's; of those that differ by at
    most one grey level, the largest share of values that differ; of those that differ by more,
    which they are and the largest share of values that differ by more than one level."""
    ops = {r["op"] for r in result["ops"]}
    inexact = {r["op"] for r in result["ops"] if r["max_abs_diff"] > 0}  # in one sign or both
    rounding = [r for r in result["ops"] if r["max_abs_diff"] == 1]
    larger = [r for r in result["ops"] if r["max_abs_diff"] > 1]
    return {
        "ops": len(ops),
        "exact_ops": len(ops - inexact),
        "rounding_ops": sorted({r["op"] for r in rounding}),
        "rounding_max_pct": max((r["pixels_differing_pct"] for r in rounding), default=0.0),
        "larger_ops": sorted({r["op"] for r in larger}),
        "larger_max_pct": max((r["pixels_over_one_pct"] for r in larger), default=0.0),
    }


def measure_input_fidelity(json_path: Path, md: Path, tex: Path, *, image_size: int,
                           input_size: int, augment: Mapping) -> list[Path]:  # fmt: skip
    """Write the measurement (with its :func:`summary`) as JSON and as the paper's table.

    `augment` maps experiments to their `augment` sections; the first with a RandAugment sets
    the operations compared (none: only the resize).
    """
    augmented = [a for a in augment.values() if (a or {}).get("randaugment")]
    randaugment = augmented[0]["randaugment"] if augmented else None
    result = measure(int(image_size), int(input_size), randaugment)
    # The kernels are compared where the notebooks applied them, after the resize. A build with
    # `augment.at: source` augments before it instead: another computation (documented), which
    # this comparison does not describe.
    result["augment_at"] = augmented[0].get("at", "input") if augmented else None
    result["summary"] = summary(result)
    written = atomic.write_json(json_path, result)
    return [written, *save_table(fidelity_frame(result), md, tex, align="lrrr")]
