"""Input pipeline of both published runs, on uint8 tensors instead of PIL images.

Published order (torchvision on PIL images, see published-recipe.md):
  baseline train/val and improved val: Resize((224, 224)) -> ToTensor -> Normalize
  improved train: Resize((224, 224)) -> RandAugment(2, 9) -> ToTensor -> Normalize
                  -> RandomErasing(p=0.15)

Here the same steps run on tensors so that they can run batched and on the GPU:

* Resize is bilinear interpolation of the uint8 image, rounded back to uint8 because PIL's
  Resize returns a uint8 image. Upsampling 64 -> 224 this way differs from PIL's fixed-point
  bilinear by at most 1 grey level per pixel and about 0.22 grey levels on average (measured on
  uniform-noise images, the worst case; `tests/test_transforms.py` holds the bound: mean <= 0.5,
  max <= 1).
* RandAugment is torchvision's, applied per image to the resized uint8 tensor (torchvision's
  tensor kernels instead of its PIL kernels; the ops, their order and magnitudes are the same).
* ToTensor + Normalize divide by 255, subtract the mean and divide by the std, per channel.
* RandomErasing is torchvision's, applied per image after normalisation (a batched call would
  erase the same rectangle in every image of the batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torchvision import transforms as T  # noqa: N812


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
class Pipeline:
    """The transforms of one experiment.

    Attributes:
        input_size: side of the square network input (224 in the paper).
        mean: per-channel normalisation mean (0-1 scale).
        std: per-channel normalisation standard deviation.
        randaugment: ``{"num_ops", "magnitude"}`` for training, or None.
        random_erasing: ``{"p"}`` for training, or None.
    """

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    randaugment: dict | None = None
    random_erasing: dict | None = None

    @classmethod
    def from_config(cls, cfg: dict, experiment: dict) -> Pipeline:
        """Build the pipeline from the whole config and one experiment's section."""
        augment = experiment.get("augment") or {}
        return cls(
            input_size=int(cfg["data"]["input_size"]),
            mean=tuple(cfg["normalize"]["mean"]),
            std=tuple(cfg["normalize"]["std"]),
            randaugment=augment.get("randaugment"),
            random_erasing=augment.get("random_erasing"),
        )

    def per_image(self, train: bool) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The per-image uint8 step (resize + RandAugment) for training, or None.

        Only RandAugment needs per-image work; everything else runs on whole batches in
        :meth:`batch`, on whatever device the batch is on.
        """
        if not (train and self.randaugment):
            return None
        augment = T.RandAugment(
            num_ops=int(self.randaugment["num_ops"]),
            magnitude=int(self.randaugment["magnitude"]),
        )
        size = self.input_size

        def transform(image: torch.Tensor) -> torch.Tensor:
            return augment(resize_uint8(image, size))

        return transform

    def batch(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 (N,3,H,W) -> normalised float (N,3,input_size,input_size), erased if training."""
        x = resize_uint8(images, self.input_size)
        x = normalize(x, self.mean, self.std)
        if train and self.random_erasing:
            x = erase_each(x, float(self.random_erasing["p"]))
        return x


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """ToTensor (divide by 255) then Normalize(mean, std), as the notebooks did."""
    m = torch.tensor(mean, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def erase_each(images: torch.Tensor, p: float) -> torch.Tensor:
    """torchvision RandomErasing(p) (default scale, ratio, value 0) on each image separately."""
    eraser = T.RandomErasing(p=p)
    return torch.stack([eraser(image) for image in images])
