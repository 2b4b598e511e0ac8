"""One epoch of training, one pass of evaluation, the schedule and early stopping.

The notebooks logged means of per-batch values; the exact per-image figures are computed beside
them, so that a figure can be compared with either. Accuracies are in percent, like the paper.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # plain bars: tqdm.auto warns in a notebook without ipywidgets

from convnext_tinyimagenet.data.store import Split
from convnext_tinyimagenet.stats import batch_means

log = logging.getLogger(__name__)

# what early stopping may watch: on the validation images, or on held-out training images
MONITORS = tuple(
    f"{split}_{metric}"
    for split in ("val", "holdout")
    for metric in ("loss", "acc", "loss_batch_mean", "acc_batch_mean")
)
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
Forward = Callable[[torch.Tensor], torch.Tensor]  # batch -> logits (or features)


def effective_precision(precision: str, device: torch.device) -> str:
    """The precision a run really uses: the configured one on CUDA, fp32 elsewhere."""
    return precision if device.type == "cuda" else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """torch.autocast for fp16/bf16 (the baseline notebook's `autocast('cuda')`), else no-op."""
    if precision in AUTOCAST_DTYPES:
        return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])
    return contextlib.nullcontext()


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 (as the baseline notebook used); bf16 and fp32 need none."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def make_scheduler(
    optimizer: torch.optim.Optimizer, scheduler_cfg: dict | None
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """CosineAnnealingLR stepped once per epoch (improved run), or None (constant lr)."""
    if not scheduler_cfg:
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=int(scheduler_cfg["t_max"]), eta_min=float(scheduler_cfg["eta_min"])
    )


@dataclass
class EarlyStopping:
    """Stop after `patience` epochs without improvement of `monitor`, as each notebook counted it.

    Losses improve downwards, accuracies upwards, and the notebooks differ on a tie. The
    baseline's EarlyStopping counted an epoch as bad when `val_loss > best_loss - min_delta`, so a
    loss of `best - min_delta` or less improves: with min_delta 0 an equal loss becomes the best
    epoch (its checkpoint saved) and resets the count. The improved loop counted only
    `val_acc > best_val`, so an equal accuracy is a bad epoch. With patience 5 the baseline
    stopped at epoch 6 with its best at 1, the improved run at epoch 12 with its best at 7.
    """

    monitor: str
    patience: int
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor {self.monitor!r} is not one of {', '.join(MONITORS)}")

    def update(self, epoch: int, value: float) -> bool:
        """Record one epoch's value; return True when it is the new best."""
        if self.best is None:
            improved = True
        elif "loss" in self.monitor:
            improved = value <= self.best - self.min_delta  # the baseline's: a tie improves
        else:
            improved = value > self.best + self.min_delta  # the improved run's: a tie does not
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return asdict(self)


def replay_selection(history: list[dict], monitor: str, patience: int, min_delta: float) -> int:
    """The epoch early stopping on `monitor` would have kept over `history` (metrics records),
    stopping where it would have stopped."""
    stopper = EarlyStopping(monitor, patience, min_delta)
    for record in history:
        stopper.update(record["epoch"], record[monitor])
        if stopper.should_stop:
            break
    return stopper.best_epoch


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed for one epoch, so that epoch e draws the same numbers whether or not it resumed."""
    return (seed * 1_000_003 + epoch * 7_919) % (2**31 - 1)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a fresh generator for the data order."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resident(split: Split, device: torch.device, mode: str | bool = "auto") -> Split:
    """The split with its images (or features) in an NCHW tensor on `device`, when asked or useful.

    ``auto`` moves them to a CUDA device when they take at most half of its free memory
    (TinyImageNet's 100,000 x 3 x 64 x 64 uint8 images are 1.2 GB); ``true`` always moves them;
    ``false`` keeps the memory-mapped store, read per chunk.
    """
    images, off_gpu = split.images, mode == "auto" and device.type != "cuda"
    if mode is False or mode == "false" or off_gpu or isinstance(images, torch.Tensor):
        return split
    if mode == "auto":
        free, _ = torch.cuda.mem_get_info(device)
        if images.nbytes > free // 2:
            log.info("data: %.1f GB do not fit in half of the GPU's free %.1f GB; reading from "
                     "host memory", images.nbytes / 1e9, free / 1e9)  # fmt: skip
            return split
    # copied 8,192 rows at a time: bounded host memory for the layout change
    parts = [_nchw(torch.from_numpy(np.array(images[i : i + 8192])).to(device))
             for i in range(0, len(images), 8192)]  # fmt: skip
    log.info("data: %d rows held on %s (%.2f GB)", len(images), device, images.nbytes / 1e9)
    return Split(torch.cat(parts), split.labels, split.image_ids)


def _nchw(rows: torch.Tensor) -> torch.Tensor:
    """NHWC images -> contiguous NCHW; feature rows (2-D) as they are."""
    return rows.permute(0, 3, 1, 2).contiguous() if rows.ndim == 4 else rows


def _rows(images, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Rows `index` of a store (memory map: NHWC -> NCHW; device tensor: already NCHW)."""
    if isinstance(images, torch.Tensor):
        rows = images.index_select(0, index.to(images.device, non_blocking=True))
        return rows.to(device, non_blocking=True)
    batch = torch.from_numpy(np.ascontiguousarray(images[index.numpy()]))
    return _nchw(batch).to(device, non_blocking=True)


class BatchLoader:
    """Network-ready batches of a split: (inputs, labels, row indices), on `device`.

    `transform` maps ``(uint8 rows on device, positions in the pass)`` to inputs. Rows are read
    and transformed `chunk_batches` batches at a time; the batches do not depend on the chunk
    size, since the training transform's random numbers belong to positions in the epoch.
    """

    def __init__(self, split: Split, batch_size: int, *, shuffle: bool,
                 generator: torch.Generator | None = None,
                 transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 device: torch.device | str = "cpu", chunk_batches: int = 1) -> None:  # fmt: skip
        self.split, self.batch_size = split, int(batch_size)
        self.shuffle, self.generator, self.transform = shuffle, generator, transform
        self.device = torch.device(device)
        self.chunk = self.batch_size * max(1, int(chunk_batches))
        self.labels = torch.from_numpy(np.array(split.labels, dtype=np.int64))  # a copy

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.chunk):
            index = order[start : start + self.chunk]
            x = _rows(self.split.images, index, self.device)
            if self.transform is not None:
                x = self.transform(x, torch.arange(start, start + len(index)))
            y = self.labels[index].to(self.device, non_blocking=True)
            for b in range(0, len(index), self.batch_size):
                end = b + self.batch_size
                yield x[b:end], y[b:end], index[b:end]


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                  scaler: torch.amp.GradScaler | None) -> None:  # fmt: skip
    """Backward pass and optimizer step, through the GradScaler when there is one (fp16)."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def _batches(loader: BatchLoader, desc: str, progress: bool) -> Iterator:
    return iter(tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch"))


def train_one_epoch(model: nn.Module, loader: BatchLoader, optimizer: torch.optim.Optimizer,
                    criterion: nn.Module, device: torch.device, precision: str,
                    scaler: torch.amp.GradScaler | None = None, *, forward: Forward | None = None,
                    progress: bool = False, desc: str = "train") -> dict:  # fmt: skip
    """Train one epoch; return exact and batch-mean loss and accuracy (%), images and seconds.

    `forward` maps batches to logits: the model by default, its `forward_head` for features.
    """
    model.train()
    forward = forward or model
    # Per-batch figures stay on the device until the epoch ends: reading them every step
    # (float(loss)) would make each GPU step wait for the previous one to finish.
    losses, corrects, sizes = [], [], []
    start = time.perf_counter()
    for x, labels, _ in _batches(loader, desc, progress):
        with autocast(precision, device):
            logits = forward(x)
            loss = criterion(logits, labels)
        backward_step(loss, optimizer, scaler)
        losses.append(loss.detach())
        corrects.append((logits.detach().argmax(1) == labels).sum())
        sizes.append(labels.numel())
    figures = _epoch_figures(losses, corrects, np.asarray(sizes))
    return figures | {"train_seconds": time.perf_counter() - start}


def _epoch_figures(losses: list, corrects: list, n: np.ndarray) -> dict:
    """Exact and batch-mean loss and accuracy of an epoch from per-batch figures (`n` sizes)."""
    batch_losses = torch.stack(losses).float().cpu().numpy().astype(np.float64)
    batch_correct = torch.stack(corrects).cpu().numpy()
    correct, seen = int(batch_correct.sum()), int(n.sum())
    return {
        "train_loss": float((batch_losses * n).sum()) / seen,
        "train_loss_batch_mean": float(np.mean(batch_losses)),
        "train_acc": 100.0 * correct / seen,
        "train_acc_batch_mean": float(np.mean(100.0 * batch_correct / n)),
        "train_images": seen,
    }


@torch.no_grad()
def predict(model: nn.Module, loader: BatchLoader, criterion: nn.Module, device: torch.device,
            precision: str, *, forward: Forward | None = None, progress: bool = False,
            desc: str = "eval") -> dict[str, np.ndarray]:  # fmt: skip
    """Per-image results in loader order: label, prediction, top-5 hit, confidence, loss.

    `criterion` must have reduction='none'; `forward` as in :func:`train_one_epoch`.
    """
    model.eval()
    forward = forward or model
    parts = []
    for x, labels, index in _batches(loader, desc, progress):
        with autocast(precision, device):
            logits = forward(x)
            losses = criterion(logits, labels)
        confidence, prediction = logits.float().softmax(1).max(1)
        top5 = (logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]).any(1)
        values = (index, labels, prediction, top5, confidence, losses.float())
        parts.append([value.cpu().numpy() for value in values])
    keys = ("index", "label", "prediction", "top5", "confidence", "loss")
    columns = zip(*parts, strict=True)  # per key, its arrays of every batch
    return {key: np.concatenate(column) for key, column in zip(keys, columns, strict=True)}


def summarize(per_image: dict[str, np.ndarray], batch_size: int, prefix: str = "val") -> dict:
    """Exact and batch-mean loss/accuracy (%) and top-5 (%) from per-image results."""
    correct = (per_image["prediction"] == per_image["label"]).astype(np.float64)
    return {
        f"{prefix}_loss": float(per_image["loss"].mean()),
        f"{prefix}_loss_batch_mean": batch_means(per_image["loss"], batch_size),
        f"{prefix}_acc": 100.0 * float(correct.mean()),
        f"{prefix}_acc_batch_mean": 100.0 * batch_means(correct, batch_size),
        f"{prefix}_top5": 100.0 * float(per_image["top5"].mean()),
    }
