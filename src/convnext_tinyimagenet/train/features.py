"""Cached frozen-backbone features: the baseline's fast path with the same semantics.

ConvNeXt has no batch norm and the published baseline used no stochastic depth, dropout or
augmentation, so an image's pooled feature is a pure function of its pixels: training the head on
features computed once is the notebook's full forward pass every epoch, up to the rounding of
batched kernels (`tests/test_features.py`). The backbone ends in LayerNorm, which fp16 autocast
runs in fp32, so float32 features and the head under the same autocast keep the numerics.

The cache lies in `data.features_dir`, by default `<data.cache_dir>/features` (a read-only shared
data cache takes a writable features_dir of its own). Each file carries its digest; a damaged one
is derived data, so it is computed again, with a message.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from convnext_tinyimagenet import storage
from convnext_tinyimagenet.data.store import Split, Store
from convnext_tinyimagenet.data.transforms import Pipeline, Transform
from convnext_tinyimagenet.train.checkpoint import read_tensors, write_tensors
from convnext_tinyimagenet.train.engine import BatchLoader, Forward, autocast

log = logging.getLogger(__name__)


class FeaturePipeline:
    """The input step of the cached path: features are already the model's head input."""

    def train_transform(self, n: int, generator: torch.Generator | None) -> Transform:
        return self.eval_transform()

    def eval_transform(self) -> Transform:
        return lambda features, positions: features.float()


def cacheable(experiment: dict) -> bool:
    """True when an experiment's backbone is frozen and its data not augmented: every epoch's
    backbone output is then the same."""
    frozen = not any(
        module == "backbone" or module.startswith("backbone.")
        for group in experiment["trainable"]
        for module in group["modules"]
    )
    augment = experiment["augment"]
    return frozen and not augment["randaugment"] and not augment["random_erasing"]


def features_dir(data_cfg: dict) -> Path:
    """Where the feature cache lies: `data.features_dir`, else `features/` in `data.cache_dir`
    (both with `~` expanded, as the data cache's own folder is)."""
    chosen = data_cfg.get("features_dir") or Path(data_cfg["cache_dir"]) / "features"
    return Path(chosen).expanduser()


def backbone_digest(model: nn.Module) -> str:
    """sha256 of the backbone's weights: the cache key must change with them."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def extract(model: nn.Module, split: Split, pipeline: Pipeline, device: torch.device,
            precision: str, batch_size: int,
            forward: Forward | None = None) -> torch.Tensor:  # fmt: skip
    """Pooled float32 features (N, D) of `split` in its order, by `forward` (``model.features``)."""
    model.eval()
    forward = forward or model.features
    parts = []
    loader = BatchLoader(split, batch_size, shuffle=False, transform=pipeline.eval_transform(),
                         device=device)  # fmt: skip
    for x, _, _ in loader:
        with autocast(precision, device):
            parts.append(forward(x).float())  # kept on the device: no wait per batch
    return torch.cat(parts).cpu()


def cached_features(model: nn.Module, store: Store, pipeline: Pipeline, device: torch.device,
                    precision: str, batch_size: int, cache_dir: Path,
                    forward: Forward | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """Train and validation features, from `cache_dir` when the same ones were made before."""
    made_by = (store.fingerprint, backbone_digest(model), pipeline.input_size, pipeline.mean,
               pipeline.std, precision)  # fmt: skip
    if getattr(model, "spatial", False):  # feature maps, not pooled vectors: never the same file
        made_by += ("feature maps",)
    matmuls = torch.get_float32_matmul_precision()  # the run's performance setting, as applied
    if matmuls != "highest":  # TF32 matmuls make other features; fp32's key stays as it was
        made_by += (f"float32 matmuls {matmuls}",)
    key = hashlib.sha256(repr(made_by).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"features-{key}.safetensors"
    if path.is_file():
        try:
            tensors = read_tensors(path, "computing the features again")
        except storage.StorageError as exc:
            log.warning("features: %s", exc)
        else:
            log.info("features: reusing %s", path)
            return tensors
    storage.require_writable(
        path.parent, "the feature cache", "set data.features_dir to a writable folder"
    )
    log.info("features: one forward pass over train and validation -> %s", path)
    tensors = {
        name: extract(model, split, pipeline, device, precision, batch_size, forward)
        for name, split in (("train", store.train), ("val", store.val))
    }
    needed = sum(t.nbytes for t in tensors.values()) + (1 << 20)
    storage.check_space(path.parent, needed, f"the feature cache {path.name}")
    write_tensors(path, tensors)
    return tensors


def feature_split(features: torch.Tensor, split: Split) -> Split:
    """A split whose 'images' are feature vectors, so the same loaders and order apply."""
    return Split(features.numpy(), np.asarray(split.labels), np.asarray(split.image_ids))
