"""Benchmark: the published notebooks' pipeline against this project's, on the same machine.

    python benchmarks/bench.py [--size small|gpu] [--device auto|cpu|cuda] [--out PATH]
        [--config FILE] [--set KEY=VALUE]

A developer's tool beside the package: no result of the workflow depends on it.

On synthetic data, in one process: (a) the reference, what the notebooks ran (PIL images through
torchvision transforms in a DataLoader with 2 workers, batch 32, the full network every epoch);
(b) this project's pipeline as the config sets it up (uint8 store on the device, per-batch
augmentation there, channels-last network, the wider evaluation batch, the baseline's feature
cache). From the rates it projects a full reproduction at the published epoch counts. Small sizes
run on a CPU in a minute or two; `--size gpu` uses the paper's 224x224 input.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T  # noqa: N812

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.config import load_config
from convnext_tinyimagenet.data.store import Split, Store, make_synthetic
from convnext_tinyimagenet.data.transforms import Pipeline
from convnext_tinyimagenet.train import engine, features, provenance
from convnext_tinyimagenet.train.models import configure_trainable, create_model
from convnext_tinyimagenet.train.runner import (
    configure_performance,
    make_forward,
    resolve_device,
)

TRAIN_IMAGES, VAL_IMAGES = 100_000, 10_000  # TinyImageNet, for the projection


@dataclass(frozen=True)
class BenchSizes:
    """What one benchmark run measures (all counts are images unless named otherwise)."""

    num_classes: int = 10
    train_per_class: int = 64
    val_per_class: int = 16
    input_size: int = 64
    batch_size: int = 32
    loader_passes: int = 4  # whole passes over the train split timed for data loading
    step_batches: int = 6  # batches timed for training steps and for validation
    baseline_epochs: int = 6  # the published baseline ran 6 epochs
    workers: int = 2  # the notebooks' num_workers


SIZES = {
    "small": BenchSizes(),
    # 224x224 like the paper; 10,000 train + 1,000 val images keep the reference's epochs short
    "gpu": BenchSizes(num_classes=200, train_per_class=50, val_per_class=5, input_size=224,
                      loader_passes=1, step_batches=60, baseline_epochs=6),
}  # fmt: skip
WHO = ("reference", "ours")  # the notebooks' pipeline, and this project's


class PILDataset(Dataset):
    """The notebooks' input path: a PIL image per item, torchvision transforms on it."""

    def __init__(self, split: Split, transform: Callable) -> None:
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(np.asarray(self.split.images[index]))
        return self.transform(image), int(self.split.labels[index])


def reference_transform(cfg: dict, experiment: dict | None, size: int) -> Callable:
    """The notebook's Compose: training transforms of `experiment`, or validation (None)."""
    mean, std = cfg["normalize"]["mean"], cfg["normalize"]["std"]
    steps: list = [T.Resize((size, size))]
    augment = experiment["augment"] if experiment else {}
    if augment.get("randaugment"):
        steps.append(T.RandAugment(**augment["randaugment"]))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    if augment.get("random_erasing"):
        steps.append(T.RandomErasing(**augment["random_erasing"]))
    return T.Compose(steps)


def _loader(who: str, cfg, name, split, sizes, device, *, train: bool):
    """`who`'s loader of one experiment's training (`train`) or validation split: as the
    notebooks built it (2 workers, batch 32), or as a run configures ours."""
    exp, perf = cfg["experiments"][name], cfg["performance"]
    if who == "reference":
        transform = reference_transform(cfg, exp if train else None, sizes.input_size)
        return DataLoader(PILDataset(split, transform), batch_size=sizes.batch_size,
                          shuffle=train, num_workers=sizes.workers)  # fmt: skip
    pipeline = Pipeline.from_config(cfg, exp)
    split = engine.resident(split, device, perf["resident_data"])
    if not train:
        return engine.BatchLoader(split, exp["train"]["eval_batch_size"], shuffle=False,
                                  transform=pipeline.eval_transform(), device=device)  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    return engine.BatchLoader(split, exp["train"]["batch_size"], shuffle=True, generator=generator,
                              transform=pipeline.train_transform(len(split), generator),
                              device=device, chunk_batches=perf["chunk_batches"])  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_seconds() -> float:
    """CPU time of this process and of its joined children (loader workers; 10 ms ticks)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def loading_rate(make: Callable[[], Iterable], passes: int, device: torch.device) -> dict:
    """Images/s and images per CPU-second over whole passes of a fresh loader each (its workers
    started and joined within the pass, as in each notebook epoch), after one untimed pass."""
    for _ in make():  # warm-up
        pass
    seen, cpu, wall = 0, _cpu_seconds(), time.perf_counter()
    for _ in range(passes):
        for batch in make():  # a DataLoader joins its workers when the pass ends
            seen += len(batch[0])
        _sync(device)
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    return {"rate": seen / wall, "per_cpu_second": seen / max(cpu, 1e-6), "n": seen}


def step_rate(batches: Iterable, limit: int, step: Callable, device: torch.device,
              warmup: int = 1) -> dict:  # fmt: skip
    """Rate (images/s) and n of `step(x, y)` over at most `limit` batches after `warmup` untimed
    ones; whole chunks of our loader put each chunk's preparation inside the timing."""
    iterator = iter(batches)
    for _ in range(warmup):
        step(*next(iterator)[:2])
    _sync(device)
    seen, start = 0, time.perf_counter()
    for i, batch in enumerate(iterator):
        if i >= limit:
            break
        seen += step(*batch[:2])
    _sync(device)
    return {"rate": seen / (time.perf_counter() - start), "n": seen}


def _model(cfg, name, num_classes, device, ours: bool):
    exp = cfg["experiments"][name]
    model = create_model({**exp["model"], "pretrained": False, "pretrained_file": None},
                         num_classes).to(device)  # fmt: skip
    if ours and cfg["performance"]["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(configure_trainable(model, exp["trainable"]))
    forward = make_forward(model, cfg["performance"]) if ours else model
    return model, optimizer, forward


def bench_loading(cfg, name, store, sizes, device) -> dict:
    """Data loading alone, reference vs ours, for one experiment's training transforms."""
    rates = {}
    for who in WHO:
        make = functools.partial(_loader, who, cfg, name, store.train, sizes, device, train=True)
        rates[who] = loading_rate(make, sizes.loader_passes, device)
    return _row(f"{name}: data loading", rates)


def _row(what: str, rates: dict) -> dict:
    """A row of the table from the reference's and our measurement."""
    ref, ours = rates["reference"], rates["ours"]
    row = {"what": what, "reference": ref["rate"], "ours": ours["rate"], "n": ours["n"]}
    if "per_cpu_second" in ref:
        row["reference_per_cpu_second"] = ref["per_cpu_second"]
        row["ours_per_cpu_second"] = ours["per_cpu_second"]
    return row


def _improved_step_rate(cfg, store, sizes, device, who: str, precision: str) -> dict:
    """Images/s of whole improved-run training steps, fed by `who`'s pipeline (its own model)."""
    name, exp = "improved", cfg["experiments"]["improved"]
    criterion = nn.CrossEntropyLoss(label_smoothing=exp["train"]["label_smoothing"])
    engine.seed_everything(0)
    _, optimizer, forward = _model(cfg, name, len(store.classes), device, who == "ours")
    scaler = engine.make_scaler(precision, device)  # None in the published fp32

    def step(x, y):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with engine.autocast(precision, device):
            loss = criterion(forward(x), y)
        engine.backward_step(loss, optimizer, scaler)
        return len(y)

    loader = _loader(who, cfg, name, store.train, sizes, device, train=True)
    chunk = max(1, min(int(cfg["performance"]["chunk_batches"]), len(loader) // 2))
    limit = -(-sizes.step_batches // chunk) * chunk  # whole chunks
    return step_rate(loader, limit, step, device, warmup=chunk)


# The faster precisions the config offers for the improved run (they change its numerics, so
# they are options, off by default), measured beside the published fp32 on a GPU.
STEP_OPTIONS = {
    "TF32 matmuls": ("high", "fp32"),  # performance.float32_matmul_precision: high
    "bf16 autocast": ("highest", "bf16"),  # experiments.improved.train.precision: bf16
}


def bench_improved_steps(cfg, store, sizes, device, options: bool) -> list[dict]:
    """Improved run: whole training steps, each pipeline feeding its own model; with `options`,
    ours also under each of :data:`STEP_OPTIONS`, against the same (fp32) reference rate."""
    precision = cfg["experiments"]["improved"]["train"]["precision"]
    precision = engine.effective_precision(precision, device)
    rates = {who: _improved_step_rate(cfg, store, sizes, device, who, precision) for who in WHO}
    rows = [_row("improved: training steps", rates)]
    previous = torch.get_float32_matmul_precision()
    for label, (matmul, precision) in STEP_OPTIONS.items() if options else ():
        torch.set_float32_matmul_precision(matmul)
        try:
            rates["ours"] = _improved_step_rate(cfg, store, sizes, device, "ours", precision)
        finally:
            torch.set_float32_matmul_precision(previous)
        what = f"improved: training steps, {label} (option, other numerics)"
        rows.append(_row(what, rates) | {"option": label})
    return rows


def bench_validation(cfg, store, sizes, device) -> dict:
    """Validation forward passes of the improved network (fp32): batch 32 vs eval batch."""
    rates = {}
    for who in WHO:
        model, _, forward = _model(cfg, "improved", len(store.classes), device, who == "ours")
        model.eval()

        @torch.no_grad()
        def step(x, y, forward=forward):
            forward(x.to(device, non_blocking=True)).argmax(1).to(y.device)
            return len(y)

        loader = _loader(who, cfg, "improved", store.val, sizes, device, train=False)
        passes = max(1, sizes.step_batches * sizes.batch_size // len(store.val.labels))
        batches = itertools.chain.from_iterable(itertools.repeat(loader, passes + 1))
        rates[who] = step_rate(batches, 10**9, step, device)
    return _row("validation: forward passes", rates)


def bench_baseline_end_to_end(cfg, store, sizes, device) -> dict:
    """Baseline over its epochs (train + validation each): the full network every epoch, fed
    by the notebooks' loaders (reference), or one feature pass then the head alone (ours)."""
    exp = cfg["experiments"]["baseline"]
    precision = engine.effective_precision(exp["train"]["precision"], device)
    per_epoch = len(store.train.labels) + len(store.val.labels)
    images = sizes.baseline_epochs * per_epoch
    reference = _reference_baseline(cfg, store, sizes, device, precision)
    ours, extracted = _our_baseline(cfg, exp, store, sizes, device, precision)
    head_seconds = (ours - extracted) / sizes.baseline_epochs  # per epoch
    row = _row(f"baseline: {sizes.baseline_epochs} epochs end to end",
               {"reference": {"rate": images / reference},
                "ours": {"rate": images / ours, "n": images}})  # fmt: skip
    row["detail"] = {
        "epochs": sizes.baseline_epochs,
        "images_per_epoch": per_epoch,
        "reference_seconds_per_epoch": reference / sizes.baseline_epochs,
        "ours_feature_images_per_second": per_epoch / extracted,
        "ours_head_epoch_images_per_second": per_epoch / head_seconds,
    }
    return row


def _reference_baseline(cfg, store, sizes, device, precision) -> float:
    """Seconds of the baseline's epochs as the notebook ran them: the full network each epoch."""
    criterion = nn.CrossEntropyLoss()
    engine.seed_everything(0)
    model, optimizer, _ = _model(cfg, "baseline", len(store.classes), device, False)
    scaler = engine.make_scaler(precision, device)
    loader = functools.partial(_loader, "reference", cfg, "baseline", sizes=sizes, device=device)
    start = time.perf_counter()
    for _ in range(sizes.baseline_epochs):
        model.train()
        for x, y in loader(store.train, train=True):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with engine.autocast(precision, device):
                loss = criterion(model(x), y)
            engine.backward_step(loss, optimizer, scaler)
        model.eval()
        with torch.no_grad(), engine.autocast(precision, device):
            for x, _ in loader(store.val, train=False):
                model(x.to(device, non_blocking=True)).float().cpu()
    _sync(device)
    return time.perf_counter() - start


def _our_baseline(cfg, exp, store, sizes, device, precision) -> tuple[float, float]:
    """Seconds of ours in all, and of its one feature pass: then the head alone per epoch."""
    criterion, per_image = nn.CrossEntropyLoss(), nn.CrossEntropyLoss(reduction="none")
    engine.seed_everything(0)
    model, optimizer, _ = _model(cfg, "baseline", len(store.classes), device, True)
    perf, pipeline = cfg["performance"], Pipeline.from_config(cfg, exp)
    start = time.perf_counter()
    train, val = [
        features.extract(model, split, pipeline, device, precision,
                         exp["train"]["eval_batch_size"], make_forward(model.features, perf))
        for split in (store.train, store.val)
    ]  # fmt: skip
    extracted = time.perf_counter() - start
    train = features.feature_split(train, store.train)
    val = features.feature_split(val, store.val)
    head = make_forward(model.forward_head, perf)
    scaler = engine.make_scaler(precision, device)
    identity = features.FeaturePipeline().eval_transform()
    val_loader = engine.BatchLoader(engine.resident(val, device, perf["resident_data"]),
                                    exp["train"]["eval_batch_size"], shuffle=False,
                                    transform=identity, device=device)  # fmt: skip
    train = engine.resident(train, device, perf["resident_data"])
    for epoch in range(sizes.baseline_epochs):
        generator = torch.Generator().manual_seed(epoch)
        loader = engine.BatchLoader(train, sizes.batch_size, shuffle=True, transform=identity,
                                    generator=generator, device=device)  # fmt: skip
        engine.train_one_epoch(model, loader, optimizer, criterion, device, precision, scaler,
                               forward=head)  # fmt: skip
        engine.predict(model, val_loader, per_image, device, precision, forward=head)
    _sync(device)
    return time.perf_counter() - start, extracted


def project(rows: dict, published_epochs: dict) -> dict:
    """Minutes of a full reproduction (published epochs, 100,000 + 10,000 images) from rates."""
    steps, val = rows["improved: training steps"], rows["validation: forward passes"]
    detail = next(r["detail"] for r in rows.values() if "detail" in r)  # the baseline's row
    n = TRAIN_IMAGES + VAL_IMAGES
    n_base, n_imp = published_epochs["baseline"], published_epochs["improved"]
    per_epoch_ref = detail["reference_seconds_per_epoch"] * n / detail["images_per_epoch"]

    def improved(train_rate: float, val_rate: float) -> float:  # minutes of the improved run
        return n_imp * (TRAIN_IMAGES / train_rate + VAL_IMAGES / val_rate) / 60

    minutes = {
        "improved_reference": improved(steps["reference"], val["reference"]),
        "improved_ours": improved(steps["ours"], val["ours"]),
        "baseline_reference": n_base * per_epoch_ref / 60,
        "baseline_ours": (n / detail["ours_feature_images_per_second"]
                          + n_base * n / detail["ours_head_epoch_images_per_second"]) / 60,
    }  # fmt: skip
    minutes["both_reference"] = minutes["improved_reference"] + minutes["baseline_reference"]
    minutes["both_ours"] = minutes["improved_ours"] + minutes["baseline_ours"]
    # with a faster precision for the improved run's training steps (its validation is still
    # timed in fp32, so these are upper bounds)
    options = {
        row["option"]: minutes["baseline_ours"] + improved(row["ours"], val["ours"])
        for row in rows.values()
        if "option" in row
    }
    result = {"epochs": published_epochs, "images": [TRAIN_IMAGES, VAL_IMAGES], "minutes": minutes}
    if options:
        result["both_ours_with_option"] = options
    return result


def run_bench(cfg: dict, sizes: BenchSizes, device: torch.device,
              options: bool | None = None) -> dict:  # fmt: skip
    """Every measurement, with the conditions they were taken under; `options` (default: on a
    GPU) also times the improved run's steps in :data:`STEP_OPTIONS`."""
    cfg = {**cfg, "data": {**cfg["data"], "input_size": sizes.input_size}}
    configure_performance(cfg["performance"])
    synthetic = make_synthetic(sizes.num_classes, sizes.train_per_class, sizes.val_per_class,
                               64, 0.02, 0.25, 0)  # fmt: skip
    store = Store(*synthetic, "bench", {"source": "synthetic"})
    options = device.type == "cuda" if options is None else options
    rows = _measure(cfg, store, sizes, device, options)
    for row in rows:
        row["ratio"] = row["ours"] / row["reference"]
        if "ours_per_cpu_second" in row:
            row["ratio_per_cpu"] = row["ours_per_cpu_second"] / row["reference_per_cpu_second"]
    published = cfg["published"]["runs"]
    epochs = {name: len(run["epochs"]) for name, run in published.items()}
    return {
        "machine": provenance.device_info(device) | {"host_cpu": platform.processor()},
        "versions": provenance.versions(),
        "sizes": asdict(sizes),
        "performance": cfg["performance"],
        "rows": rows,
        "projection": project({r["what"]: r for r in rows}, epochs)
        | {"published_minutes": sum(run["minutes"] for run in published.values())},
        "when": provenance.now(),
    }


def _measure(cfg, store, sizes, device, options: bool) -> list[dict]:
    """The rows of the table, in order."""
    rows = [bench_loading(cfg, name, store, sizes, device) for name in ("baseline", "improved")]
    if sizes.input_size != cfg["data"]["image_size"]:  # the option: augment before the resize
        exp = cfg["experiments"]["improved"]
        source = {**cfg, "experiments": {**cfg["experiments"], "improved": {
            **exp, "augment": {**exp["augment"], "at": "source"}}}}  # fmt: skip
        row = bench_loading(source, "improved", store, sizes, device)
        row["what"] = "improved: data loading, augment.at source (option, other numerics)"
        rows.append(row)
    rows += bench_improved_steps(cfg, store, sizes, device, options)
    rows.append(bench_validation(cfg, store, sizes, device))
    rows.append(bench_baseline_end_to_end(cfg, store, sizes, device))
    return rows


def format_table(result: dict) -> str:
    """The result as a Markdown table with its conditions."""
    sizes, machine, versions = result["sizes"], result["machine"], result["versions"]
    lines = [
        f"device: {machine['name']} ({machine['device']}), {machine['cpu_count']} CPUs, "
        f"{machine['torch_threads']} torch threads; torch {versions['torch']}, "
        f"timm {versions['timm']}",
        f"input {sizes['input_size']}x{sizes['input_size']}, batch {sizes['batch_size']}, "
        f"{sizes['num_classes']} classes x {sizes['train_per_class']} train images, "
        f"{sizes['workers']} loader workers in the reference",
        "",
        "| measurement | reference (images/s) | ours (images/s) | ours / reference "
        "| per CPU-second: reference | ours | ours / reference | n |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        cpu = ["", "", ""]
        if "ratio_per_cpu" in row:
            cpu = [f"{row['reference_per_cpu_second']:.0f}", f"{row['ours_per_cpu_second']:.0f}",
                   f"{row['ratio_per_cpu']:.2f}x"]  # fmt: skip
        lines.append(
            f"| {row['what']} | {row['reference']:.1f} | {row['ours']:.1f} | "
            f"{row['ratio']:.2f}x | {' | '.join(cpu)} | {row['n']} |"
        )
    projection, size = result["projection"], sizes["input_size"]
    minutes, epochs = projection["minutes"], projection["epochs"]
    lines += [
        "",
        f"Projected full reproduction on this device at {size}x{size} (baseline "
        f"{epochs['baseline']} + improved {epochs['improved']} epochs, 100,000 train + 10,000 "
        f"validation images): ours {minutes['both_ours']:.1f} min (baseline "
        f"{minutes['baseline_ours']:.1f}, improved {minutes['improved_ours']:.1f}); reference "
        f"{minutes['both_reference']:.1f} min; the published runs took "
        f"{projection['published_minutes']:.1f} min on Colab.",
    ]
    for label, value in projection.get("both_ours_with_option", {}).items():
        lines.append(f"With the improved run's steps in {label} (an option): ours {value:.1f} min "
                     "(its validation timed in fp32: an upper bound).")  # fmt: skip
    return "\n".join(lines)


def write_result(result: dict, path) -> None:
    atomic.write_json(path, result)


def main(argv=None) -> int:
    """Run the benchmark, print its table and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sizes = "small: CPU-sized (about a minute); gpu: 224x224, 200 classes"
    parser.add_argument("--size", choices=tuple(SIZES), default="small", help=sizes)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", type=Path, help="JSON (default: results/bench-<device>.json)")
    parser.add_argument("--config", action="append", type=Path, metavar="FILE", default=[])
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    result = run_bench(load_config(args.config, args.overrides), SIZES[args.size], device)
    print(format_table(result))
    name = result["machine"]["name"].replace(" ", "-").lower()
    out = args.out or Path(__file__).parent / "results" / f"bench-{device.type}-{name}.json"
    write_result(result, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
