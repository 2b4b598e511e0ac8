"""The tensor pipeline against torchvision's PIL path of the notebooks."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T  # noqa: N812

from convnext_tinyimagenet.transforms import Pipeline, normalize, resize_uint8

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


def test_eval_pipeline_is_resize_then_normalize():
    pipeline = Pipeline(224, MEAN, STD, {"num_ops": 2, "magnitude": 9}, {"p": 1.0})
    assert pipeline.per_image(train=False) is None
    x = torch.from_numpy(_images(2)).permute(0, 3, 1, 2)
    out = pipeline.batch(x, train=False)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out, normalize(resize_uint8(x, 224), MEAN, STD))


def test_baseline_has_no_training_augmentation():
    pipeline = Pipeline(32, MEAN, STD)
    x = torch.from_numpy(_images(2)).permute(0, 3, 1, 2)
    assert pipeline.per_image(train=True) is None
    torch.testing.assert_close(pipeline.batch(x, train=True), pipeline.batch(x, train=False))


def test_randaugment_runs_per_image_after_the_resize():
    pipeline = Pipeline(224, MEAN, STD, {"num_ops": 2, "magnitude": 9}, None)
    transform = pipeline.per_image(train=True)
    image = torch.from_numpy(_images(1)[0]).permute(2, 0, 1)
    torch.manual_seed(0)
    outs = [transform(image) for _ in range(8)]
    assert all(o.shape == (3, 224, 224) and o.dtype == torch.uint8 for o in outs)
    assert len({o.numpy().tobytes() for o in outs}) > 1  # random ops per call
    # same seed, same ops: the order resize -> RandAugment(2, 9) with torchvision's own RNG use
    torch.manual_seed(0)
    expected = T.RandAugment(2, 9)(resize_uint8(image, 224))
    torch.testing.assert_close(outs[0], expected)


def test_random_erasing_is_drawn_per_image_after_normalize():
    pipeline = Pipeline(32, MEAN, STD, None, {"p": 1.0})
    x = torch.from_numpy(np.full((16, 32, 32, 3), 255, np.uint8)).permute(0, 3, 1, 2)
    torch.manual_seed(0)
    out = pipeline.batch(x, train=True)
    erased = out == 0.0  # erased pixels are 0 after normalisation; white is never 0
    assert all(mask.any() for mask in erased)
    assert len({mask.numpy().tobytes() for mask in erased}) > 1  # different rectangles


def test_random_erasing_probability():
    pipeline = Pipeline(32, MEAN, STD, None, {"p": 0.15})
    x = torch.from_numpy(np.full((2000, 32, 32, 3), 255, np.uint8)).permute(0, 3, 1, 2)
    torch.manual_seed(0)
    out = pipeline.batch(x, train=True)
    rate = (out == 0.0).flatten(1).any(1).float().mean().item()
    assert rate == pytest.approx(0.15, abs=0.03)
