"""The notebook as a document: its generated introduction, settings table and verdict."""

import pytest

from convnext_tinyimagenet import notebook as nb
from convnext_tinyimagenet.config import load_config, run_settings

from .conftest import SMOKE


@pytest.fixture(scope="module")
def cfg():
    return load_config()


def test_run_settings_hold_one_experiment_and_what_runs_read(cfg):
    settings = run_settings(cfg, "improved", 1)
    assert list(settings["experiments"]) == ["improved"]
    assert settings["experiments"]["improved"] == cfg["experiments"]["improved"]
    assert {"seeds", "device", "deterministic", "data", "normalize", "performance"} <= set(settings)
    assert "published" not in settings and "figures" not in settings
    # one seed, and the source the experiment reads (the improved notebook: the zip)
    assert settings["seeds"] == [1] and settings["data"]["source"] == "folder"
    assert run_settings(cfg, "baseline", 0)["data"]["source"] == "hf"


def test_introduction_names_what_differs_from_the_reference(cfg):
    settings = run_settings(cfg, "improved", 0)
    reference = {"name": "baseline", "settings": cfg["experiments"]["baseline"]}
    text = nb.introduction(settings, "improved", reference)
    assert text.startswith(f"**{cfg['experiments']['improved']['title']}.**")
    assert "How it differs from `baseline`" in text
    assert "- what trains: stages.3 + attention + head (`baseline`: head)" in text
    assert "- label smoothing: 0.05 (`baseline`: 0.0)" in text
    assert "RandAugment(2 ops, magnitude 9) + RandomErasing(p=0.15)" in text
    assert "`convnext_tiny.fb_in1k`" in text and "`convnext_tiny.in12k_ft_in1k`" in text
    assert "- precision" in text  # fp32 vs fp16
    # batch size is equal in both recipes: not listed as a difference
    assert "batch size" not in text.split("How it differs")[1]


def test_a_run_from_random_weights_says_so(cfg):
    """The demo trains from random initialisation: the notebook names no pretrained weights."""
    smoke = load_config([SMOKE])
    text = nb.introduction(run_settings(smoke, "improved", 0), "improved", None)
    assert "(`convnext_tiny.fb_in1k`) from random weights" in text
    assert "pretrained" not in text


def test_published_curves_are_drawn_only_over_tinyimagenet_runs(cfg, tmp_path):
    """The published run's curves are TinyImageNet's: over a synthetic run they are left out,
    and the caption says why."""
    from convnext_tinyimagenet.run_folder import RunFolder, write_metrics

    rows = [{"epoch": e, "train_loss": 1.0, "train_acc": 50.0, "val_loss": 1.0, "val_acc": 50.0,
             "val_acc_batch_mean": 50.0, "train_loss_batch_mean": 1.0, "train_acc_batch_mean": 50.0,
             "val_loss_batch_mean": 1.0, "best": e == 1}
            for e in (1, 2)]  # fmt: skip
    write_metrics(RunFolder(tmp_path).metrics, rows)
    published = cfg["published"]["runs"]["improved"]
    synthetic = load_config([SMOKE])
    caption, figure = nb.learning_curves(synthetic, "improved", str(tmp_path), published)
    assert caption == "The published curves are not drawn: they are TinyImageNet's."
    drawn = [line.get_label() for ax in figure.axes for line in ax.get_lines()]
    caption, figure = nb.learning_curves(cfg, "improved", str(tmp_path), published)
    assert caption == "Rerun (solid) and published run (dashed)."
    assert len([line for ax in figure.axes for line in ax.get_lines()]) > len(drawn)


def test_introduction_of_equal_recipes_says_so(cfg):
    settings = run_settings(cfg, "baseline", 0)
    same = {"name": "copy", "settings": cfg["experiments"]["baseline"]}
    assert "equals `copy`'s in every listed aspect" in nb.introduction(settings, "baseline", same)
    assert "differs" not in nb.introduction(settings, "baseline", None)


def test_settings_table_lists_each_key_once(cfg):
    table = nb.settings_table(run_settings(cfg, "improved", 0), "improved")
    values = table["value"]
    assert values["train.batch_size"] == "32"
    assert values["augment.randaugment.magnitude"] == "9"
    assert values["train.early_stopping.max_epochs"] == "null"
    assert values["trainable.attention"].startswith("name attention, modules ['attention']")
    assert "title" not in table.index and table.index.is_unique
    # as the notebook shows it: whole, not cut at pandas' 50 characters ("weight_...")
    nb.setup(run_settings(cfg, "improved", 0), "improved", "")
    assert "lr 0.0001, weight_decay 0.0005" in table._repr_html_()


SUMMARY = {"accuracy": 86.31, "accuracy_batch_mean": 86.30, "wilson95": [85.62, 86.97]}
SUMMARY |= {"n": 10000, "correct": 8631}


@pytest.mark.parametrize(
    ("band", "verdict", "phrase"),
    [
        ({"expected": None, "tolerance_pp": 1.5}, "pass", "agrees with 86.30 % (published"),
        ({"expected": 90.0, "tolerance_pp": 1.0}, "FAIL", "does NOT agree with 90.00 %"),
    ],
)
def test_against_claim_checks_the_claims_metric(cfg, band, verdict, phrase):
    published = cfg["published"]["runs"]["improved"]  # a batch-mean claim
    sentence, table = nb.against_claim("improved", SUMMARY, published, band)
    assert phrase in sentence
    assert table["value"]["verdict"] == verdict
    assert table["value"]["published claim %"] == "86.30"


def test_against_claim_without_a_band_is_not_checked(cfg):
    sentence, table = nb.against_claim("improved", SUMMARY, None, None)
    assert sentence.startswith("Not checked")
    assert table["value"]["published claim %"] == "n/a"
