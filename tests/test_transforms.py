"""The tensor pipeline against torchvision's PIL path of the notebooks."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T  # noqa: N812

from convnext_tinyimagenet.data import augment
from convnext_tinyimagenet.data.transforms import Pipeline, normalize, resize_uint8

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _images(n, seed=0, size=64):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", ["noise", "smooth"])
def test_resize_matches_pil_within_stated_bound(kind):
    images = _images(8)
    if kind == "smooth":  # natural-image-like: blurred noise
        images = np.asarray(
            [np.asarray(Image.fromarray(a).resize((16, 16)).resize((64, 64))) for a in images]
        )
    ours = resize_uint8(torch.from_numpy(images).permute(0, 3, 1, 2), 224).float()
    pil = torch.stack(
        [
            torch.from_numpy(np.array(T.Resize((224, 224))(Image.fromarray(a)))).permute(2, 0, 1)
            for a in images
        ]
    ).float()
    diff = (ours - pil).abs()
    assert diff.mean() <= 0.5  # grey levels of 255; measured 0.22 on noise
    assert diff.max() <= 1.0


def test_normalize_matches_totensor_normalize():
    image = _images(1)[0]
    reference = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])(Image.fromarray(image))
    ours = normalize(torch.from_numpy(image).permute(2, 0, 1)[None], MEAN, STD)[0]
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-6)


def _batch(n, size=64):
    return torch.from_numpy(_images(n, size=size)).permute(0, 3, 1, 2).contiguous()


def test_eval_pipeline_is_resize_then_normalize():
    pipeline = Pipeline(224, MEAN, STD, {"num_ops": 2, "magnitude": 9}, {"p": 1.0})
    x = _batch(2)
    out = pipeline.eval_transform()(x, torch.arange(2))
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out, normalize(resize_uint8(x, 224), MEAN, STD), rtol=0, atol=0)


def test_baseline_has_no_training_augmentation():
    pipeline = Pipeline(32, MEAN, STD)
    x = _batch(2, size=32)
    assert not pipeline.augments
    train = pipeline.train_transform(2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(train(x, torch.arange(2)), pipeline.batch(x), rtol=0, atol=0)


@pytest.mark.parametrize("at", ["input", "source"])
def test_training_pipeline_keeps_the_published_order(at):
    pipeline = Pipeline(96, MEAN, STD, {"num_ops": 2, "magnitude": 9}, {"p": 0.5}, augment_at=at)
    x = _batch(16)
    draws = pipeline.draw(16, torch.Generator().manual_seed(0))
    out = pipeline.batch(x, draws)
    if at == "input":  # Resize -> RandAugment -> ToTensor/Normalize -> RandomErasing
        expected = augment.randaugment(resize_uint8(x, 96), draws.ops, draws.negated, 9)
    else:  # the option: RandAugment on the 64x64 source, then Resize
        expected = resize_uint8(augment.randaugment(x, draws.ops, draws.negated, 9), 96)
    expected = augment.random_erasing(normalize(expected, MEAN, STD), draws.erasing, 0.5)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert not torch.equal(out, pipeline.batch(x))


def test_augmentation_does_not_depend_on_how_an_epoch_is_cut():
    pipeline = Pipeline(64, MEAN, STD, {"num_ops": 2, "magnitude": 9}, {"p": 0.5})
    x = _batch(40)
    whole = pipeline.train_transform(40, torch.Generator().manual_seed(5))
    halves = pipeline.train_transform(40, torch.Generator().manual_seed(5))
    positions = torch.arange(40)
    expected = whole(x, positions)
    pieces = [halves(x[a:b], positions[a:b]) for a, b in ((0, 8), (8, 32), (32, 40))]
    torch.testing.assert_close(torch.cat(pieces), expected, rtol=0, atol=0)


def test_random_erasing_is_drawn_per_image_after_normalize():
    pipeline = Pipeline(32, MEAN, STD, None, {"p": 1.0})
    x = torch.from_numpy(np.full((16, 32, 32, 3), 255, np.uint8)).permute(0, 3, 1, 2)
    out = pipeline.train_transform(16, torch.Generator().manual_seed(0))(x, torch.arange(16))
    erased = out == 0.0  # erased pixels are 0 after normalisation; white is never 0
    assert all(mask.any() for mask in erased)
    assert len({mask.numpy().tobytes() for mask in erased}) > 1  # different rectangles


def test_random_erasing_probability():
    pipeline = Pipeline(32, MEAN, STD, None, {"p": 0.15})
    x = torch.from_numpy(np.full((2000, 32, 32, 3), 255, np.uint8)).permute(0, 3, 1, 2)
    out = pipeline.train_transform(2000, torch.Generator().manual_seed(0))(x, torch.arange(2000))
    rate = (out == 0.0).flatten(1).any(1).float().mean().item()
    assert rate == pytest.approx(0.15, abs=0.03)
