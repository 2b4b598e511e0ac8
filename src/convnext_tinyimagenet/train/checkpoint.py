"""Checkpoints written atomically and loaded safely.

Layout of `<out>/checkpoints/`:
  epoch-NNN.safetensors   model weights after epoch NNN (safetensors: no code on load)
  epoch-NNN.state.pt      optimizer, scheduler, scaler, early stopping, history: plain tensors
                          and Python scalars, loaded with torch.load(weights_only=True)
  best-NNN.safetensors    weights of the best epoch so far (NNN as recorded in the state)
  latest.json             names the last *complete* epoch; written last, atomically

A run killed at any moment resumes from the complete epoch latest.json names; older files go only
once a newer epoch is complete. The best weights end as `<out>/model.safetensors`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.errors import ArtifactError


class CheckpointError(ArtifactError):
    """A checkpoint that cannot be used (named in the message)."""


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    weights: Path
    state: dict


def save_weights(model: nn.Module, path: Path) -> Path:
    """Atomically write the model's state dict as safetensors."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return atomic.write_with(path, lambda tmp: save_file(tensors, str(tmp)))


def load_weights(model: nn.Module, path: Path) -> None:
    """Load safetensors weights into `model` (all keys must match)."""
    if not Path(path).is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise CheckpointError(
            f"weights file {path} is not a readable safetensors file: {exc}"
        ) from exc
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"weights file {path} does not fit the model: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )


def save(directory: Path, epoch: int, model: nn.Module, state: dict,
         best_epoch: int | None) -> None:  # fmt: skip
    """Write an epoch's weights (also as best-NNN when it is the best) and state, point
    latest.json at them, then remove the older files."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"epoch-{epoch:03d}"
    weights = save_weights(model, directory / f"{stem}.safetensors")
    if epoch == best_epoch:
        best = directory / f"best-{epoch:03d}.safetensors"
        atomic.write_with(best, lambda tmp: shutil.copyfile(weights, tmp))
    atomic.write_with(directory / f"{stem}.state.pt", lambda tmp: torch.save(state, tmp))
    atomic.write_json(
        directory / "latest.json",
        {"epoch": epoch, "weights": f"{stem}.safetensors", "state": f"{stem}.state.pt"},
    )
    keep = {f"{stem}.safetensors", f"{stem}.state.pt", "latest.json"}
    if best_epoch is not None:
        keep.add(f"best-{best_epoch:03d}.safetensors")
    for old in directory.glob("*"):
        if old.name not in keep and not old.name.startswith("."):
            old.unlink(missing_ok=True)


def best_weights(directory: Path, best_epoch: int | None) -> Path:
    """Path of the best epoch's weights kept by :func:`save`."""
    path = directory / f"best-{best_epoch or 0:03d}.safetensors"
    if best_epoch is None or not path.is_file():
        raise CheckpointError(f"the best epoch's weights ({path}) are missing")
    return path


def load_latest(directory: Path) -> Checkpoint | None:
    """The last complete checkpoint in `directory`, or None when there is none."""
    pointer = directory / "latest.json"
    if not pointer.is_file():
        return None
    try:
        latest = json.loads(pointer.read_text())
        state = torch.load(directory / latest["state"], map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {pointer} cannot be read ({exc}); delete {directory} to start over"
        ) from exc
    return Checkpoint(int(latest["epoch"]), directory / latest["weights"], state)
