"""The baseline's cached-feature path against the full forward path it replaces."""

import pytest
import torch

from convnext_tinyimagenet.config import experiment_config
from convnext_tinyimagenet.train import features
from convnext_tinyimagenet.train.runner import RunError, train_experiment

from .conftest import smoke_config

pytestmark = pytest.mark.slow
METRICS = ("train_loss", "train_acc", "val_loss", "val_loss_batch_mean", "val_acc", "val_top5")


def _train(tmp_path, cache, feature_cache: bool, name="baseline"):
    cfg = smoke_config(
        cache, f"experiments.{name}.train.feature_cache={str(feature_cache).lower()}"
    )
    return train_experiment(cfg, name, tmp_path / f"{name}-{feature_cache}", progress=False)


def test_cached_features_give_the_full_paths_epoch_metrics(tmp_path, smoke_cache):
    full = _train(tmp_path, smoke_cache, feature_cache=False)
    cached = _train(tmp_path, smoke_cache, feature_cache=True)
    assert len(full) == len(cached) == 3
    for a, b in zip(full, cached, strict=True):
        for key in METRICS:  # same function of the pixels; only kernel rounding may differ
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a["epoch"], key)
        assert a["best"] == b["best"]
    assert list((smoke_cache / "features").glob("features-*.safetensors"))


def test_feature_cache_is_reused(tmp_path, smoke_cache, monkeypatch):
    _train(tmp_path / "first", smoke_cache, feature_cache=True)

    def no_extraction(*args, **kwargs):
        raise AssertionError("features were extracted again")

    monkeypatch.setattr(features, "extract", no_extraction)
    assert len(_train(tmp_path / "second", smoke_cache, feature_cache=True)) == 3


def test_feature_cache_is_refused_where_features_change(tmp_path, smoke_cache):
    with pytest.raises(RunError, match="feature_cache"):
        _train(tmp_path, smoke_cache, feature_cache=True, name="improved")


@pytest.mark.parametrize(("name", "expected"), [("baseline", True), ("improved", False)])
def test_cacheable_follows_the_recipe(smoke_cache, name, expected):
    experiment = experiment_config(smoke_config(smoke_cache), name)
    assert features.cacheable(experiment) is expected
    augmented = {**experiment, "augment": {"randaugment": {"num_ops": 2}, "random_erasing": None}}
    assert features.cacheable(augmented) is False


def test_tf32_matmuls_make_features_of_their_own(tmp_path, smoke_cache):
    # issue 20: the run identity counts TF32 as a change; the feature cache reused fp32's
    precision = torch.get_float32_matmul_precision()
    cfg = smoke_config(smoke_cache, "experiments.baseline.train.feature_cache=true")
    train_experiment(cfg, "baseline", tmp_path / "fp32", progress=False)
    before = set((smoke_cache / "features").glob("features-*.safetensors"))
    tf32 = smoke_config(
        smoke_cache,
        "experiments.baseline.train.feature_cache=true",
        "performance.float32_matmul_precision=high",
    )
    try:
        train_experiment(tf32, "baseline", tmp_path / "tf32", progress=False)
    finally:
        torch.set_float32_matmul_precision(precision)
    assert len(set((smoke_cache / "features").glob("features-*.safetensors")) - before) == 1
