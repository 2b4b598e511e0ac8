"""Batched per-image RandAugment and RandomErasing against torchvision, image by image."""

import math

import pytest
import torch
from torchvision import transforms as T  # noqa: N812
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF  # noqa: N812
from torchvision.transforms.autoaugment import _apply_op

from convnext_tinyimagenet.data import augment
from convnext_tinyimagenet.data.augment import OPS, apply_op, op_table


def _images(size: int, n: int = 24) -> torch.Tensor:
    """Noise, smooth ramps, grey images and a constant one: every op's special cases."""
    g = torch.Generator().manual_seed(size)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    ramp = torch.linspace(0, 200, size)[None, None, :] * torch.rand(n // 2, 3, 1, 1, generator=g)
    images[n // 2 :] = (ramp + 20).to(torch.uint8).expand(n // 2, 3, size, size)
    images[-6:] = images[-6:, :1]  # grey (equal channels)
    images[-1] = 7  # constant: autocontrast and equalize leave it alone
    return images


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _torchvision(images: torch.Tensor, op: str, value: float) -> torch.Tensor:
    """What torchvision's RandAugment does with one op and magnitude, one image at a time."""
    return torch.stack([_apply_op(im, op, value, InterpolationMode.NEAREST, None) for im in images])


@pytest.mark.parametrize("size", [64, 224, 37])
@pytest.mark.parametrize("op", OPS)
def test_each_op_and_sign_equals_torchvision_pixel_for_pixel(size, op):
    images = _images(size)
    table = op_table(2, 9, 31, size, size)
    value, signed = table[op]
    for negated in (False, True) if signed else (False,):
        ours = apply_op(images, op, negated, table)
        expected = _torchvision(images, op, -value if negated else value)
        assert torch.equal(ours, expected), (op, negated)
        if op != "Identity":
            assert not torch.equal(ours, images)  # the op did something


def test_mixed_ops_of_a_batch_equal_torchvision_per_image():
    images = _images(64, n=64)
    g = torch.Generator().manual_seed(3)
    ops, negated = augment.draw_randaugment(len(images), 2, g)
    ours = augment.randaugment(images, ops, negated, magnitude=9)
    table = op_table(2, 9, 31, 64, 64)
    for i, image in enumerate(images):
        expected = image[None]
        for k in range(2):
            op = OPS[int(ops[i, k])]
            value, signed = table[op]
            expected = _torchvision(expected, op, -value if signed and negated[i, k] else value)
        assert torch.equal(ours[i], expected[0]), i


def test_op_draws_are_uniform_and_independent_per_image():
    ops, negated = augment.draw_randaugment(70_000, 2, torch.Generator().manual_seed(0))
    counts = torch.bincount(ops.flatten(), minlength=len(OPS)).double()
    expected = ops.numel() / len(OPS)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 36.1  # chi-square, 13 degrees of freedom, p = 0.001
    assert negated.double().mean().item() == pytest.approx(0.5, abs=0.01)
    assert (ops[:, 0] == ops[:, 1]).double().mean().item() == pytest.approx(1 / len(OPS), abs=0.01)


def test_magnitudes_are_torchvisions_table():
    table = op_table(2, 9, 31, 224, 224)
    assert table["Rotate"] == (pytest.approx(9.0), True)  # linspace(0, 30, 31)[9]
    assert table["TranslateX"][0] == pytest.approx(150 / 331 * 224 * 9 / 30)
    assert table["Solarize"] == (pytest.approx(178.5), False)
    assert table["Posterize"] == (7.0, False)


def test_erasing_rectangle_follows_torchvision_get_params():
    images = torch.ones(400, 3, 32, 32)
    uniforms = augment.draw_erasing(len(images), torch.Generator().manual_seed(0))
    out = augment.random_erasing(images.clone(), uniforms, p=1.0)
    scale, (low, high) = (0.02, 0.33), (math.log(0.3), math.log(3.3))
    for i in range(len(images)):
        u = uniforms[i].tolist()
        for area_u, aspect_u in zip(u[3:13], u[13:], strict=True):  # torchvision's loop
            area = 32 * 32 * (scale[0] + (scale[1] - scale[0]) * area_u)
            aspect = math.exp(low + (high - low) * aspect_u)
            h, w = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if h < 32 and w < 32:
                top, left = int(u[1] * (32 - h + 1)), int(u[2] * (32 - w + 1))
                expected = torch.ones(3, 32, 32)
                expected[:, top : top + h, left : left + w] = 0.0
                break
        else:
            expected = torch.ones(3, 32, 32)
        assert torch.equal(out[i], expected), i


def test_erasing_statistics_match_torchvision():
    n, p = 4000, 0.15
    images = torch.ones(n, 3, 32, 32)
    out = augment.random_erasing(images.clone(), augment.draw_erasing(n, _gen(1)), p=p)
    torch.manual_seed(0)
    eraser = T.RandomErasing(p=p)
    reference = torch.stack([eraser(image) for image in images])
    for x in (out, reference):
        assert (x == 0).flatten(1).any(1).double().mean().item() == pytest.approx(p, abs=0.02)
    ours_area = (out == 0).double().mean().item()
    their_area = (reference == 0).double().mean().item()
    assert ours_area == pytest.approx(their_area, rel=0.15)


def test_erasing_writes_positive_zero_in_place():
    images = -torch.ones(8, 3, 16, 16)
    out = augment.random_erasing(images, augment.draw_erasing(8, _gen(2)), p=1.0)
    assert out is images
    erased = out == 0
    assert erased.any() and not torch.signbit(out[erased]).any()


def test_geometric_source_maps_come_from_torchvision_on_the_device():
    table = op_table(2, 9, 31, 16, 16)
    maps = augment.source_maps(tuple(table.items()), 16, 16, "cpu")
    numbers = torch.arange(16 * 16, dtype=torch.float32).view(1, 16, 16) + 1
    rotated = TF.rotate(numbers, 9.0, interpolation=InterpolationMode.NEAREST).reshape(-1)
    k = 2 * OPS.index("Rotate")
    assert torch.equal(torch.where(maps[k] < 256, maps[k] + 1, 0).float(), rotated)
    assert (maps[k] == 256).any()  # corners fall outside: filled with 0


def test_both_histogram_paths_count_the_same():
    rows = _images(37).reshape(-1, 37 * 37)
    by_counting = augment.cumulative_histograms(rows, by_sorting=False)
    by_sorting = augment.cumulative_histograms(rows, by_sorting=True)
    assert torch.equal(by_counting, by_sorting)
    expected = torch.stack([torch.bincount(r.long(), minlength=256).cumsum(0) for r in rows])
    assert torch.equal(by_counting, expected)
