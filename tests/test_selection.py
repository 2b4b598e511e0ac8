"""Choosing the epoch on held-out training images (train.selection: holdout) and what the study
says of the faithful choice on the validation images: the split, the run's identity, the replay
of early stopping, a trained run and the study's arithmetic."""

import json

import numpy as np
import pytest

from convnext_tinyimagenet.config import load_config, run_identity, run_settings
from convnext_tinyimagenet.data.store import DataError, Split, hold_out
from convnext_tinyimagenet.report import study
from convnext_tinyimagenet.train.engine import replay_selection
from convnext_tinyimagenet.train.runner import evaluate_experiment, train_experiment

from .conftest import smoke_config


def split(per_class=(5, 7, 6)):
    labels = np.concatenate([[c] * n for c, n in enumerate(per_class)])[::-1].copy()
    images = np.arange(len(labels))[:, None] * np.ones((1, 4), dtype=np.int64)
    return Split(images, labels, np.array([f"id{i:02d}" for i in range(len(labels))]))


def test_hold_out_keeps_per_class_images_out_in_row_order():
    whole = split()
    kept, held = hold_out(whole, 2)
    assert np.bincount(held.labels).tolist() == [2, 2, 2]
    assert np.bincount(kept.labels).tolist() == [3, 5, 4]
    assert set(kept.image_ids).isdisjoint(held.image_ids)
    assert set(kept.image_ids) | set(held.image_ids) == set(whole.image_ids)
    # the rows keep the split's order, and each image keeps its label and pixels
    for part in (kept, held):
        rows = [int(image_id[2:]) for image_id in part.image_ids]
        assert rows == sorted(rows)
        assert np.array_equal(part.labels, whole.labels[rows])
        assert np.array_equal(part.images[:, 0], rows)
    # the same images every time: every seed and variant holds out the same ones
    assert np.array_equal(hold_out(whole, 2)[1].image_ids, held.image_ids)


def test_a_holdout_that_leaves_a_class_nothing_to_train_is_one_line():
    with pytest.raises(DataError, match=r"holdout_per_class = 5: class 0 has 5 training images"):
        hold_out(split(), 5)


def test_the_published_selection_keeps_every_runs_identity():
    cfg = load_config()
    identity = run_identity(run_settings(cfg, "baseline", 0), "baseline")
    assert "selection" not in identity["experiment"]["train"]
    assert "holdout_per_class" not in identity["experiment"]["train"]
    holdout = load_config([], ["experiments.baseline.train.selection=holdout"])
    changed = run_identity(run_settings(holdout, "baseline", 0), "baseline")
    assert changed["experiment"]["train"]["selection"] == "holdout"
    assert changed["experiment"]["train"]["holdout_per_class"] == 50


@pytest.mark.parametrize(
    ("monitor", "values", "expected"),
    [
        # accuracy: a tie is no improvement (the improved notebook); stops after 2 bad epochs
        ("val_acc", [80, 82, 82, 81, 90], 2),
        # loss: a tie improves (the baseline notebook)
        ("val_loss", [1.0, 0.8, 0.8, 0.9, 0.95, 0.1], 3),
    ],
)
def test_replay_selection_stops_where_early_stopping_stops(monitor, values, expected):
    history = [{"epoch": i + 1, monitor: v} for i, v in enumerate(values)]
    assert replay_selection(history, monitor, patience=2, min_delta=0.0) == expected


@pytest.mark.slow
def test_a_holdout_run_chooses_its_epoch_on_the_held_out_images(tmp_path, smoke_cache):
    cfg = smoke_config(smoke_cache, "experiments.baseline_holdout.seeds=[0]")  # the demo's: []
    history = train_experiment(cfg, "baseline_holdout", tmp_path, progress=False)
    summary = evaluate_experiment(cfg, "baseline_holdout", tmp_path, progress=False)
    # 10 classes x 48 training images, 8 per class held out
    assert {record["train_images"] for record in history} == {400}
    best = max(r["epoch"] for r in history if r["best"])
    assert best == replay_selection(history, "holdout_loss_batch_mean", 5, 0.0)
    assert summary["best_epoch"] == best
    chosen = summary["validation_selection"]
    assert chosen["epoch"] == replay_selection(history, "val_loss_batch_mean", 5, 0.0)
    assert chosen["accuracy"] == history[chosen["epoch"] - 1]["val_acc"]
    # the model is the held-out choice: its accuracy is that epoch's logged validation accuracy
    assert summary["accuracy"] == pytest.approx(history[best - 1]["val_acc"])
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    assert provenance["train"]["selection"] == "holdout"


def summaries(optimisms):
    return {
        seed: {
            "accuracy": 90.0,
            "best_epoch": 4,
            "validation_selection": {"epoch": 3, "accuracy": 90.0 + optimism},
        }
        for seed, optimism in enumerate(optimisms)
    }


def test_the_study_reports_the_optimism_of_choosing_on_the_validation_images():
    record = study.selection_record(summaries([0.5, 0.25]))
    assert record["seeds"]["0"] == {
        "holdout_epoch": 4,
        "holdout_accuracy": 90.0,
        "validation_epoch": 3,
        "validation_accuracy": 90.5,
        "optimism": 0.5,
    }
    assert record["optimism"] == pytest.approx(0.375)
    assert study.selection_record({0: {"accuracy": 90.0, "best_epoch": 4}}) is None


def test_the_selection_sentences():
    measured = {
        "title": "Baseline, held out",
        "selection": study.selection_record(summaries([0.5])),
    }
    (sentence,) = study.selection_sentences({"experiments": {"b": measured}})
    assert "adds +0.50 points" in sentence and "seed 0: epoch 3 at 90.50 %" in sentence
    unmeasured = {"title": "Baseline", "selection": None}
    (sentence,) = study.selection_sentences({"experiments": {"b": unmeasured}})
    assert sentence.startswith("Selection bias is not measured in this build")


def test_the_ablation_table_marks_a_holdout_run_as_no_effect():
    accuracy = {"n": 1, "mean": 90.0, "low": None}
    experiment = {"title": "Improved, held out", "from": "improved", "runs": {"0": {}}}
    experiment |= {"accuracy": accuracy, "accuracy_batch_mean": accuracy}
    experiment["selection"] = study.selection_record(summaries([0.5]))
    frame = study.ablation_frame({"experiments": {"h": experiment}, "effects": {}})
    (row,) = frame.to_dict("records")
    assert row["Verdict (Holm p)"] == "selection bias (text)"
    assert row["Effect, variant − parent (pp)"] == "n/a"
