"""Train and evaluate one experiment of the config into one run folder (run_folder.py)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.config import config_digest, dump_config, experiment_config, run_identity
from convnext_tinyimagenet.data.store import Store, load_store
from convnext_tinyimagenet.data.transforms import Pipeline
from convnext_tinyimagenet.errors import ArtifactError
from convnext_tinyimagenet.run_folder import (
    RunFolder,
    update_provenance,
    write_metrics,
    write_predictions,
)
from convnext_tinyimagenet.train import checkpoint, features, provenance
from convnext_tinyimagenet.train.engine import (
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
from convnext_tinyimagenet.train.evaluation import (
    predictions_frame,
    summarize_predictions,
)
from convnext_tinyimagenet.train.models import configure_trainable, create_model

log = logging.getLogger(__name__)


class RunError(ArtifactError):
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


def _build(cfg: dict, name: str, store: Store, device: torch.device, pretrained: bool) -> nn.Module:
    model_cfg = dict(experiment_config(cfg, name)["model"])
    if not pretrained:  # weights come from our own file: no download
        model_cfg |= {"pretrained": False, "pretrained_file": None}
    model = create_model(model_cfg, num_classes=len(store.classes)).to(device)
    if cfg["performance"]["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    return model


@dataclass
class Training:
    """What one run trains and keeps between epochs (and restores from a checkpoint)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    stopper: EarlyStopping
    precision: str
    history: list[dict] = field(default_factory=list)

    def state(self, digest: str, epoch: int, finished: bool) -> dict:
        """The checkpoint's state: everything but the weights."""
        return {
            "digest": digest,
            "epoch": epoch,
            "finished": finished,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "early_stopping": self.stopper.state_dict(),
            "history": self.history,
        }

    def restore(self, latest: checkpoint.Checkpoint) -> None:
        """Continue from a checkpoint: weights, optimizer, schedule, scaler, stopper, history."""
        state = latest.state
        checkpoint.load_weights(self.model, latest.weights)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.stopper = EarlyStopping(**state["early_stopping"])
        self.history = list(state["history"])


@dataclass
class Inputs:
    """What one epoch reads: the training split, the validation loader and how to forward."""

    train: Any
    val_loader: BatchLoader
    pipeline: Any
    forward: Callable[[torch.Tensor], torch.Tensor]


def train_experiment(cfg: dict, name: str, out: Path, *, progress: bool = True) -> list[dict]:
    """Train experiment `name` into `out`, resuming from its last complete epoch if present.

    Restore (the last checkpoint of this run's identity), build the inputs, fit epochs until
    early stopping or the epoch cap, then finish: publish the best epoch's weights, as both
    notebooks restored them, and record provenance.

    Returns:
        The per-epoch history (the lines of metrics.jsonl).
    """
    folder, digest = RunFolder(out), run_digest(cfg, name)
    latest = _latest_checkpoint(folder.checkpoints(digest), digest)
    started = provenance.now()
    device = _configure(cfg)
    store = load_store(cfg["data"], progress=progress)
    training = _restore(cfg, name, store, device, latest)
    folder.root.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, folder.config)
    inputs = _build_inputs(cfg, name, store, training, device)
    if not (latest and latest.state["finished"]):
        _fit(cfg, name, training, inputs, device, folder, progress=progress)
    _finish(cfg, name, training, folder, store, device, inputs)
    _record_train(cfg, name, training, folder, store, device, inputs, latest, started)
    return training.history


def _latest_checkpoint(ckdir: Path, digest: str) -> checkpoint.Checkpoint | None:
    latest = checkpoint.load_latest(ckdir)
    if latest is not None and latest.state["digest"] != digest:
        raise RunError(f"{ckdir} holds a checkpoint of another config: delete it to start over")
    return latest


def _configure(cfg: dict) -> torch.device:
    """The device, with the process-wide determinism and matmul settings applied."""
    device = resolve_device(cfg["device"])
    configure_determinism(bool(cfg["deterministic"]))
    configure_performance(cfg["performance"])
    return device


def _restore(
    cfg: dict, name: str, store: Store, device: torch.device, latest: checkpoint.Checkpoint | None
) -> Training:
    """The model and its optimisation, new (seeded head) or continued from `latest`."""
    exp = experiment_config(cfg, name)
    train_cfg, stop_cfg = exp["train"], exp["train"]["early_stopping"]
    seed_everything(cfg["seed"])  # the new head's initialisation
    model = _build(cfg, name, store, device, pretrained=latest is None)
    optimizer = torch.optim.AdamW(configure_trainable(model, exp["trainable"]))
    precision = effective_precision(train_cfg["precision"], device)
    training = Training(
        model=model,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, train_cfg["scheduler"]),
        scaler=make_scaler(precision, device),
        stopper=EarlyStopping(
            stop_cfg["monitor"], int(stop_cfg["patience"]), float(stop_cfg["min_delta"])
        ),
        precision=precision,
    )
    if latest is not None:
        training.restore(latest)
        log.info("%s: resuming after epoch %d", name, latest.epoch)
    return training


def _build_inputs(
    cfg: dict, name: str, store: Store, training: Training, device: torch.device
) -> Inputs:
    """The splits on their device, the validation loader, the transforms and the forward:
    cached backbone features and the head alone where the backbone is frozen and unaugmented."""
    exp, perf, model = experiment_config(cfg, name), cfg["performance"], training.model
    train_cfg = exp["train"]
    pipeline = Pipeline.from_config(cfg, exp)
    train_split, val_split, forward = store.train, store.val, make_forward(model, perf)
    if train_cfg["feature_cache"]:
        if not features.cacheable(exp):
            raise RunError(
                f"config: experiments.{name}.train.feature_cache = true, but its backbone trains "
                f"or its data are augmented, so features change every epoch (set it to false)"
            )
        cached = features.cached_features(
            model, store, pipeline, device, training.precision, int(train_cfg["eval_batch_size"]),
            Path(cfg["data"]["cache_dir"]) / "features", forward=make_forward(model.features, perf),
        )  # fmt: skip
        train_split = features.feature_split(cached["train"], store.train)
        val_split = features.feature_split(cached["val"], store.val)
        pipeline, forward = features.FeaturePipeline(), make_forward(model.forward_head, perf)
    val_loader = BatchLoader(
        resident(val_split, device, perf["resident_data"]), int(train_cfg["eval_batch_size"]),
        shuffle=False, transform=pipeline.eval_transform(), device=device,
    )  # fmt: skip
    train_split = resident(train_split, device, perf["resident_data"])
    return Inputs(train=train_split, val_loader=val_loader, pipeline=pipeline, forward=forward)


def _fit(
    cfg: dict,
    name: str,
    training: Training,
    inputs: Inputs,
    device: torch.device,
    folder: RunFolder,
    *,
    progress: bool,
) -> None:
    """Epochs until early stopping or the cap; a checkpoint and metrics.jsonl after each."""
    train_cfg = experiment_config(cfg, name)["train"]
    batch_size, max_epochs = int(train_cfg["batch_size"]), train_cfg["early_stopping"]["max_epochs"]
    smoothing = float(train_cfg["label_smoothing"])
    criterion = nn.CrossEntropyLoss(label_smoothing=smoothing)
    per_image_loss = nn.CrossEntropyLoss(label_smoothing=smoothing, reduction="none")
    log.info(
        "%s: %d train images, batch %d -> %d steps per epoch, %s on %s", name,
        len(inputs.train), batch_size, -(-len(inputs.train) // batch_size), training.precision,
        device,
    )  # fmt: skip
    digest, stopper, finished = run_digest(cfg, name), training.stopper, False
    epoch = len(training.history) + 1
    while not finished:
        record = _epoch(cfg, name, epoch, training, inputs, device, criterion, per_image_loss,
                        progress=progress)  # fmt: skip
        record["best"] = stopper.update(epoch, record[stopper.monitor])
        training.history.append(record)
        if training.scheduler is not None:
            training.scheduler.step()
        finished = stopper.should_stop or (max_epochs is not None and epoch >= max_epochs)
        checkpoint.save(
            folder.checkpoints(digest), epoch, training.model,
            training.state(digest, epoch, finished), best_epoch=stopper.best_epoch,
        )  # fmt: skip
        write_metrics(folder.metrics, training.history)
        _log_epoch(name, record)
        epoch += 1


def _epoch(
    cfg: dict,
    name: str,
    epoch: int,
    training: Training,
    inputs: Inputs,
    device: torch.device,
    criterion: nn.Module,
    per_image_loss: nn.Module,
    *,
    progress: bool,
) -> dict:
    """Train one epoch and validate: the epoch's metrics record (without `best`)."""
    batch_size = int(experiment_config(cfg, name)["train"]["batch_size"])
    # one generator per epoch: first every augmentation draw, then the order
    generator = seed_everything(epoch_seed(cfg["seed"], epoch))
    train_loader = BatchLoader(
        inputs.train, batch_size, shuffle=True, generator=generator,
        transform=inputs.pipeline.train_transform(len(inputs.train), generator), device=device,
        chunk_batches=int(cfg["performance"]["chunk_batches"]),
    )  # fmt: skip
    lrs = {g["name"]: g["lr"] for g in training.optimizer.param_groups}
    start = time.perf_counter()
    record: dict = {"epoch": epoch}
    record |= train_one_epoch(
        training.model, train_loader, training.optimizer, criterion, device, training.precision,
        training.scaler, forward=inputs.forward, progress=progress,
        desc=f"{name} epoch {epoch} train",
    )  # fmt: skip
    val_start = time.perf_counter()
    per_image = predict(
        training.model, inputs.val_loader, per_image_loss, device, training.precision,
        forward=inputs.forward, progress=progress, desc=f"{name} epoch {epoch} val",
    )  # fmt: skip
    record |= summarize(per_image, batch_size)
    record["val_seconds"] = time.perf_counter() - val_start
    record["seconds"] = time.perf_counter() - start
    record["images_per_second"] = record["train_images"] / record["train_seconds"]
    record["lr"] = lrs
    return record


def _log_epoch(name: str, record: dict) -> None:
    log.info(
        "%s epoch %d: train loss %.4f acc %.2f | val loss %.4f acc %.2f (batch-mean %.2f)%s",
        name, record["epoch"], record["train_loss"], record["train_acc"], record["val_loss"],
        record["val_acc"], record["val_acc_batch_mean"], " *best*" if record["best"] else "",
    )  # fmt: skip


def _finish(
    cfg: dict,
    name: str,
    training: Training,
    folder: RunFolder,
    store: Store,
    device: torch.device,
    inputs: Inputs,
) -> None:
    """Publish the best epoch's weights as the model (both notebooks restored the best)."""
    best = checkpoint.best_weights(
        folder.checkpoints(run_digest(cfg, name)), training.stopper.best_epoch
    )
    atomic.write_with(folder.model, lambda tmp: shutil.copyfile(best, tmp))
    write_metrics(folder.metrics, training.history)


def _record_train(
    cfg: dict,
    name: str,
    training: Training,
    folder: RunFolder,
    store: Store,
    device: torch.device,
    inputs: Inputs,
    latest: checkpoint.Checkpoint | None,
    started: str,
) -> None:
    """The train section of provenance.json."""
    train_cfg = experiment_config(cfg, name)["train"]
    record = provenance.collect(
        seed=cfg["seed"], device=device, data=store.info, config_digest=run_digest(cfg, name)
    )
    record |= {
        "experiment": name,
        "precision": training.precision,
        "configured_precision": train_cfg["precision"],
        "epochs": len(training.history),
        "best_epoch": training.stopper.best_epoch,
        "performance": cfg["performance"] | {"data_on": _data_device(inputs.train)},
        "resumed_after_epoch": latest.epoch if latest is not None else None,
        "started": started,
        "finished": provenance.now(),
    }
    update_provenance(folder.provenance, "train", record)


def evaluate_experiment(cfg: dict, name: str, out: Path, *, progress: bool = True) -> dict:
    """Evaluate `<out>/model.safetensors` on the validation split; write predictions and summary.

    Returns:
        The summary written to summary.json.
    """
    folder = RunFolder(out)
    if not folder.model.is_file():
        raise RunError(f"no trained model at {folder.model}: run `train` for {name!r} first")
    started = provenance.now()
    device = resolve_device(cfg["device"])
    configure_performance(cfg["performance"])
    store = load_store(cfg["data"], progress=progress)
    model = _build(cfg, name, store, device, pretrained=False)
    checkpoint.load_weights(model, folder.model)
    precision = effective_precision(experiment_config(cfg, name)["train"]["precision"], device)
    per_image = _predict_val(cfg, name, model, store, device, precision, progress=progress)
    frame = predictions_frame(per_image, store.val.image_ids)
    summary = _summary(cfg, name, frame, per_image, store, folder)
    write_predictions(frame, folder.predictions)
    atomic.write_json(folder.summary, summary)
    record = provenance.collect(
        seed=cfg["seed"], device=device, data=store.info, config_digest=run_digest(cfg, name)
    )
    record |= {"experiment": name, "precision": precision}
    update_provenance(
        folder.provenance, "evaluate", record | {"started": started, "finished": provenance.now()}
    )
    log.info(
        "%s: accuracy %.2f %% (batch-mean %.2f %%), 95 %% CI [%.2f, %.2f], top-5 %.2f %%",
        name, summary["accuracy"], summary["accuracy_batch_mean"], *summary["wilson95"],
        summary["top5"],
    )  # fmt: skip
    return summary


def _predict_val(
    cfg: dict,
    name: str,
    model: nn.Module,
    store: Store,
    device: torch.device,
    precision: str,
    *,
    progress: bool,
) -> dict:
    """Per-image results of `model` on the validation split, in validation order."""
    exp, perf = experiment_config(cfg, name), cfg["performance"]
    train_cfg = exp["train"]
    loader = BatchLoader(
        resident(store.val, device, perf["resident_data"]), int(train_cfg["eval_batch_size"]),
        shuffle=False, transform=Pipeline.from_config(cfg, exp).eval_transform(), device=device,
    )  # fmt: skip
    loss = nn.CrossEntropyLoss(
        label_smoothing=float(train_cfg["label_smoothing"]), reduction="none"
    )
    return predict(
        model, loader, loss, device, precision, forward=make_forward(model, perf),
        progress=progress, desc=f"{name} evaluate",
    )  # fmt: skip


def _summary(cfg: dict, name: str, frame, per_image: dict, store: Store, folder: RunFolder) -> dict:
    """summary.json: the accuracies, loss, and the epochs of the run that made the model."""
    exp = experiment_config(cfg, name)
    summary = {"experiment": name, "title": exp.get("title", name)}
    summary |= summarize_predictions(frame, store.classes, int(exp["train"]["batch_size"]))
    summary["loss"] = float(per_image["loss"].mean())
    if folder.metrics.is_file():
        lines = folder.metrics.read_text().splitlines()
        history = [json.loads(line) for line in lines if line]
        summary["epochs"] = len(history)
        summary["best_epoch"] = next((r["epoch"] for r in reversed(history) if r["best"]), None)
    return summary
