"""Train and evaluate one experiment of the config into one output folder.

`<out>/` after `train` and `evaluate`:
  config.yaml        the resolved config (all files merged, --set applied)
  provenance.json    seed, versions, device, git commit, data fingerprint, start/end per command
  metrics.jsonl      one JSON line per epoch
  model.safetensors  the best epoch's weights (restored at the end, as both notebooks did)
  checkpoints/<run digest>/  the last complete epoch, for resuming (see checkpoint.py); one
                     folder per config, so a changed config starts afresh and the earlier
                     run's checkpoints stay
  predictions.csv    one row per validation image
  summary.json       accuracy (exact and batch-mean), top-5, Wilson 95 % interval, per class
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from . import atomic, checkpoint, features, provenance
from .config import config_digest, dump_config, experiment_config, run_identity
from .data import Store, load_store
from .evaluation import predictions_frame, summarize_predictions, write_predictions
from .models import configure_trainable, create_model
from .training import (
    BatchLoader,
    EarlyStopping,
    effective_precision,
    epoch_seed,
    make_scaler,
    make_scheduler,
    predict,
    resident,
    seed_everything,
    summarize,
    train_one_epoch,
)
from .transforms import Pipeline

log = logging.getLogger(__name__)


class RunError(Exception):
    """A run that cannot start or continue (the message names the folder or file)."""


def resolve_device(spec: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; an explicit cuda without a GPU is an error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"config: device = {spec!r} but no CUDA GPU is available (use auto or cpu)")
    return device


def configure_determinism(enabled: bool) -> None:
    """Deterministic kernels (bit-exact reruns) or cudnn autotuning (speed)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def configure_performance(perf: dict) -> None:
    """Process-wide speed settings of the `performance` section (TF32 matmuls or not)."""
    torch.set_float32_matmul_precision(str(perf["float32_matmul_precision"]))


def make_forward(
    fn: Callable[[torch.Tensor], torch.Tensor], perf: dict
) -> Callable[[torch.Tensor], torch.Tensor]:
    """`fn` (the model or its head), compiled and fed channels-last images as configured."""
    if perf["compile"]:
        fn = torch.compile(fn)
    if not perf["channels_last"]:
        return fn
    return lambda x: fn(x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x)


def run_digest(cfg: dict, name: str) -> str:
    """Digest of everything that determines a run's numbers (config.run_identity): not where
    caches live, nor the settings that keep the computation; TF32 matmuls change it."""
    return config_digest(run_identity(cfg, name))


def _data_device(split) -> str:
    """Where a run's data live: the device (resident) or host memory."""
    return str(split.images.device) if isinstance(split.images, torch.Tensor) else "host"


def update_provenance(out: Path, section: str, record: dict) -> None:
    """Set one command's section of <out>/provenance.json, keeping the others."""
    path = out / "provenance.json"
    current = json.loads(path.read_text()) if path.is_file() else {}
    current[section] = record
    atomic.write_json(path, current)


def write_metrics(out: Path, history: list[dict]) -> None:
    """Rewrite metrics.jsonl from the full history (so a resumed run has every epoch once)."""
    atomic.write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def _build(cfg: dict, name: str, store: Store, device: torch.device, pretrained: bool) -> nn.Module:
    model_cfg = dict(experiment_config(cfg, name)["model"])
    if not pretrained:  # weights come from our own file: no download
        model_cfg |= {"pretrained": False, "pretrained_file": None}
    model = create_model(model_cfg, num_classes=len(store.classes)).to(device)
    if cfg["performance"]["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    return model


def train_experiment(cfg: dict, name: str, out: Path, *, progress: bool = True) -> list[dict]:
    """Train experiment `name` into `out`, resuming from its last complete epoch if present.

    Returns:
        The per-epoch history (the lines of metrics.jsonl).
    """
    out = Path(out)
    exp = experiment_config(cfg, name)
    train_cfg, stop_cfg = exp["train"], exp["train"]["early_stopping"]
    digest = run_digest(cfg, name)
    ckdir = out / "checkpoints" / digest[:16]
    latest = checkpoint.load_latest(ckdir)
    if latest is not None and latest.state["digest"] != digest:
        raise RunError(f"{ckdir} holds a checkpoint of another config: delete it to start over")
    started = provenance.now()
    device = resolve_device(cfg["device"])
    configure_determinism(bool(cfg["deterministic"]))
    perf = cfg["performance"]
    configure_performance(perf)
    store = load_store(cfg["data"], progress=progress)
    seed_everything(cfg["seed"])  # the new head's initialisation
    model = _build(cfg, name, store, device, pretrained=latest is None)
    groups = configure_trainable(model, exp["trainable"])
    optimizer = torch.optim.AdamW(groups)
    scheduler = make_scheduler(optimizer, train_cfg["scheduler"])
    precision = effective_precision(train_cfg["precision"], device)
    scaler = make_scaler(precision, device)
    stopper = EarlyStopping(
        stop_cfg["monitor"], int(stop_cfg["patience"]), float(stop_cfg["min_delta"])
    )
    history: list[dict] = []
    if latest is not None:
        state = latest.state
        checkpoint.load_weights(model, latest.weights)
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        stopper = EarlyStopping(**state["early_stopping"])
        history = list(state["history"])
        log.info("%s: resuming after epoch %d from %s", name, latest.epoch, ckdir)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")

    pipeline = Pipeline.from_config(cfg, exp)
    batch_size = int(train_cfg["batch_size"])
    train_split, val_split, forward = store.train, store.val, make_forward(model, perf)
    if train_cfg["feature_cache"]:
        if not features.cacheable(exp):
            raise RunError(
                f"config: experiments.{name}.train.feature_cache = true, but its backbone trains "
                f"or its data are augmented, so features change every epoch (set it to false)"
            )
        cached = features.cached_features(
            model, store, pipeline, device, precision, int(train_cfg["eval_batch_size"]),
            Path(cfg["data"]["cache_dir"]) / "features", forward=make_forward(model.features, perf),
        )  # fmt: skip
        train_split = features.feature_split(cached["train"], store.train)
        val_split = features.feature_split(cached["val"], store.val)
        pipeline, forward = features.FeaturePipeline(), make_forward(model.forward_head, perf)
    train_split = resident(train_split, device, perf["resident_data"])
    val_split = resident(val_split, device, perf["resident_data"])
    criterion = nn.CrossEntropyLoss(label_smoothing=float(train_cfg["label_smoothing"]))
    per_image_loss = nn.CrossEntropyLoss(
        label_smoothing=float(train_cfg["label_smoothing"]), reduction="none"
    )
    val_loader = BatchLoader(
        val_split, int(train_cfg["eval_batch_size"]), shuffle=False,
        transform=pipeline.eval_transform(), device=device,
    )  # fmt: skip
    max_epochs = stop_cfg["max_epochs"]
    steps = -(-len(store.train.labels) // batch_size)
    log.info(
        "%s: %d train / %d val images, batch %d -> %d steps per epoch, %s on %s",
        name, len(store.train.labels), len(store.val.labels), batch_size, steps, precision, device,
    )  # fmt: skip
    finished = bool(latest and latest.state["finished"])
    epoch = len(history) + 1
    while not finished:
        # one generator per epoch: first every augmentation draw, then the order
        generator = seed_everything(epoch_seed(cfg["seed"], epoch))
        train_loader = BatchLoader(
            train_split,
            batch_size,
            shuffle=True,
            generator=generator,
            transform=pipeline.train_transform(len(train_split), generator),
            device=device,
            chunk_batches=int(perf["chunk_batches"]),
        )
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        start = time.perf_counter()
        record: dict = {"epoch": epoch}
        record |= train_one_epoch(
            model, train_loader, optimizer, criterion, device, precision, scaler,
            forward=forward, progress=progress, desc=f"{name} epoch {epoch} train",
        )  # fmt: skip
        val_start = time.perf_counter()
        per_image = predict(
            model, val_loader, per_image_loss, device, precision,
            forward=forward, progress=progress, desc=f"{name} epoch {epoch} val",
        )  # fmt: skip
        record |= summarize(per_image, batch_size)
        record["val_seconds"] = time.perf_counter() - val_start
        record["seconds"] = time.perf_counter() - start
        record["images_per_second"] = record["train_images"] / record["train_seconds"]
        record["lr"] = lrs
        record["best"] = stopper.update(epoch, record[stopper.monitor])
        history.append(record)
        if scheduler is not None:
            scheduler.step()
        finished = stopper.should_stop or (max_epochs is not None and epoch >= max_epochs)
        state = {
            "digest": digest,
            "epoch": epoch,
            "finished": finished,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "scaler": scaler.state_dict() if scaler is not None else {},
            "early_stopping": stopper.state_dict(),
            "history": history,
        }
        checkpoint.save(ckdir, epoch, model, state, best_epoch=stopper.best_epoch)
        write_metrics(out, history)
        log.info(
            "%s epoch %d: train loss %.4f acc %.2f | val loss %.4f acc %.2f (batch-mean %.2f)%s",
            name, epoch, record["train_loss"], record["train_acc"], record["val_loss"],
            record["val_acc"], record["val_acc_batch_mean"], " *best*" if record["best"] else "",
        )  # fmt: skip
        epoch += 1

    # Restore the best epoch, as both notebooks did, by publishing its weights as the model.
    best = checkpoint.best_weights(ckdir, stopper.best_epoch)
    atomic.write_with(out / "model.safetensors", lambda tmp: shutil.copyfile(best, tmp))
    write_metrics(out, history)
    update_provenance(
        out,
        "train",
        provenance.collect(seed=cfg["seed"], device=device, data=store.info, config_digest=digest)
        | {
            "experiment": name,
            "precision": precision,
            "configured_precision": train_cfg["precision"],
            "epochs": len(history),
            "best_epoch": stopper.best_epoch,
            "performance": perf | {"data_on": _data_device(train_split)},
            "resumed_after_epoch": latest.epoch if latest is not None else None,
            "started": started,
            "finished": provenance.now(),
        },
    )
    return history


def evaluate_experiment(cfg: dict, name: str, out: Path, *, progress: bool = True) -> dict:
    """Evaluate `<out>/model.safetensors` on the validation split; write predictions and summary.

    Returns:
        The summary written to summary.json.
    """
    out = Path(out)
    weights = out / "model.safetensors"
    if not weights.is_file():
        raise RunError(f"no trained model at {weights}: run `train` for {name!r} first")
    exp = experiment_config(cfg, name)
    started = provenance.now()
    device = resolve_device(cfg["device"])
    perf = cfg["performance"]
    configure_performance(perf)
    store = load_store(cfg["data"], progress=progress)
    model = _build(cfg, name, store, device, pretrained=False)
    checkpoint.load_weights(model, weights)
    train_cfg = exp["train"]
    precision = effective_precision(train_cfg["precision"], device)
    loader = BatchLoader(
        resident(store.val, device, perf["resident_data"]),
        int(train_cfg["eval_batch_size"]),
        shuffle=False,
        transform=Pipeline.from_config(cfg, exp).eval_transform(),
        device=device,
    )
    per_image = predict(
        model,
        loader,
        nn.CrossEntropyLoss(label_smoothing=float(train_cfg["label_smoothing"]), reduction="none"),
        device,
        precision,
        forward=make_forward(model, perf),
        progress=progress,
        desc=f"{name} evaluate",
    )
    frame = predictions_frame(per_image, store.val.image_ids)
    summary = {"experiment": name, "title": exp.get("title", name)}
    summary |= summarize_predictions(frame, store.classes, int(train_cfg["batch_size"]))
    summary["loss"] = float(per_image["loss"].mean())
    metrics = out / "metrics.jsonl"
    if metrics.is_file():
        history = [json.loads(line) for line in metrics.read_text().splitlines() if line]
        summary["epochs"] = len(history)
        summary["best_epoch"] = next((r["epoch"] for r in reversed(history) if r["best"]), None)
    write_predictions(frame, out / "predictions.csv")
    atomic.write_json(out / "summary.json", summary)
    update_provenance(
        out,
        "evaluate",
        provenance.collect(
            seed=cfg["seed"], device=device, data=store.info, config_digest=run_digest(cfg, name)
        )
        | {
            "experiment": name,
            "precision": precision,
            "started": started,
            "finished": provenance.now(),
        },
    )
    log.info(
        "%s: accuracy %.2f %% (batch-mean %.2f %%), 95 %% CI [%.2f, %.2f], top-5 %.2f %%",
        name, summary["accuracy"], summary["accuracy_batch_mean"], *summary["wilson95"],
        summary["top5"],
    )  # fmt: skip
    return summary
