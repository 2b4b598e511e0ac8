"""Train and evaluate one experiment of the config into one run folder (run_folder.py)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convnext_tinyimagenet import atomic, storage
from convnext_tinyimagenet.config import (
    config_digest,
    dump_config,
    experiment_config,
    run_identity,
    run_seed,
    run_settings,
)
from convnext_tinyimagenet.data.store import Store, hold_out, load_store
from convnext_tinyimagenet.data.transforms import Pipeline
from convnext_tinyimagenet.errors import ArtifactError
from convnext_tinyimagenet.run_folder import (
    RunFolder,
    read_json,
    read_metrics,
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
    replay_selection,
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


_WRITABLE = "set output_dir (or --out) to a folder you can write"


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


def run_digest(cfg: dict, name: str, data: str = "") -> str:
    """Digest of everything that determines a run's numbers (config.run_identity): not where
    caches live, nor the settings that keep the computation; TF32 matmuls change it. With the
    fingerprint of the `data` it reads: its checkpoints' identity."""
    settings = config_digest(run_identity(cfg, name))
    return config_digest({"settings": settings, "data": data}) if data else settings


def _data_device(split) -> str:
    """Where a run's data live: the device (resident) or host memory."""
    return str(split.images.device) if isinstance(split.images, torch.Tensor) else "host"


@dataclass
class Run:
    """One experiment's run: its settings, folder, device and data."""

    cfg: dict
    name: str
    folder: RunFolder
    device: torch.device
    store: Store
    progress: bool = True

    @property
    def exp(self) -> dict:
        return experiment_config(self.cfg, self.name)

    @property
    def digest(self) -> str:
        """Its checkpoints' identity: the settings and the data (provenance records both)."""
        return run_digest(self.cfg, self.name, self.store.fingerprint)

    def record(self, **facts: Any) -> dict:
        """A provenance section: the run's settings digest and data, and `facts`."""
        seed, data = run_seed(self.cfg), self.store.info
        record = provenance.collect(
            seed=seed, device=self.device, data=data, config_digest=run_digest(self.cfg, self.name)
        )
        return record | {"experiment": self.name, **facts}

    def build_model(self, pretrained: bool) -> nn.Module:
        """The experiment's network on the device; `pretrained=False` when the weights come
        from our own file (no download)."""
        model_cfg = dict(self.exp["model"])
        if not pretrained:
            model_cfg |= {"pretrained": False, "pretrained_file": None}
        model = create_model(model_cfg, num_classes=len(self.store.classes)).to(self.device)
        if self.cfg["performance"]["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        return model

    def losses(self) -> tuple[nn.Module, nn.Module]:
        """The training loss and validation's per-image loss (the same label smoothing)."""
        smoothing = float(self.exp["train"]["label_smoothing"])
        return (
            nn.CrossEntropyLoss(label_smoothing=smoothing),
            nn.CrossEntropyLoss(label_smoothing=smoothing, reduction="none"),
        )


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
        checkpoint.load_weights(
            self.model, latest.weights, checkpoint.restart_hint(latest.weights.parent),
            expected=latest.digests.get(latest.weights.name),
        )  # fmt: skip
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.stopper = EarlyStopping(**state["early_stopping"])
        self.history = list(state["history"])


@dataclass
class Inputs:
    """What one epoch reads: the training split, the validation loader (and the held-out
    images' when the epoch is chosen on them) and how to forward."""

    train: Any
    val_loader: BatchLoader
    pipeline: Any
    forward: Callable[[torch.Tensor], torch.Tensor]
    holdout_loader: BatchLoader | None = None


def train_experiment(cfg: dict, name: str, out: Path, *, progress: bool = True) -> list[dict]:
    """Train experiment `name` into `out`; return the per-epoch history (metrics.jsonl).

    Restore the last checkpoint of this run's identity, build the inputs, fit epochs until early
    stopping or the cap, then finish: publish the best epoch's weights, as both notebooks did.
    `cfg` holds one seed: a run's settings (config.run_settings), or a config of one seed.
    """
    cfg = run_settings(cfg, name, run_seed(cfg))  # the experiment's own data source
    folder, started, new = RunFolder(out), provenance.now(), not Path(out).exists()
    storage.require_writable(folder.root, "the run's results", _WRITABLE)
    with folder.writing(new):  # a first run that fails leaves no empty folder behind
        device = _configure(cfg)
        run = Run(cfg, name, folder, device, load_store(cfg["data"], progress=progress), progress)
        _refuse_other_run(run, "train")
        latest = _latest_checkpoint(folder.checkpoints(run.digest), run.digest)
        training = _restore(run, latest)
        if not (latest and latest.state["finished"]):
            _refuse_weeks_on_a_cpu(run, training.model)
        dump_config(cfg, folder.config)
        inputs = _build_inputs(run, training)
        if not (latest and latest.state["finished"]):
            _fit(run, training, inputs)
        _finish(run, training, inputs, latest, started)
    return training.history


def _refuse_weeks_on_a_cpu(run: Run, model: nn.Module) -> None:
    """`device: auto` found no GPU: stop in one line when the run would take over an hour on
    this CPU (its images x epochs x a forward timed here, three for a training step)."""
    if run.cfg["device"] != "auto" or run.device.type != "cpu":
        return
    size, stop = run.cfg["data"]["input_size"], run.exp["train"]["early_stopping"]
    started = time.perf_counter()
    with torch.no_grad():
        model.eval()(torch.zeros(2, 3, size, size))
    per_image = (time.perf_counter() - started) / 2
    epochs = stop["max_epochs"] or stop["patience"] + 1  # without a cap: at least this many
    passes = 1 if run.exp["train"]["feature_cache"] else 3 * epochs  # cached: one forward
    hours = len(run.store.train.labels) * per_image * passes / 3600
    if hours > 1:
        raise RunError(
            f"{run.name}: no GPU found (device: auto), and on this CPU the run would take about "
            f"{hours:,.0f} hours ({len(run.store.train.labels):,} images, {epochs} epochs or "
            f"more, {1000 * per_image:.0f} ms per image); set device: cpu to train on the CPU "
            "anyway, or make the GPU visible (nvidia-smi; docker run --gpus all)"
        )


def _refuse_other_run(run: Run, section: str) -> dict:
    """The folder's provenance section `section` (empty when there is none), refused when it
    records another run: other settings or other data (a result never mixes two)."""
    if not run.folder.provenance.is_file():
        return {}
    recorded = read_json(run.folder.provenance).get(section) or {}
    theirs = (recorded.get("config_digest"), (recorded.get("data") or {}).get("fingerprint"))
    ours = (run_digest(run.cfg, run.name), run.store.fingerprint)
    for what, their, our in zip(("settings", "data"), theirs, ours, strict=True):
        if their != our:
            raise RunError(
                f"{run.folder.root} holds the {section} results of a run with other {what} "
                f"({str(their)[:12]}, now {our[:12]}): give another --out, or delete the "
                "folder to run it again"
            )
    return recorded


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


def _restore(run: Run, latest: checkpoint.Checkpoint | None) -> Training:
    """The model and its optimisation, new (seeded head) or continued from `latest`."""
    train_cfg, stop_cfg = run.exp["train"], run.exp["train"]["early_stopping"]
    seed_everything(run_seed(run.cfg))  # the new head's initialisation
    monitor = stop_cfg["monitor"]  # a validation metric; its held-out twin under holdout
    if train_cfg["selection"] == "holdout":
        monitor = "holdout" + monitor.removeprefix("val")
    model = run.build_model(pretrained=latest is None)
    optimizer = torch.optim.AdamW(configure_trainable(model, run.exp["trainable"]))
    precision = effective_precision(train_cfg["precision"], run.device)
    training = Training(
        model=model,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, train_cfg["scheduler"]),
        scaler=make_scaler(precision, run.device),
        stopper=EarlyStopping(monitor, int(stop_cfg["patience"]), float(stop_cfg["min_delta"])),
        precision=precision,
    )
    if latest is not None:
        training.restore(latest)
        log.info("%s: resuming after epoch %d", run.name, latest.epoch)
    return training


def _build_inputs(run: Run, training: Training) -> Inputs:
    """The splits on their device, the validation loader, the transforms and the forward:
    cached backbone features and the head alone where the backbone is frozen and unaugmented."""
    exp, perf, model, store = run.exp, run.cfg["performance"], training.model, run.store
    eval_batch = int(exp["train"]["eval_batch_size"])
    pipeline = Pipeline.from_config(run.cfg, exp)
    train_split, val_split, forward = store.train, store.val, make_forward(model, perf)
    if exp["train"]["feature_cache"]:
        if not features.cacheable(exp):
            raise RunError(
                f"config: experiments.{run.name}.train.feature_cache = true, but its backbone "
                "trains or its data are augmented, so features change every epoch (set it to "
                "false)"
            )
        cached = features.cached_features(
            model, store, pipeline, run.device, training.precision, eval_batch,
            features.features_dir(run.cfg["data"]),
            forward=make_forward(model.features, perf),
        )  # fmt: skip
        train_split = features.feature_split(cached["train"], store.train)
        val_split = features.feature_split(cached["val"], store.val)
        pipeline, forward = features.FeaturePipeline(), make_forward(model.forward_head, perf)
    inputs = Inputs(train_split, _eval_loader(run, val_split, pipeline), pipeline, forward)
    if exp["train"]["selection"] == "holdout":
        inputs.train, held = hold_out(train_split, int(exp["train"]["holdout_per_class"]))
        inputs.holdout_loader = _eval_loader(run, held, pipeline)
    inputs.train = resident(inputs.train, run.device, perf["resident_data"])
    return inputs


def _eval_loader(run: Run, split, pipeline) -> BatchLoader:
    """Batches of `split` for evaluation: in order, at the evaluation batch size."""
    return BatchLoader(
        resident(split, run.device, run.cfg["performance"]["resident_data"]),
        int(run.exp["train"]["eval_batch_size"]), shuffle=False,
        transform=pipeline.eval_transform(), device=run.device,
    )  # fmt: skip


def _fit(run: Run, training: Training, inputs: Inputs) -> None:
    """Epochs until early stopping or the cap; a checkpoint and metrics.jsonl after each."""
    batch_size = int(run.exp["train"]["batch_size"])
    max_epochs = run.exp["train"]["early_stopping"]["max_epochs"]
    log.info(
        "%s: %d train images, batch %d -> %d steps per epoch, %s on %s", run.name,
        len(inputs.train), batch_size, -(-len(inputs.train) // batch_size), training.precision,
        run.device,
    )  # fmt: skip
    losses, stopper, finished = run.losses(), training.stopper, False
    epoch = len(training.history) + 1
    while not finished:
        record = _epoch(run, training, inputs, epoch, losses)
        record["best"] = stopper.update(epoch, record[stopper.monitor])
        training.history.append(record)
        if training.scheduler is not None:
            training.scheduler.step()
        finished = stopper.should_stop or (max_epochs is not None and epoch >= max_epochs)
        checkpoint.save(
            run.folder.checkpoints(run.digest), epoch, training.model,
            training.state(run.digest, epoch, finished), best_epoch=stopper.best_epoch,
        )  # fmt: skip
        write_metrics(run.folder.metrics, training.history)
        _log_epoch(run.name, record)
        epoch += 1


def _epoch(run: Run, training: Training, inputs: Inputs, epoch: int, losses: tuple) -> dict:
    """Train one epoch and validate: the epoch's metrics record (without `best`)."""
    batch_size, desc = int(run.exp["train"]["batch_size"]), f"{run.name} epoch {epoch}"
    # one generator per epoch: first every augmentation draw, then the order
    generator = seed_everything(epoch_seed(run_seed(run.cfg), epoch))
    train_loader = BatchLoader(
        inputs.train, batch_size, shuffle=True, generator=generator,
        transform=inputs.pipeline.train_transform(len(inputs.train), generator),
        device=run.device, chunk_batches=int(run.cfg["performance"]["chunk_batches"]),
    )  # fmt: skip
    lrs = {g["name"]: g["lr"] for g in training.optimizer.param_groups}
    start = time.perf_counter()
    record: dict = {"epoch": epoch}
    record |= train_one_epoch(
        training.model, train_loader, training.optimizer, losses[0], run.device,
        training.precision, training.scaler, forward=inputs.forward, progress=run.progress,
        desc=f"{desc} train",
    )  # fmt: skip
    val_start = time.perf_counter()
    loaders = {"val": inputs.val_loader, "holdout": inputs.holdout_loader}
    for split, loader in loaders.items():
        if loader is not None:  # the held-out images only where the epoch is chosen on them
            per_image = predict(
                training.model, loader, losses[1], run.device, training.precision,
                forward=inputs.forward, progress=run.progress, desc=f"{desc} {split}",
            )  # fmt: skip
            record |= summarize(per_image, batch_size, prefix=split)
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
    if "holdout_acc" in record:
        log.info("%s epoch %d: held out acc %.2f", name, record["epoch"], record["holdout_acc"])


def _finish(
    run: Run, training: Training, inputs: Inputs, latest: checkpoint.Checkpoint | None, started: str
) -> None:
    """Publish the best epoch's weights as the model (both notebooks restored the best), and
    record the train section of provenance.json."""
    model = checkpoint.publish_best(
        run.folder.checkpoints(run.digest), training.stopper.best_epoch, run.folder.model
    )
    write_metrics(run.folder.metrics, training.history)
    record = run.record(model=model)
    record |= {
        "precision": training.precision,
        "configured_precision": run.exp["train"]["precision"],
        "selection": run.exp["train"]["selection"],
        "epochs": len(training.history),
        "best_epoch": training.stopper.best_epoch,
        "performance": run.cfg["performance"] | {"data_on": _data_device(inputs.train)},
        "resumed_after_epoch": latest.epoch if latest is not None else None,
        "started": started,
        "finished": provenance.now(),
    }
    update_provenance(run.folder.provenance, "train", record)


def evaluate_experiment(cfg: dict, name: str, out: Path, *, progress: bool = True) -> dict:
    """Evaluate `<out>/model.safetensors` on the validation split; write predictions.csv and
    summary.json, and return the summary."""
    cfg = run_settings(cfg, name, run_seed(cfg))  # as train_experiment
    folder = RunFolder(out)
    if not folder.model.is_file():
        raise RunError(f"no trained model at {folder.model}: run `train` for {name!r} first")
    storage.require_writable(folder.root, "the evaluation", _WRITABLE)
    started = provenance.now()
    with folder.writing():
        device = resolve_device(cfg["device"])
        configure_performance(cfg["performance"])
        run = Run(cfg, name, folder, device, load_store(cfg["data"], progress=progress), progress)
        trained = _refuse_other_run(run, "train").get("model")  # the model train published
        model = run.build_model(pretrained=False)
        fix = f"delete it and rerun `train` for {name!r}, which copies the best checkpoint again"
        checkpoint.load_weights(model, folder.model, fix, expected=trained)
        precision = effective_precision(run.exp["train"]["precision"], device)
        per_image = _predict_val(run, model, precision)
        frame = predictions_frame(per_image, run.store.val.image_ids)
        summary = _summary(run, frame, per_image)
        write_predictions(frame, folder.predictions)
        atomic.write_json(folder.summary, summary)
        record = run.record(model=trained, precision=precision, started=started)
        update_provenance(folder.provenance, "evaluate", record | {"finished": provenance.now()})
    log.info(
        "%s: accuracy %.2f %% (batch-mean %.2f %%), 95 %% CI [%.2f, %.2f], top-5 %.2f %%",
        name, summary["accuracy"], summary["accuracy_batch_mean"], *summary["wilson95"],
        summary["top5"],
    )  # fmt: skip
    return summary


def _predict_val(run: Run, model: nn.Module, precision: str) -> dict:
    """Per-image results of `model` on the validation split, in validation order."""
    loader = _eval_loader(run, run.store.val, Pipeline.from_config(run.cfg, run.exp))
    return predict(
        model, loader, run.losses()[1], run.device, precision,
        forward=make_forward(model, run.cfg["performance"]), progress=run.progress,
        desc=f"{run.name} evaluate",
    )  # fmt: skip


def _summary(run: Run, frame, per_image: dict) -> dict:
    """summary.json: the accuracies, loss, and the epochs of the run that made the model."""
    summary = {"experiment": run.name, "title": run.exp.get("title", run.name)}
    batch_size = int(run.exp["train"]["batch_size"])
    summary |= summarize_predictions(frame, run.store.classes, batch_size)
    summary["loss"] = float(per_image["loss"].mean())
    if run.folder.metrics.is_file():
        history = read_metrics(run.folder.metrics).to_dict("records")
        summary["epochs"] = len(history)
        summary["best_epoch"] = next((r["epoch"] for r in reversed(history) if r["best"]), None)
        if run.exp["train"]["selection"] == "holdout":
            summary["validation_selection"] = _validation_selection(run.exp, history)
    return summary


def _validation_selection(exp: dict, history: list[dict]) -> dict:
    """What choosing the epoch on the validation images would have reported in this run (its
    early stopping replayed on the logged validation metric): the epoch and its accuracy."""
    stop = exp["train"]["early_stopping"]
    epoch = replay_selection(history, stop["monitor"], stop["patience"], stop["min_delta"])
    record = next(r for r in history if r["epoch"] == epoch)
    return {"epoch": epoch, "accuracy": record["val_acc"]}
