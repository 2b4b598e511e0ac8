"""Benchmark: the published notebooks' pipeline against this project's, on the same machine.

`python -m convnext_tinyimagenet bench` measures, in one process, on synthetic data:

* data loading alone (images/s): (a) the reference, what the notebooks ran (PIL images through
  torchvision transforms in a DataLoader with 2 workers, batch 32), and (b) this project's
  loaders (uint8 store, per-image RandAugment only where the recipe has it, resize, normalise
  and erasing per batch on the training device);
* whole training steps of each run (images/s): the improved run with each data path feeding
  the same model step, and the baseline end to end over its epochs with the full forward every
  epoch (reference) or the feature cache (ours: one forward pass, then head-only epochs).

It prints a table with the machine, versions, sizes and n, and writes the same as JSON. Small
sizes run on a CPU in about a minute (the test suite runs it, asserting nothing about time); the
defaults of a GPU run are the paper's sizes.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T  # noqa: N812

from . import atomic, features, provenance
from .data import Split, Store, make_synthetic
from .models import configure_trainable, create_model
from .training import (
    autocast,
    effective_precision,
    make_loader,
    make_scaler,
    seed_everything,
    train_one_epoch,
)
from .transforms import Pipeline


@dataclass(frozen=True)
class BenchSizes:
    """What one benchmark run measures (all counts are images unless named otherwise)."""

    num_classes: int = 10
    train_per_class: int = 32
    val_per_class: int = 8
    input_size: int = 64
    batch_size: int = 32
    loader_batches: int = 10  # batches timed for data loading alone
    step_batches: int = 4  # batches timed for training steps
    baseline_epochs: int = 3  # epochs of the baseline end-to-end comparison
    workers: int = 2  # the notebooks' num_workers


SIZES = {
    "small": BenchSizes(),
    # 224x224 like the paper; 10,000 train images keep the reference's full-forward epochs short
    "gpu": BenchSizes(
        num_classes=200,
        train_per_class=50,
        val_per_class=5,
        input_size=224,
        loader_batches=100,
        step_batches=50,
        baseline_epochs=2,
    ),
}


class PILDataset(Dataset):
    """The notebooks' input path: a PIL image per item, torchvision transforms on it."""

    def __init__(self, split: Split, transform: Callable) -> None:
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(np.asarray(self.split.images[index]))
        return self.transform(image), int(self.split.labels[index])


def reference_transform(cfg: dict, experiment: dict, size: int) -> Callable:
    """The notebook's Compose for training (published order)."""
    mean, std = cfg["normalize"]["mean"], cfg["normalize"]["std"]
    steps: list = [T.Resize((size, size))]
    augment = experiment["augment"]
    if augment["randaugment"]:
        steps.append(T.RandAugment(**augment["randaugment"]))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    if augment["random_erasing"]:
        steps.append(T.RandomErasing(**augment["random_erasing"]))
    return T.Compose(steps)


def _rate(batches: Iterable, limit: int, consume: Callable) -> tuple[float, int]:
    """Images per second over the first `limit` batches (after one warm-up batch)."""
    iterator = iter(batches)
    consume(next(iterator))
    seen, start = 0, time.perf_counter()
    for i, batch in enumerate(iterator):
        if i >= limit:
            break
        seen += consume(batch)
    return seen / (time.perf_counter() - start), seen


def _store(sizes: BenchSizes) -> Store:
    train, val, classes = make_synthetic(
        sizes.num_classes, sizes.train_per_class, sizes.val_per_class, 64, 0.02, 0.25, 0
    )
    return Store(train, val, classes, "bench", {"source": "synthetic"})


def _loaders(cfg, name, store, sizes) -> tuple[DataLoader, DataLoader, Pipeline]:
    """The reference and our training loaders of one experiment, and our batch pipeline."""
    exp = cfg["experiments"][name]
    reference = DataLoader(
        PILDataset(store.train, reference_transform(cfg, exp, sizes.input_size)),
        batch_size=sizes.batch_size,
        shuffle=True,
        num_workers=sizes.workers,
    )
    pipeline = Pipeline.from_config(cfg, exp)
    per_image = pipeline.per_image(train=True)
    ours = make_loader(
        store.train,
        sizes.batch_size,
        shuffle=True,
        per_image=per_image,
        num_workers=sizes.workers if per_image else 0,  # workers only pay for per-image work
    )
    return reference, ours, pipeline


def bench_loading(cfg, name, store, sizes, device) -> dict:
    """Data loading alone, reference vs ours, for one experiment's training transforms."""
    reference, ours, pipeline = _loaders(cfg, name, store, sizes)
    ref_rate, n_ref = _rate(reference, sizes.loader_batches, lambda b: len(b[0].to(device)))
    our_rate, n_ours = _rate(
        ours, sizes.loader_batches, lambda b: len(pipeline.batch(b[0].to(device), train=True))
    )
    return {"what": f"{name}: data loading", "reference": ref_rate, "ours": our_rate,
            "n": min(n_ref, n_ours)}  # fmt: skip


def _model(cfg, name, num_classes, device):
    exp = cfg["experiments"][name]
    model = create_model({**exp["model"], "pretrained": False, "pretrained_file": None},
                         num_classes).to(device)  # fmt: skip
    optimizer = torch.optim.AdamW(configure_trainable(model, exp["trainable"]))
    return model, optimizer


def bench_improved_steps(cfg, store, sizes, device) -> dict:
    """Improved run: whole training steps fed by each data path (same model and step)."""
    name, exp = "improved", cfg["experiments"]["improved"]
    precision = effective_precision(exp["train"]["precision"], device)
    criterion = nn.CrossEntropyLoss(label_smoothing=exp["train"]["label_smoothing"])
    model, optimizer = _model(cfg, name, len(store.classes), device)
    ref, ours, pipeline = _loaders(cfg, name, store, sizes)

    def step(x, y):
        with autocast(precision, device):
            loss = criterion(model(x), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return len(y)

    ref_rate, n = _rate(ref, sizes.step_batches, lambda b: step(b[0].to(device), b[1]))
    our_rate, _ = _rate(
        ours, sizes.step_batches,
        lambda b: step(pipeline.batch(b[0].to(device), train=True), b[1]),
    )  # fmt: skip
    return {"what": "improved: training steps", "reference": ref_rate, "ours": our_rate, "n": n}


def bench_baseline_end_to_end(cfg, store, sizes, device) -> dict:
    """Baseline over its epochs: full forward each epoch (reference) vs the feature cache."""
    exp = cfg["experiments"]["baseline"]
    precision = effective_precision(exp["train"]["precision"], device)
    criterion = nn.CrossEntropyLoss()
    pipeline = Pipeline.from_config(cfg, exp)
    images = sizes.baseline_epochs * len(store.train.labels)

    seed_everything(0)
    model, optimizer = _model(cfg, "baseline", len(store.classes), device)
    scaler = make_scaler(precision, device)
    start = time.perf_counter()
    for _ in range(sizes.baseline_epochs):
        loader = make_loader(store.train, sizes.batch_size, shuffle=True)
        train_one_epoch(model, loader, optimizer, criterion, pipeline, device, precision, scaler)
    reference = images / (time.perf_counter() - start)

    seed_everything(0)
    model, optimizer = _model(cfg, "baseline", len(store.classes), device)
    start = time.perf_counter()
    feats = features.extract(model, store.train, pipeline, device, precision, sizes.batch_size)
    split = features.feature_split(feats, store.train)
    scaler = make_scaler(precision, device)
    for _ in range(sizes.baseline_epochs):
        loader = make_loader(split, sizes.batch_size, shuffle=True)
        train_one_epoch(
            model, loader, optimizer, criterion, features.FeaturePipeline(), device, precision,
            scaler, forward=model.forward_head,
        )  # fmt: skip
    ours = images / (time.perf_counter() - start)
    return {"what": f"baseline: {sizes.baseline_epochs} epochs end to end", "reference": reference,
            "ours": ours, "n": images}  # fmt: skip


def run_bench(cfg: dict, sizes: BenchSizes, device: torch.device) -> dict:
    """Every measurement, with the conditions they were taken under."""
    cfg = {**cfg, "data": {**cfg["data"], "input_size": sizes.input_size}}
    store = _store(sizes)
    rows = [
        bench_loading(cfg, "baseline", store, sizes, device),
        bench_loading(cfg, "improved", store, sizes, device),
        bench_improved_steps(cfg, store, sizes, device),
        bench_baseline_end_to_end(cfg, store, sizes, device),
    ]
    for row in rows:
        row["ratio"] = row["ours"] / row["reference"]
    return {
        "machine": provenance.device_info(device) | {"host_cpu": platform.processor()},
        "versions": provenance.versions(),
        "sizes": asdict(sizes),
        "rows": rows,
        "when": provenance.now(),
    }


def format_table(result: dict) -> str:
    """The result as a Markdown table with its conditions."""
    sizes = result["sizes"]
    lines = [
        f"device: {result['machine']['name']} ({result['machine']['device']}), "
        f"{result['machine']['cpu_count']} CPUs; torch {result['versions']['torch']}, "
        f"timm {result['versions']['timm']}",
        f"input {sizes['input_size']}x{sizes['input_size']}, batch {sizes['batch_size']}, "
        f"{sizes['num_classes']} classes x {sizes['train_per_class']} train images, "
        f"{sizes['workers']} loader workers",
        "",
        "| measurement | reference (images/s) | ours (images/s) | ours / reference | n |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['what']} | {row['reference']:.1f} | {row['ours']:.1f} | "
            f"{row['ratio']:.2f}x | {row['n']} |"
        )
    return "\n".join(lines)


def write_result(result: dict, path) -> None:
    atomic.write_json(path, result)
