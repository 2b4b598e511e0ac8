"""Schedule, early stopping and metric arithmetic against analytic values."""

import math

import numpy as np
import pytest
import torch

from convnext_tinyimagenet.stats import batch_means, wilson_interval
from convnext_tinyimagenet.train.engine import (
    EarlyStopping,
    effective_precision,
    epoch_seed,
    make_scheduler,
    summarize,
)


def test_cosine_schedule_matches_analytic_values_per_group():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    lrs = (5e-5, 1e-4, 3e-4)  # the improved run's three groups
    optimizer = torch.optim.AdamW(
        [{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)]
    )
    scheduler = make_scheduler(optimizer, {"name": "cosine", "t_max": 50, "eta_min": 0.0})
    for epoch in range(60):
        for group, base in zip(optimizer.param_groups, lrs, strict=True):
            expected = base * (1 + math.cos(math.pi * epoch / 50)) / 2
            assert group["lr"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
        optimizer.step()
        scheduler.step()


def cosine_lr(base_lr: float, epoch: int, t_max: int, eta_min: float = 0.0) -> float:
    """Analytic CosineAnnealingLR value after `epoch` scheduler steps."""
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * epoch / t_max)) / 2


def test_cosine_lr_closed_form_points():
    assert cosine_lr(3e-4, 0, 50) == pytest.approx(3e-4)
    assert cosine_lr(3e-4, 25, 50) == pytest.approx(1.5e-4)
    assert cosine_lr(3e-4, 50, 50) == pytest.approx(0.0, abs=1e-18)
    # the improved run stopped after 12 epochs: lr of epoch 12 (11 steps) is still 89 % of base
    assert cosine_lr(1.0, 11, 50) == pytest.approx(0.8853, abs=1e-4)


def test_no_scheduler_means_constant_lr():
    assert make_scheduler(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))]), None) is None


def _run(stopper, values):
    stopped_at = None
    for epoch, value in enumerate(values, start=1):
        stopper.update(epoch, value)
        if stopper.should_stop:
            stopped_at = epoch
            break
    return stopper.best_epoch, stopped_at


def test_early_stopping_on_val_loss_reproduces_the_baseline_run():
    # the baseline notebook's validation losses: best at epoch 1, stopped after epoch 6
    losses = [0.8057, 0.8723, 0.9522, 1.0091, 1.0655, 1.1370, 0.1]
    assert _run(EarlyStopping("val_loss_batch_mean", patience=5), losses) == (1, 6)


def test_early_stopping_on_val_acc_reproduces_the_improved_run():
    accs = [84.45, 85.53, 85.93, 85.67, 85.98, 85.94, 86.30, 85.90, 85.90, 85.80, 85.88, 85.80]
    assert _run(EarlyStopping("val_acc_batch_mean", patience=5), [*accs, 99.0]) == (7, 12)


@pytest.mark.parametrize(
    ("monitor", "values", "min_delta", "expected"),
    [
        ("val_loss", [1.0, 0.9, 0.95, 0.8, 0.85, 0.86], 0.0, (4, None)),
        ("val_loss", [1.0, 0.99, 0.98, 0.97], 0.05, (1, 4)),  # tiny gains do not count
        ("val_acc", [50.0, 50.0, 49.0], 0.0, (1, None)),  # ties are no improvement
        ("val_acc", [50.0, 50.0, 49.0, 48.0], 0.0, (1, 4)),
        ("val_acc", [10.0, 20.0, 30.0, 40.0], 0.0, (4, None)),
    ],
)
def test_early_stopping_scripted(monitor, values, min_delta, expected):
    patience = 3
    assert _run(EarlyStopping(monitor, patience, min_delta), values) == expected


@pytest.mark.parametrize(
    ("monitor", "values", "expected"),
    [
        # baseline notebook: `val_loss > best_loss - min_delta` is a bad epoch, so the equal
        # loss of epoch 4 is the new best and restarts the count
        ("val_loss_batch_mean", [1.0, 1.1, 1.2, 1.0, 1.3, 1.4, 1.5], (4, 7)),
        # improved notebook: only `val_acc > best_val` improves, so the tie is a third bad epoch
        ("val_acc_batch_mean", [50.0, 49.0, 48.0, 50.0, 51.0], (1, 4)),
    ],
    ids=["loss-tie-improves", "accuracy-tie-does-not"],
)
def test_a_tie_counts_as_each_notebook_counted_it(monitor, values, expected):
    assert _run(EarlyStopping(monitor, patience=3), values) == expected


def test_a_loss_within_min_delta_of_the_best_is_no_improvement():
    stopper = EarlyStopping("val_loss", patience=3, min_delta=0.25)
    assert stopper.update(1, 1.0)
    assert not stopper.update(2, 0.875)  # 0.875 > 1.0 - 0.25
    assert stopper.update(3, 0.75)  # 0.75 <= 1.0 - 0.25: the baseline's boundary improves
    assert (stopper.best, stopper.best_epoch, stopper.bad_epochs) == (0.75, 3, 0)


def test_early_stopping_state_round_trips():
    stopper = EarlyStopping("val_acc", 5)
    stopper.update(1, 10.0)
    stopper.update(2, 9.0)
    restored = EarlyStopping(**stopper.state_dict())
    assert restored == stopper
    with pytest.raises(ValueError, match="val_f1"):
        EarlyStopping("val_f1", 5)


def test_batch_means_weights_every_batch_equally():
    # 10,000 images at batch 32: 312 full batches and one of 16
    correct = np.zeros(10_000)
    correct[-16:] = 1.0  # the short last batch all right, everything else wrong
    assert batch_means(correct, 32) == pytest.approx(1 / 313)
    assert correct.mean() == pytest.approx(16 / 10_000)
    assert batch_means(np.arange(6.0), 2) == pytest.approx(np.mean([0.5, 2.5, 4.5]))


def test_summarize_exact_and_batch_mean():
    label = np.array([0, 1, 2, 3, 4])
    prediction = np.array([0, 1, 9, 3, 9])
    per_image = {
        "label": label,
        "prediction": prediction,
        "top5": np.array([1, 1, 0, 1, 1], bool),
        "loss": np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
    }
    stats = summarize(per_image, batch_size=2)
    assert stats["val_acc"] == pytest.approx(60.0)
    assert stats["val_acc_batch_mean"] == pytest.approx(100 * (1.0 + 0.5 + 0.0) / 3)
    assert stats["val_loss"] == pytest.approx(3.0)
    assert stats["val_loss_batch_mean"] == pytest.approx((1.5 + 3.5 + 5.0) / 3)
    assert stats["val_top5"] == pytest.approx(80.0)


def test_wilson_interval_known_values():
    # the baseline's published predictions; values worked by hand from the Wilson formula
    low, high = wilson_interval(8261, 10_000)
    assert (low, high) == (pytest.approx(0.818546, abs=2e-6), pytest.approx(0.833404, abs=2e-6))
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_precision_falls_back_to_fp32_on_cpu():
    assert effective_precision("fp16", torch.device("cpu")) == "fp32"
    assert effective_precision("bf16", torch.device("cuda")) == "bf16"


def test_epoch_seeds_differ_per_epoch_and_seed():
    seeds = {epoch_seed(s, e) for s in range(3) for e in range(1, 50)}
    assert len(seeds) == 3 * 49


def _split(n=70, size=8):
    from convnext_tinyimagenet.data.store import Split

    rng = np.random.default_rng(0)
    return Split(
        rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        rng.integers(0, 5, n),
        np.array([f"id{i}" for i in range(n)]),
    )


def test_batch_loader_yields_the_store_rows_in_batches():
    from convnext_tinyimagenet.train.engine import BatchLoader

    split = _split()
    loader = BatchLoader(split, 32, shuffle=False)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(x) for x, _, _ in batches] == [32, 32, 6]
    for x, y, index in batches:
        expected = torch.from_numpy(split.images[index.numpy()]).permute(0, 3, 1, 2)
        assert torch.equal(x, expected) and x.is_contiguous()
        assert torch.equal(y, torch.from_numpy(split.labels[index.numpy()]).long())
    generator = torch.Generator().manual_seed(1)
    seen = torch.cat([index for _, _, index in BatchLoader(split, 32, shuffle=True,
                                                           generator=generator)])  # fmt: skip
    assert sorted(seen.tolist()) == list(range(70)) and seen.tolist() != list(range(70))


@pytest.mark.parametrize("chunk_batches", [2, 3, 10])
def test_chunked_augmented_batches_equal_batch_by_batch(chunk_batches):
    from convnext_tinyimagenet.data.transforms import Pipeline
    from convnext_tinyimagenet.train.engine import BatchLoader

    split = _split(size=16)
    pipeline = Pipeline(16, (0.5,) * 3, (0.25,) * 3, {"num_ops": 2, "magnitude": 9}, {"p": 0.5})

    def batches(chunk):
        generator = torch.Generator().manual_seed(7)
        transform = pipeline.train_transform(len(split), generator)
        return list(BatchLoader(split, 8, shuffle=True, generator=generator, transform=transform,
                                chunk_batches=chunk))  # fmt: skip

    for ours, reference in zip(batches(chunk_batches), batches(1), strict=True):
        for a, b in zip(ours, reference, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["auto", True, False])
def test_resident_split_gives_the_same_batches(mode):
    from convnext_tinyimagenet.train.engine import BatchLoader, resident

    split = _split()
    held = resident(split, torch.device("cpu"), mode)
    assert isinstance(held.images, torch.Tensor) is (mode is True)  # auto: only on a GPU
    for a, b in zip(BatchLoader(held, 16, shuffle=False), BatchLoader(split, 16, shuffle=False),
                    strict=True):  # fmt: skip
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
