"""Speed settings keep the computation: channels-last, compile, the run's identity."""

import copy

import pytest
import torch

from convnext_tinyimagenet.config import run_identity
from convnext_tinyimagenet.train import runner
from convnext_tinyimagenet.train.models import create_model
from convnext_tinyimagenet.train.runner import make_forward, run_digest

from .conftest import smoke_config

PLAIN = {"channels_last": False, "compile": False}


def test_channels_last_forward_computes_the_same_logits():
    torch.manual_seed(0)
    model_cfg = {"tag": "convnext_tiny", "pretrained": False, "pretrained_file": None,
                 "head": "linear"}  # fmt: skip
    model = create_model(model_cfg, num_classes=10).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = make_forward(model, PLAIN)(x)
        fast = make_forward(model.to(memory_format=torch.channels_last),
                            PLAIN | {"channels_last": True})  # fmt: skip
        seen = []
        hook = model.backbone.stem.register_forward_pre_hook(
            lambda module, args: seen.append(
                args[0].is_contiguous(memory_format=torch.channels_last)
            )
        )
        logits = fast(x)
        hook.remove()
    assert seen == [True]
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)  # kernel rounding only
    head = make_forward(model.forward_head, PLAIN | {"channels_last": True})
    head_input = torch.randn(4, 768)  # 2-D inputs (cached features) pass through untouched
    assert torch.equal(head(head_input), model.forward_head(head_input))


def test_compile_flag_compiles_the_forward(monkeypatch):
    compiled = []

    def fake_compile(fn):
        compiled.append(fn)
        return lambda x: fn(x) + 0

    monkeypatch.setattr(torch, "compile", fake_compile)
    layer = torch.nn.Linear(3, 2)
    forward = make_forward(layer, {"channels_last": False, "compile": True})
    assert compiled == [layer]
    x = torch.randn(5, 3)
    torch.testing.assert_close(forward(x), layer(x))
    make_forward(layer, PLAIN)
    assert compiled == [layer]  # off by default: nothing compiled


@pytest.mark.slow
def test_compile_option_really_compiles_and_trains_the_same():
    """torch.compile itself (inductor, a C++ compiler on a CPU) with channels-last: same logits
    and gradients as eager, to kernel rounding."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.GELU(), torch.nn.Flatten(),
                              torch.nn.Linear(8 * 6 * 6, 5))  # fmt: skip
    twin = copy.deepcopy(net).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 8, 8)
    compiled = make_forward(twin, {"channels_last": True, "compile": True})
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()  # reset() keeps them: count this compile alone
    eager_logits, fast_logits = net(x), compiled(x)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # dynamo captured it
    torch.testing.assert_close(fast_logits, eager_logits, rtol=1e-4, atol=1e-5)
    eager_logits.square().sum().backward()
    fast_logits.square().sum().backward()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("key", "value", "same"),
    [
        ("performance.channels_last", False, True),
        ("performance.compile", True, True),
        ("performance.resident_data", True, True),
        ("performance.chunk_batches", 1, True),
        ("performance.float32_matmul_precision", "high", False),  # TF32 changes numerics
        ("experiments.improved.augment.at", "source", False),
    ],
)
def test_speed_settings_do_not_change_a_runs_identity(smoke_cache, key, value, same):
    base = smoke_config(smoke_cache)
    changed = smoke_config(smoke_cache, f"{key}={str(value).lower()}")
    assert (run_digest(changed, "improved") == run_digest(base, "improved")) is same


@pytest.mark.parametrize(
    ("name", "override", "same"),
    [
        ("baseline", "experiments.baseline.title=Another title", True),  # display only
        ("improved", "experiments.improved.train.eval_batch_size=64", True),  # batch means at 32
        ("baseline", "experiments.baseline.train.feature_cache=false", True),  # same features
        ("baseline", "data.cache_dir=/elsewhere", True),  # where the cache lives
        ("baseline", "deterministic=true", False),  # other kernels
        ("baseline", "experiments.baseline.train.batch_size=64", False),
        ("baseline", "seeds=[1]", False),
    ],
)
def test_what_identifies_a_run_for_its_checkpoints_and_the_workflow(
    smoke_cache, name, override, same
):
    base, changed = smoke_config(smoke_cache), smoke_config(smoke_cache, override)
    assert (run_digest(changed, name) == run_digest(base, name)) is same
    untouched = copy.deepcopy(changed)
    identity = run_identity(changed, name)
    assert changed == untouched  # a copy: the config itself keeps its title and speed settings
    assert "title" not in identity["experiment"]
    assert "eval_batch_size" not in identity["experiment"]["train"]


def test_matmul_precision_is_applied(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_float32_matmul_precision", calls.append)
    runner.configure_performance({"float32_matmul_precision": "high"})
    assert calls == ["high"]


@pytest.mark.slow
def test_resident_data_and_chunking_change_no_number(tmp_path, smoke_cache):
    """The same run with the images in a tensor and batch-by-batch augmentation: same epochs."""
    timing = {"seconds", "train_seconds", "val_seconds", "images_per_second"}
    results = []
    for overrides in ((), ("performance.resident_data=true", "performance.chunk_batches=1")):
        cfg = smoke_config(smoke_cache, "experiments.improved.train.early_stopping.max_epochs=2",
                           *overrides)  # fmt: skip
        out = tmp_path / str(len(overrides))
        history = runner.train_experiment(cfg, "improved", out, progress=False)
        runner.evaluate_experiment(cfg, "improved", out, progress=False)
        results.append(([{k: v for k, v in r.items() if k not in timing} for r in history],
                        (out / "predictions.csv").read_bytes()))  # fmt: skip
    assert results[0] == results[1]
    prov = (tmp_path / "2" / "provenance.json").read_text()
    assert '"data_on": "cpu"' in prov  # the second run really held its data in a tensor
