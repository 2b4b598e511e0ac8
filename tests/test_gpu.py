"""What only a CUDA GPU can show. Skipped without one (CI has none); run on a lent GPU with
`python -m pytest tests/test_gpu.py` (benchmarks/README.md gives the whole call).

The same behaviour is checked on the CPU elsewhere (test_augment, test_training, test_runner);
here: the batched augmentation with CUDA kernels, no host-device waits in the training data
path, the store held on the GPU, and short runs in the published precisions.
"""

import json

import numpy as np
import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import _apply_op

from convnext_tinyimagenet.data.augment import OPS, apply_op, op_table
from convnext_tinyimagenet.data.store import Split
from convnext_tinyimagenet.data.transforms import Pipeline
from convnext_tinyimagenet.train.engine import BatchLoader, resident
from convnext_tinyimagenet.train.runner import evaluate_experiment, train_experiment

from .conftest import smoke_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _split(n: int = 256) -> Split:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    return Split(images, rng.integers(0, 10, n), np.array([f"id{i}" for i in range(n)]))


@pytest.mark.parametrize("op", OPS)
def test_each_op_on_the_gpu_equals_torchvision_there(op, monkeypatch):
    # torchvision's sharpness is a float convolution: without TF32 it is exact enough to round
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.integers(0, 256, (16, 3, 224, 224), dtype=np.uint8)).cuda()
    images[8:] = images[8:, :1]  # grey images too
    table = op_table(2, 9, 31, 224, 224)
    value, signed = table[op]
    for negated in (False, True) if signed else (False,):
        ours = apply_op(images, op, negated, table)
        v = -value if negated else value
        expected = torch.stack(
            [_apply_op(image, op, v, InterpolationMode.NEAREST, None) for image in images]
        )
        assert torch.equal(ours, expected), (op, negated)


def test_training_batches_on_the_gpu_never_wait_for_the_device():
    device = torch.device("cuda")
    held = resident(_split(), device, "auto")
    assert held.images.is_cuda and held.images.shape == (256, 3, 64, 64)
    pipeline = Pipeline(224, MEAN, STD, {"num_ops": 2, "magnitude": 9}, {"p": 0.15})

    def one_pass() -> int:
        generator = torch.Generator().manual_seed(0)
        loader = BatchLoader(
            held, 32, shuffle=True, generator=generator, device=device, chunk_batches=8,
            transform=pipeline.train_transform(len(held), generator),
        )  # fmt: skip
        return sum(len(x) for x, _, _ in loader)

    one_pass()  # builds the per-device source maps of the geometric ops once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any wait for the device raises
    try:
        assert one_pass() == 256
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "precision"), [("baseline", "fp16"), ("improved", "fp32")])
def test_short_runs_on_the_gpu_use_the_published_precision(tmp_path, smoke_cache, name, precision):
    cfg = smoke_config(
        smoke_cache, "device=cuda", f"experiments.{name}.train.early_stopping.max_epochs=2"
    )
    train_experiment(cfg, name, tmp_path, progress=False)
    summary = evaluate_experiment(cfg, name, tmp_path, progress=False)
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["train"]["precision"] == precision
    assert prov["train"]["performance"]["data_on"].startswith("cuda")
    assert prov["train"]["device"]["name"] == torch.cuda.get_device_name()
    assert summary["epochs"] == 2 and summary["accuracy"] > 50.0  # 10 classes: chance is 10 %
