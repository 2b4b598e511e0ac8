"""Checkpoints written atomically and loaded safely, every file checked against its digest.

Layout of `<out>/checkpoints/`:
  epoch-NNN.safetensors   model weights after epoch NNN (safetensors: no code on load)
  epoch-NNN.state.pt      optimizer, scheduler, scaler, early stopping, history: plain tensors
                          and Python scalars, loaded with torch.load(weights_only=True)
  best-NNN.safetensors    weights of the best epoch so far (NNN as recorded in the state)
  latest.json             names the last *complete* epoch, and the digest of each file of it;
                          written last, atomically

A run killed at any moment resumes from the complete epoch latest.json names; older files go only
once a newer epoch is complete. The best weights end as `<out>/model.safetensors`, checked before
and after the copy.

Every safetensors file written here (weights, the published model, the feature cache) carries the
digest of its tensors in its own metadata, so it checks itself wherever it lies; latest.json pins
which files make up the checkpoint. A damaged file is one line naming it and what to delete, never
a model trained on or published from it. Hashing costs at most 1.2 % of a demo epoch
(docs/performance.md).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from convnext_tinyimagenet import atomic, storage
from convnext_tinyimagenet.errors import ArtifactError

TENSOR_DIGEST = "digest"  # metadata key of a safetensors file: the digest of its tensors
_SLACK = 1 << 20  # headers and pickling beyond the tensors' bytes, in the space check


class CheckpointError(ArtifactError):
    """A checkpoint that cannot be used (named in the message)."""


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    weights: Path
    state: dict
    digests: dict[str, str] = field(default_factory=dict)  # file name -> digest (latest.json)


# Self-checking safetensors files --------------------------------------------------------------
def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """Digest of named tensors: of each name with the digest of its tensor, in name order."""
    return _combine({name: _tensor_digest(name, tensor) for name, tensor in tensors.items()})


def _tensor_digest(name: str, tensor: torch.Tensor) -> str:
    """Digest of one tensor's name, dtype, shape and bytes."""
    tensor = tensor.detach().to("cpu").contiguous()
    digest = storage.hasher()
    digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _combine(digests: Mapping[str, str]) -> str:
    combined = storage.hasher()
    for name in sorted(digests):
        combined.update(f"{name}={digests[name]};".encode())
    return storage.hexdigest(combined)


def write_tensors(
    path: Path, tensors: Mapping[str, torch.Tensor], digest: str | None = None
) -> str:
    """Atomically write `tensors` as safetensors with their digest (`digest`, if already known)
    in the metadata; return it."""
    digest = digest or tensors_digest(tensors)
    metadata = {TENSOR_DIGEST: digest}
    atomic.write_with(path, lambda tmp: save_file(dict(tensors), str(tmp), metadata=metadata))
    return digest


def read_tensors(path: Path, fix: str, expected: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a file :func:`write_tensors` wrote, once they match the digest in its
    metadata (and `expected`, where a record names one); else a StorageError naming `path`
    and saying `fix`."""
    if not Path(path).is_file():
        raise storage.StorageError(f"{path} does not exist; {fix}")
    try:
        with safe_open(str(path), "pt") as handle:
            recorded = (handle.metadata() or {}).get(TENSOR_DIGEST)
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises SafetensorError, OSError, ValueError, ...
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise storage.StorageError(
            f"{path} is not a readable safetensors file ({reason}); {fix}"
        ) from exc
    if recorded is None:
        raise storage.StorageError(f"{path} carries no digest (an older version wrote it); {fix}")
    if tensors_digest(tensors) != recorded or expected not in (None, recorded):
        raise storage.damaged(path, fix)
    return tensors


def save_weights(model: nn.Module, path: Path) -> str:
    """Atomically write the model's state dict as safetensors; return its digest."""
    return write_tensors(path, *_cpu_state(model))


def _cpu_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], str]:
    """The model's state dict on the CPU, and its digest."""
    tensors = {k: t.detach().to("cpu").contiguous() for k, t in model.state_dict().items()}
    return tensors, _combine({name: _tensor_digest(name, t) for name, t in tensors.items()})


def load_weights(model: nn.Module, path: Path, fix: str, expected: str | None = None) -> None:
    """Load checked safetensors weights into `model` (all keys must match)."""
    state = read_tensors(path, fix, expected)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"weights file {path} does not fit the model: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )


# Checkpoints ---------------------------------------------------------------------------------
def restart_hint(directory: Path) -> str:
    return f"delete {directory} to start this run over"


def save(directory: Path, epoch: int, model: nn.Module, state: dict,
         best_epoch: int | None) -> None:  # fmt: skip
    """Write an epoch's weights (also as best-NNN when it is the best) and state, point
    latest.json at them with their digests, then remove the older files and any leftovers of
    interrupted saves. The room for all of it is checked first."""
    directory.mkdir(parents=True, exist_ok=True)
    atomic.sweep(directory)
    (tensors, digest), stem = _cpu_state(model), f"epoch-{epoch:03d}"
    weights_bytes = sum(t.nbytes for t in tensors.values())
    needed = weights_bytes * (2 if epoch == best_epoch else 1) + _nbytes(state) + _SLACK
    storage.check_space(directory, needed, f"the epoch {epoch} checkpoint")
    weights = directory / f"{stem}.safetensors"
    digests = {weights.name: write_tensors(weights, tensors, digest)}
    best = f"best-{best_epoch:03d}.safetensors" if best_epoch is not None else None
    if epoch == best_epoch:
        atomic.write_with(directory / best, lambda tmp: shutil.copyfile(weights, tmp))
        digests[best] = digests[weights.name]
    elif best is not None:  # an earlier epoch's file, pinned by the pointer of that epoch on
        digests[best] = _pointer(directory)["digests"].get(best)
    state_path = directory / f"{stem}.state.pt"
    atomic.write_with(state_path, lambda tmp: torch.save(state, tmp))
    digests[state_path.name] = storage.file_digest(state_path)
    atomic.write_json(
        directory / "latest.json",
        {"epoch": epoch, "weights": f"{stem}.safetensors", "state": state_path.name,
         "best": best, "digests": digests},
    )  # fmt: skip
    keep = {*digests, "latest.json"}
    for old in directory.glob("*"):
        if old.name not in keep and not old.name.startswith("."):
            old.unlink(missing_ok=True)


def _nbytes(value: Any) -> int:
    """Bytes of the tensors in a (nested) state dict: what torch.save writes, less pickling."""
    if isinstance(value, torch.Tensor):
        return value.nbytes
    if isinstance(value, Mapping):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_nbytes(v) for v in value)
    return 0


def _pointer(directory: Path) -> dict:
    """latest.json's `epoch`, `weights`, `state` and `digests` (file name -> digest); a pointer
    that cannot be read is a CheckpointError."""
    pointer = directory / "latest.json"
    try:
        latest = json.loads(pointer.read_text())
        digests = dict(latest.get("digests") or {})
        return {"epoch": int(latest["epoch"]), "weights": str(latest["weights"]),
                "state": str(latest["state"]), "digests": digests}  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"checkpoint pointer {pointer} cannot be read ({exc}); {restart_hint(directory)}"
        ) from exc


def publish_best(directory: Path, best_epoch: int | None, target: Path) -> str:
    """Copy the best epoch's weights to `target` (the run's model.safetensors), checked against
    the digest latest.json records before the copy and as written after it; return the digest.
    A damaged file leaves `target` as it was."""
    best = directory / f"best-{best_epoch or 0:03d}.safetensors"
    if best_epoch is None or not best.is_file():
        raise CheckpointError(
            f"the best epoch's weights ({best}) are missing; {restart_hint(directory)}"
        )
    expected, fix = _pointer(directory)["digests"].get(best.name), restart_hint(directory)
    if expected is None:
        raise CheckpointError(f"{directory / 'latest.json'} records no digest of {best}; {fix}")
    read_tensors(best, fix, expected)  # before: the checkpoint is what was saved
    storage.check_space(target.parent, best.stat().st_size, f"the model {target.name}")

    def copy(tmp: Path) -> None:
        shutil.copyfile(best, tmp)
        try:
            read_tensors(tmp, "", expected)
        except storage.StorageError as exc:
            raise CheckpointError(
                f"the copy of {best} to {target} does not match its digest (a failing disk?); "
                f"{target} was left as it was: rerun to copy it again"
            ) from exc

    atomic.write_with(target, copy)  # after: the copy is what was checked
    return str(expected)


def load_latest(directory: Path) -> Checkpoint | None:
    """The last complete checkpoint in `directory`, or None when there is none; its state file
    is checked here, its weights when they are loaded (:func:`load_weights`)."""
    if not (directory / "latest.json").is_file():
        return None
    latest = _pointer(directory)
    state_path, fix = directory / latest["state"], restart_hint(directory)
    storage.verify_file(state_path, latest["digests"].get(state_path.name), fix)
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure: the file, not the pointer, is at fault
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"checkpoint state {state_path} cannot be read ({reason}); {fix}"
        ) from exc
    return Checkpoint(latest["epoch"], directory / latest["weights"], state, latest["digests"])
