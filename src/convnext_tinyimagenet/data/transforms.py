"""Input pipeline of both published runs, on batches of uint8 tensors on the training device.

Published (torchvision on PIL, published-recipe.md): Resize((224, 224)) -> [RandAugment(2, 9),
improved train only] -> ToTensor -> Normalize -> [RandomErasing(p=0.15), improved train only].
Resize here is bilinear, rounded back to uint8 as PIL's is: upsampling 64 -> 224 differs from
PIL's fixed-point bilinear by at most 1 grey level, about 0.22 on average (uniform noise, the
worst case; tests/test_transforms.py holds mean <= 0.5, max <= 1). An epoch's random numbers are
drawn up front per position, so how it is cut into batches changes nothing. `augment.at: source`
(off by default) augments the 64x64 image before the resize: about 12x fewer pixels, but not what
the notebook computed (interpolation smooths the result; translations move by 64-px pixels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812

from convnext_tinyimagenet.data import augment


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of uint8 images (C,H,W or N,C,H,W) to size x size, returned as uint8."""
    if images.shape[-2:] == (size, size):
        return images
    batched = images.ndim == 4
    x = images if batched else images.unsqueeze(0)
    x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
    x = x.round_().clamp_(0, 255).to(torch.uint8)
    return x if batched else x.squeeze(0)


@dataclass(frozen=True)
class Draws:
    """Every random number that augments a set of images (rows = positions in an epoch)."""

    ops: torch.Tensor | None = None  # RandAugment's op indices, (N, num_ops)
    negated: torch.Tensor | None = None  # and signs
    erasing: torch.Tensor | None = None  # RandomErasing's uniforms, (N, 3 + 2 * attempts)

    def rows(self, index: torch.Tensor) -> Draws:
        """The draws of some positions."""
        draws = (self.ops, self.negated, self.erasing)
        return Draws(*(None if t is None else t[index] for t in draws))


Transform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Pipeline:
    """The transforms of one experiment."""

    input_size: int  # side of the square network input (224 in the paper)
    mean: tuple[float, float, float]  # per-channel normalisation, on the 0-1 scale
    std: tuple[float, float, float]
    randaugment: dict | None = None  # {"num_ops", "magnitude"} for training
    random_erasing: dict | None = None  # {"p"} for training
    augment_at: str = "input"  # after the resize, as published, or "source" (before it)

    @classmethod
    def from_config(cls, cfg: dict, experiment: dict) -> Pipeline:
        """Build the pipeline from the whole config and one experiment's section."""
        augment = experiment.get("augment") or {}
        return cls(input_size=int(cfg["data"]["input_size"]),
                   mean=tuple(cfg["normalize"]["mean"]), std=tuple(cfg["normalize"]["std"]),
                   randaugment=augment.get("randaugment"),
                   random_erasing=augment.get("random_erasing"),
                   augment_at=augment.get("at", "input"))  # fmt: skip

    @property
    def augments(self) -> bool:
        """True when training images are augmented (randomly, per image)."""
        return bool(self.randaugment or self.random_erasing)

    def draw(self, n: int, generator: torch.Generator | None) -> Draws:
        """All random numbers for augmenting n training images (one epoch), on the CPU."""
        ops = negated = erasing = None
        if self.randaugment:
            ops, negated = augment.draw_randaugment(n, int(self.randaugment["num_ops"]), generator)
        if self.random_erasing:
            erasing = augment.draw_erasing(n, generator)
        return Draws(ops, negated, erasing)

    def train_transform(self, n: int, generator: torch.Generator | None) -> Transform:
        """``(uint8 images, their positions in the epoch) -> network input`` for one epoch."""
        draws = self.draw(n, generator)
        return lambda images, positions: self.batch(images, draws.rows(positions))

    def eval_transform(self) -> Transform:
        """``(uint8 images, positions) -> network input`` without augmentation."""
        return lambda images, positions: self.batch(images)

    def batch(self, images: torch.Tensor, draws: Draws | None = None) -> torch.Tensor:
        """uint8 (N,3,H,W) -> normalised float (N,3,input_size,input_size); with `draws`
        (training), RandAugment before normalising and RandomErasing after it."""
        x = images
        randaugment = draws is not None and draws.ops is not None
        if randaugment and self.augment_at == "source":
            x = augment.randaugment(x, draws.ops, draws.negated, int(self.randaugment["magnitude"]))
        x = resize_uint8(x, self.input_size)
        if randaugment and self.augment_at == "input":
            x = augment.randaugment(x, draws.ops, draws.negated, int(self.randaugment["magnitude"]))
        x = normalize(x, self.mean, self.std)
        if draws is not None and draws.erasing is not None:
            x = augment.random_erasing(x, draws.erasing, float(self.random_erasing["p"]))
        return x


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """ToTensor (divide by 255) then Normalize(mean, std), as torchvision computes them."""
    # made on the host, copied without waiting (torch.tensor(..., device=cuda) waits for the GPU)
    m, s = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in (mean, std))
    m, s = m.to(images.device, non_blocking=True), s.to(images.device, non_blocking=True)
    return images.to(torch.float32, copy=True).div_(255.0).sub_(m).div_(s)
