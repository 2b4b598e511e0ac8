"""RandAugment and RandomErasing drawn per image but computed per batch, on any device.

The improved notebook ran torchvision's ``RandAugment(2, 9)`` and ``RandomErasing(p=0.15)`` per
PIL image in two DataLoader workers: about 650 images/s. Here each image still draws its own ops
and magnitudes from torchvision's distributions, but a batch is sorted by the op drawn and each
op runs once on its slice, as torchvision's arithmetic without per-image loops or device waits;
``tests/test_augment.py`` checks every op and sign pixel for pixel against torchvision. The draws
are made on the CPU (transforms.Pipeline: a whole epoch at its start), so a GPU never waits on
the host; the notebook's unseeded two-worker random stream cannot be reproduced.
"""

from __future__ import annotations

import functools
import itertools
import math

import torch
from torchvision.transforms import InterpolationMode, RandAugment
from torchvision.transforms import functional as TF  # noqa: N812

# torchvision's RandAugment op list, in its order (RandAugment._augmentation_space)
OPS = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
    "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
)  # fmt: skip
GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
BLENDS = ("Brightness", "Color", "Contrast", "Sharpness")


@functools.cache
def op_table(num_ops: int, magnitude: int, num_bins: int, height: int, width: int) -> dict:
    """``{op: (magnitude, signed)}`` for one image size, from torchvision's own table."""
    space = RandAugment(num_ops, magnitude, num_bins)._augmentation_space(num_bins, (height, width))
    if tuple(space) != OPS:
        raise RuntimeError(f"torchvision's RandAugment ops changed: {list(space)}")
    return {
        name: (float(values[magnitude].item()) if values.ndim > 0 else 0.0, bool(signed))
        for name, (values, signed) in space.items()
    }


def geometric_op(image: torch.Tensor, op: str, value: float) -> torch.Tensor:
    """One geometric op exactly as torchvision's RandAugment calls it (nearest, zero fill)."""
    nearest = InterpolationMode.NEAREST
    if op == "Rotate":
        return TF.rotate(image, value, interpolation=nearest)
    shear = {"ShearX": [math.degrees(math.atan(value)), 0.0],
             "ShearY": [0.0, math.degrees(math.atan(value))]}.get(op, [0.0, 0.0])  # fmt: skip
    translate = {"TranslateX": [int(value), 0], "TranslateY": [0, int(value)]}.get(op, [0, 0])
    center = [0, 0] if op in ("ShearX", "ShearY") else None  # shears about the top-left corner
    return TF.affine(image, angle=0.0, translate=translate, scale=1.0, shear=shear,
                     interpolation=nearest, center=center)  # fmt: skip


@functools.cache
def source_maps(table_items: tuple, height: int, width: int, device: str) -> torch.Tensor:
    """Flat source index of each output pixel per geometric variant, (2 * len(OPS), H * W).

    Row ``2 * op + negated``; ``H * W`` (the zero pixel :func:`_geometric` appends) where
    torchvision fills with 0. Nearest sampling copies values, so the map is torchvision's own
    kernel applied to an image whose pixels are their index + 1 (0 outside the image).
    """
    size = height * width
    numbers = torch.arange(1, size + 1, dtype=torch.float32, device=device).view(1, height, width)
    maps = torch.arange(size, device=device).repeat(2 * len(OPS), 1)  # identity elsewhere
    for k, (op, (value, signed)) in enumerate(table_items):
        if op in GEOMETRIC:
            for negated in (False, True) if signed else (False,):
                moved = geometric_op(numbers, op, -value if negated else value).reshape(-1)
                maps[2 * k + negated] = torch.where(moved > 0, moved.long() - 1, size)
    return maps


def blurred(images: torch.Tensor) -> torch.Tensor:
    """torchvision's sharpness degenerate: 3x3 kernel (1s, centre 5) / 13, rounded, edges kept,
    as float32 integers. The kernel sum S <= 13 * 255 is exact in float32 and S / 13 is never
    closer than 1/26 to a half, far beyond float32's error in S * (1/13), so rounding equals
    torchvision's rounding of its float convolution."""
    x = images.to(torch.float32)
    rows = x[..., :-2, :] + x[..., 1:-1, :]
    rows += x[..., 2:, :]
    total = rows[..., :-2] + rows[..., 1:-1]
    total += rows[..., 2:]
    total.add_(x[..., 1:-1, 1:-1], alpha=4)
    out = x.clone()
    out[..., 1:-1, 1:-1] = total.mul_(1 / 13).round_()
    return out


def blend(
    images: torch.Tensor, degenerate: torch.Tensor | None, ratio: torch.Tensor
) -> torch.Tensor:
    """torchvision's ``_blend``: ``ratio * images + (1 - ratio) * degenerate``, clamped, truncated.

    ``ratio``: one float64 per image (``1 - ratio`` as torchvision's Python floats, then float32);
    a None degenerate is zero (brightness: adding ``(1 - ratio) * 0`` changes no float)."""

    def on_device(values: torch.Tensor) -> torch.Tensor:  # an asynchronous copy: no GPU wait
        return values.to(torch.float32).view(-1, 1, 1, 1).to(images.device, non_blocking=True)

    out = images.to(torch.float32).mul_(on_device(ratio))
    if degenerate is not None:
        out.add_(degenerate.to(torch.float32).mul_(on_device(1.0 - ratio)))
    return out.clamp_(0, 255).to(torch.uint8)


def degenerate(images: torch.Tensor, op: str) -> torch.Tensor | None:
    """What each blend op mixes the image with (torchvision's choices for RGB uint8)."""
    if op == "Brightness":
        return None
    if op == "Color":
        return TF.rgb_to_grayscale(images)
    if op == "Contrast":
        gray = TF.rgb_to_grayscale(images).to(torch.float32)
        return torch.mean(gray, dim=(-3, -2, -1), keepdim=True)
    return blurred(images)


def cumulative_histograms(rows: torch.Tensor, by_sorting: bool | None = None) -> torch.Tensor:
    """(R, 256) counts of values <= each level, for uint8 rows (R, P).

    One ``bincount`` on the CPU; on a GPU a sort and ``searchsorted``, since CUDA's ``bincount``
    reads its input's maximum back to the host and is not deterministic. Same integers."""
    by_sorting = rows.is_cuda if by_sorting is None else by_sorting
    n, device = rows.shape[0], rows.device
    if by_sorting:
        levels = torch.arange(256, device=device, dtype=torch.uint8).expand(n, 256).contiguous()
        return torch.searchsorted(rows.sort(dim=1).values, levels, right=True)
    offsets = torch.arange(n, device=device, dtype=torch.int32)[:, None] * 256
    counts = torch.bincount((rows.to(torch.int32) + offsets).reshape(-1), minlength=n * 256)
    return counts.view(n, 256).cumsum(1)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """torchvision's tensor ``equalize`` of uint8 images (N,C,H,W), all images at once: per
    channel ``step = (pixels - count of the highest level present) // 255`` and lookup table
    ``(cumsum + step // 2) // step`` shifted up one level, clamped to 255 (step 0: unchanged)."""
    n, c, h, w = images.shape
    flat = images.reshape(n * c, h * w)
    cumulative = cumulative_histograms(flat)
    hist = torch.diff(cumulative, dim=1, prepend=cumulative.new_zeros(n * c, 1))
    step = (h * w - hist.gather(1, flat.amax(1, keepdim=True).long())) // 255
    lut = (cumulative + step // 2) // step.clamp(min=1)
    lut = torch.cat([lut.new_zeros(n * c, 1), lut[:, :-1]], dim=1).clamp_(max=255)
    levels = torch.arange(256, device=images.device)
    lut = torch.where(step == 0, levels, lut).to(torch.uint8)  # step 0: leave the channel
    return lut.gather(1, flat.long()).view(n, c, h, w)


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """torchvision's tensor ``autocontrast``: each channel stretched from [min, max] to [0, 255],
    a constant one kept (by ``where``: torchvision's boolean index makes a GPU wait)."""
    low = images.amin(dim=(-2, -1), keepdim=True).to(torch.float32)
    high = images.amax(dim=(-2, -1), keepdim=True).to(torch.float32)
    constant = high == low
    scale = torch.where(constant, 1.0, 255.0 / (high - low))
    low = torch.where(constant, 0.0, low)
    # the float conversion spelled out: a uint8 - float32 broadcast is several times slower on a
    # CPU, and computes the same (every uint8 is exact in float32)
    return images.to(torch.float32).sub_(low).mul_(scale).clamp_(0, 255).to(torch.uint8)


def draw_randaugment(
    n: int, num_ops: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """RandAugment's op indices and signs (True: negate) for n images, each (n, num_ops): the
    uniform ``randint(len(ops))`` and ``randint(2)`` torchvision draws per op, all at once."""
    ops = torch.randint(len(OPS), (n, num_ops), generator=generator)
    negated = torch.randint(2, (n, num_ops), generator=generator).bool()
    return ops, negated


def randaugment(images: torch.Tensor, ops: torch.Tensor, negated: torch.Tensor, magnitude: int,
                num_bins: int = 31) -> torch.Tensor:  # fmt: skip
    """torchvision ``RandAugment(num_ops, magnitude, num_bins)`` on uint8 (N, 3, H, W) images on
    any device, each with its own ops and signs from :func:`draw_randaugment` (on the CPU)."""
    n, _, h, w = images.shape
    table = op_table(ops.shape[1], magnitude, num_bins, h, w)
    # Images stay sorted by the op drawn (each op: one contiguous slice); `rows`: their origin.
    rows = torch.arange(n)
    for k in range(ops.shape[1]):
        order, images = apply_ops(images, ops[rows, k], negated[rows, k], table)
        rows = rows[order]
    back = torch.empty_like(rows)
    back[rows] = torch.arange(n)  # the inverse permutation: a gather is cheaper than a scatter
    return images.index_select(0, back.to(images.device, non_blocking=True))


def apply_ops(
    images: torch.Tensor, ops: torch.Tensor, negated: torch.Tensor, table: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """``OPS[ops[i]]`` on image i, negated where ``negated[i]`` and the op is signed: ``(order,
    out)``, ``out[k]`` being image ``order[k]`` transformed (sorted by op and sign)."""
    signed = torch.tensor([table[op][1] for op in OPS])
    variant = 2 * ops + (negated & signed[ops]).long()  # 2 * op + negated; unsigned: never
    order = torch.argsort(variant, stable=True)
    variant = variant[order]
    counts = torch.bincount(variant, minlength=2 * len(OPS)).tolist()
    starts = [0, *itertools.accumulate(counts)]  # variant v fills starts[v]:starts[v + 1]

    def span(first_op: str, last_op: str) -> slice:
        return slice(starts[2 * OPS.index(first_op)], starts[2 * OPS.index(last_op) + 2])

    x = images.index_select(0, order.to(images.device, non_blocking=True))
    out = torch.empty_like(x)
    keep = span("Identity", "Identity")
    out[keep] = x[keep]
    geo = span(GEOMETRIC[0], GEOMETRIC[-1])  # ops 1-5: one gather for all of them
    if geo.stop > geo.start:
        out[geo] = _geometric(x[geo], variant[geo], table)
    for op in OPS[OPS.index(BLENDS[0]) :]:
        part = span(op, op)
        if part.stop > part.start:
            out[part] = _value_op(x[part], op, variant[part], table[op][0])
    return order, out


def _geometric(images: torch.Tensor, variant: torch.Tensor, table: dict) -> torch.Tensor:
    """Geometric variants (``2 * op + negated``, on the CPU) of images, by one gather:
    ``out[i, c, p] = images[i, c, index[i, p]]``, index H*W meaning 0."""
    n, c, h, w = images.shape
    maps = source_maps(tuple(table.items()), h, w, str(images.device))
    index = maps[variant.to(images.device, non_blocking=True)]
    flat = torch.cat([images.reshape(n, c, h * w), images.new_zeros(n, c, 1)], dim=2)
    return flat.gather(2, index[:, None, :].expand(n, c, h * w)).view(n, c, h, w)


def _value_op(images: torch.Tensor, op: str, variant: torch.Tensor, value: float) -> torch.Tensor:
    """A blend or a value-only op on images that drew it (``variant`` odd: negated)."""
    if op in BLENDS:
        sign = 1.0 - 2.0 * (variant % 2).to(torch.float64)  # +1, or -1 when negated
        return blend(images, degenerate(images, op), 1.0 + sign * value)
    if op == "Posterize":
        return TF.posterize(images, int(value))
    if op == "Solarize":  # torchvision: where(image >= threshold, 255 - image, image)
        # on uint8: 255 - v = v ^ 255, and -True = 255 (an xor is far cheaper than a where)
        return images ^ -(images >= math.ceil(value)).view(torch.uint8)
    if op == "AutoContrast":
        return autocontrast(images)
    if op == "Equalize":
        return equalize(images)
    raise ValueError(f"unknown RandAugment op {op!r}")


def apply_op(images: torch.Tensor, op: str, negated: bool, table: dict) -> torch.Tensor:
    """One op (its magnitude negated or not) on every image, in the images' order."""
    n = len(images)
    order, out = apply_ops(images, torch.full((n,), OPS.index(op)), torch.full((n,), negated),
                           table)  # fmt: skip
    result = torch.empty_like(out)
    result[order.to(out.device, non_blocking=True)] = out
    return result


ERASING_ATTEMPTS = 10  # torchvision's RandomErasing.get_params tries at most 10 rectangles


def draw_erasing(n: int, generator: torch.Generator | None) -> torch.Tensor:
    """RandomErasing's uniforms for n images, float64 (n, 3 + 2 * attempts): erase or not, top,
    left, then every attempt's area draw, then every attempt's aspect draw."""
    return torch.rand(n, 3 + 2 * ERASING_ATTEMPTS, generator=generator, dtype=torch.float64)


def random_erasing(images: torch.Tensor, uniforms: torch.Tensor, p: float,
                   scale: tuple[float, float] = (0.02, 0.33),
                   ratio: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:  # fmt: skip
    """torchvision ``RandomErasing(p, scale, ratio, value=0)`` in place on normalised float
    images (N, C, H, W) on any device, each with its uniforms from :func:`draw_erasing`.

    As torchvision's ``get_params``: up to ten tries of area ~ U(scale)·H·W and log aspect ~
    U(log ratio), the first that fits wins (none: the image stays), then a uniform corner.
    """
    _, _, h, w = images.shape
    attempts = (uniforms.shape[1] - 3) // 2
    area = h * w * (scale[0] + (scale[1] - scale[0]) * uniforms[:, 3 : 3 + attempts])
    low, high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(low + (high - low) * uniforms[:, 3 + attempts :])
    tall = torch.round(torch.sqrt(area * aspect)).long()
    wide = torch.round(torch.sqrt(area / aspect)).long()
    fits = (tall < h) & (wide < w)
    first = fits.int().argmax(1, keepdim=True)  # the first try that fits (0 if none: unused)
    tall, wide = tall.gather(1, first).squeeze(1), wide.gather(1, first).squeeze(1)
    top = (uniforms[:, 1] * (h - tall + 1)).long()
    left = (uniforms[:, 2] * (w - wide + 1)).long()
    erased = ((uniforms[:, 0] < p) & fits.any(1)).nonzero().squeeze(1).tolist()
    boxes = torch.stack([top, tall, left, wide], 1).tolist()  # on the host: no GPU sync
    for i in erased:
        y, dy, x, dx = boxes[i]
        images[i, :, y : y + dy, x : x + dx] = 0.0
    return images
