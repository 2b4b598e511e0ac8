"""The ablation study from fake run folders: numbers checked against hand arithmetic."""

import json
import math

import pandas as pd
import pytest

from convnext_tinyimagenet.report import study
from convnext_tinyimagenet.stats import newcombe_paired_difference

TITLES = {"base": "Base recipe", "variant": "Base without X", "orphan": "Orphan variant"}
PARENTS = {"base": None, "variant": "base", "orphan": "not_run"}
# The paired 2x2 tables of (variant, base) per seed: both right, only the variant, only the
# base, neither; 20 images each.
TABLES = {0: (10, 2, 5, 3), 1: (10, 4, 5, 1)}
# t quantile at 97.5 % with 1 degree of freedom, in closed form: tan(pi (0.975 - 1/2))
T975_DF1 = math.tan(math.pi * 0.475)


def correctness(table):
    """(variant, base) per-image correctness for a 2x2 table (both, first_only, second_only,
    neither)."""
    both, first_only, second_only, neither = table
    variant = [True] * both + [True] * first_only + [False] * second_only + [False] * neither
    base = [True] * both + [False] * first_only + [True] * second_only + [False] * neither
    return variant, base


def write_run(root, name, seed, correct, *, ids=None, batch_mean=None, reverse=False):
    """A run folder with summary.json and predictions.csv; `reverse` writes the rows backwards,
    so that only a merge on image_id pairs them right."""
    folder = root / f"{name}-{seed}"
    folder.mkdir()
    ids = ids or [f"img{i:02d}" for i in range(len(correct))]
    frame = pd.DataFrame(
        {
            "image_id": ids,
            "index": range(len(ids)),
            "label": 0,
            "prediction": [0 if c else 1 for c in correct],
            "correct": correct,
            "top5": "0 1 2 3 4",
            "confidence": 0.5,
        }
    )
    if reverse:
        frame = frame.iloc[::-1]
    frame.to_csv(folder / "predictions.csv", index=False)
    accuracy = 100.0 * sum(correct) / len(correct)
    summary = {
        "accuracy": accuracy,
        "accuracy_batch_mean": accuracy if batch_mean is None else batch_mean,
        "n": len(correct),
        "correct": sum(correct),
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return {"summary": folder / "summary.json", "predictions": folder / "predictions.csv"}


def fake_runs(root, seeds):
    runs = {"base": {}, "variant": {}, "orphan": {}}
    for seed in seeds:
        variant, base = correctness(TABLES[seed])
        runs["base"][seed] = write_run(root, "base", seed, base, reverse=True)
        runs["variant"][seed] = write_run(root, "variant", seed, variant, batch_mean=61.0)
        runs["orphan"][seed] = write_run(root, "orphan", seed, variant)
    return runs


SETTINGS = {
    "alpha": 0.05,
    "equivalence_margin_pp": 0.5,
    "bootstrap": {"replicates": 4000, "seed": 0},
    "decompose": {"recipe": "base", "against": "base", "leave_one_out": ["variant"]},
}


def summarize(runs, path, **changes):
    keywords = {"parents": PARENTS, "titles": TITLES, "settings": SETTINGS} | changes
    return study.read_study(study.summarize_study(runs, path, **keywords))


@pytest.fixture
def one_seed(tmp_path):
    return summarize(fake_runs(tmp_path, [0]), tmp_path / "study.json")


@pytest.fixture
def two_seeds(tmp_path):
    return summarize(fake_runs(tmp_path, [0, 1]), tmp_path / "study.json")


def test_one_seed_effect_against_hand_arithmetic(one_seed):
    effect = one_seed["effects"]["variant"]
    assert effect["reference"] == "base"
    seed = effect["seeds"]["0"]
    # variant 12/20 = 60 %, base 15/20 = 75 %: (2 - 5) / 20 = -15 points
    assert seed["difference"] == pytest.approx(-15.0)
    assert effect["difference"] == pytest.approx(-15.0)
    counts = {"n": 20, "both": 10, "first_only": 2, "second_only": 5, "neither": 3}
    assert seed["counts"] == counts
    # 7 discordant images, 2 one way: p = 2 (C(7,0) + C(7,1) + C(7,2)) / 2^7 = 58 / 128
    assert seed["mcnemar_p"] == pytest.approx(58 / 128)
    assert seed["newcombe95"] == pytest.approx(list(newcombe_paired_difference(counts)))
    # both runs' accuracy over the paired seed, which subtract to the effect
    assert effect["accuracy"] == {"variant": 60.0, "reference": 75.0}


def test_one_seed_bootstrap_is_the_paired_image_noise(one_seed):
    bootstrap = one_seed["effects"]["variant"]["bootstrap"]
    # one seed: images resampled alone; their variance is the paired difference's,
    # ((b + c) / n - ((b - c) / n)^2) / n = (7 / 20 - 0.0225) / 20, in points²
    assert bootstrap["image_var"] == pytest.approx(1e4 * (7 / 20 - 0.0225) / 20)
    assert bootstrap["seed_var"] is None
    low, high = bootstrap["interval95"]
    assert low < -15.0 < high and 0 < bootstrap["p_greater"] < 0.1


def test_one_seed_runs_and_means(one_seed):
    base, variant = one_seed["experiments"]["base"], one_seed["experiments"]["variant"]
    assert base["from"] is None and variant["from"] == "base"
    assert base["runs"] == {"0": {"accuracy": 75.0, "accuracy_batch_mean": 75.0}}
    assert variant["runs"] == {"0": {"accuracy": 60.0, "accuracy_batch_mean": 61.0}}
    assert variant["accuracy"]["mean"] == 60.0 and variant["accuracy"]["low"] is None
    assert variant["accuracy_batch_mean"]["mean"] == 61.0


def test_a_variant_whose_parent_does_not_run_has_no_effect(one_seed):
    assert one_seed["effects"]["orphan"] is None
    assert "base" not in one_seed["effects"]
    assert one_seed["family"] == ["variant"]  # Holm's family: the effects that were measured


def test_two_seeds_against_hand_arithmetic(two_seeds):
    effect = two_seeds["effects"]["variant"]
    # seed 1: (4 - 5) / 20 = -5 points; b = 4, c = 5: p = 2 * 256 / 512, capped at 1
    assert effect["seeds"]["1"]["difference"] == pytest.approx(-5.0)
    assert effect["seeds"]["1"]["mcnemar_p"] == 1.0
    # -15 and -5: mean -10; the seed part's variance is s² / k = 50 / 2 points²
    assert effect["difference"] == pytest.approx(-10.0)
    assert effect["bootstrap"]["seed_var"] == pytest.approx(25.0)
    assert effect["accuracy"] == pytest.approx({"variant": 65.0, "reference": 75.0})
    # the variant's accuracies: 60 and 70 %, mean 65 and the t-interval over the two seeds
    accuracy = two_seeds["experiments"]["variant"]["accuracy"]
    assert (accuracy["mean"], accuracy["low"]) == pytest.approx((65.0, 65.0 - T975_DF1 * 5.0))


def test_one_effect_is_its_own_family(two_seeds):
    # m = 1: Holm leaves p as it is; the level is 1 - alpha; TOST reads the 90 % interval
    effect = two_seeds["effects"]["variant"]
    assert effect["holm"]["p"] == effect["bootstrap"]["p"]
    assert effect["holm"]["level"] == pytest.approx(0.95)
    assert effect["holm"]["interval"] == effect["bootstrap"]["interval95"]
    assert effect["equivalence"]["level"] == pytest.approx(0.9)
    assert effect["equivalence"]["margin"] == 0.5


def test_seeds_on_other_images_are_refused(tmp_path):
    runs = fake_runs(tmp_path, [0, 1])
    variant, base = correctness(TABLES[1])
    ids = [f"other{i:02d}" for i in range(20)]
    runs["base"][1] = write_run(tmp_path, "base-other", 1, base, ids=ids)
    runs["variant"][1] = write_run(tmp_path, "variant-other", 1, variant, ids=ids)
    with pytest.raises(study.StudyError, match="seed 1 covers other images than seed 0"):
        summarize(runs, tmp_path / "s.json")


@pytest.mark.parametrize(
    ("variant_ids", "message"),
    [
        ([f"img{i:02d}" for i in range(19)] + ["other"], "1 only in the variant, 1 only in"),
        ([f"img{i:02d}" for i in range(19)] + ["img00"], "repeated image ids"),
    ],
)
def test_predictions_that_cannot_be_paired_are_refused_in_one_line(tmp_path, variant_ids, message):
    variant, base = correctness(TABLES[0])
    runs = {
        "base": {0: write_run(tmp_path, "base", 0, base)},
        "variant": {0: write_run(tmp_path, "variant", 0, variant, ids=variant_ids)},
    }
    with pytest.raises(study.StudyError, match=message) as error:
        summarize(runs, tmp_path / "s.json")
    assert "\n" not in str(error.value) and "variant vs base, seed 0" in str(error.value)
    assert not (tmp_path / "s.json").exists()


def test_the_decomposition_sets_the_contributions_beside_the_gap(one_seed):
    parts = one_seed["decomposition"]
    # the variant left out of "base" costs it -15 points: base − variant = +15
    assert parts["contributions"] == {"variant": 15.0}
    assert parts["sum"] == 15.0 and parts["gap"] == 0.0 and parts["published_gap"] is None


def test_power_from_the_pooled_seed_spread_and_the_image_noise(two_seeds):
    power = two_seeds["power"]
    # pooled over base (75, 75: s² 0), variant and orphan (60, 70: s² 50), one degree of
    # freedom each: s² = 100 / 3; SE² = 2 s² / 2 seeds + the image part; z(1 - 0.05 / 2) + z(0.8)
    assert power["seed_sd"] == pytest.approx(math.sqrt(100 / 3)) and power["seeds"] == 2
    image_var = two_seeds["effects"]["variant"]["bootstrap"]["image_var"]
    se = math.sqrt(100 / 3 + image_var)
    assert power["smallest_effect"] == pytest.approx((1.959964 + 0.841621) * se, rel=1e-5)


def test_table_rows_with_one_seed(one_seed):
    frame = study.ablation_frame(one_seed)
    rows = {row["Experiment"]: row for row in frame.to_dict("records")}
    assert list(rows) == ["Base recipe", "Base without X", "Orphan variant"]
    base, variant, orphan = rows.values()
    assert (base["Variant of"], base["Seeds"], base["Accuracy (%)"]) == ("n/a", "0", "75.00")
    assert base["Effect, variant − parent (pp)"] == base["Verdict (Holm p)"] == "n/a"
    low, high = one_seed["effects"]["variant"]["holm"]["interval"]
    p_greater = one_seed["effects"]["variant"]["bootstrap"]["p_greater"]
    assert variant == {
        "Experiment": "Base without X",
        "Variant of": "base",
        "Seeds": "0",
        "Accuracy (%)": "60.00",
        "Batch mean (%)": "61.00",
        "Effect, variant − parent (pp)": "-15.00",
        "Holm-adjusted interval (pp)": f"[{low:+.2f}, {high:+.2f}] at 95.00 %",
        "P(variant > parent)": f"{p_greater:.3f}",
        "Verdict (Holm p)": variant["Verdict (Holm p)"],
        "Per seed: variant − parent (McNemar p)": "0: -15.00 (0.453)",
    }
    assert variant["Verdict (Holm p)"].startswith(study.verdict(one_seed["effects"]["variant"]))
    assert orphan["Variant of"] == "not_run" and orphan["Effect, variant − parent (pp)"] == "n/a"


def test_table_rows_with_two_seeds(two_seeds):
    frame = study.ablation_frame(two_seeds)
    variant = frame.set_index("Experiment").loc["Base without X"]
    half = T975_DF1 * 5.0
    assert variant["Seeds"] == "0, 1"
    # the t-interval reaches past 100 % (65 + 63.53); the table shows what is possible
    assert 65 + half > 100
    sd = 5.0 * 2**0.5  # 60 and 70 %: sd = |70 - 60| / sqrt(2)
    assert variant["Accuracy (%)"] == f"65.00 ± {sd:.2f} [{65 - half:.2f}, 100.00]"
    assert variant["Batch mean (%)"] == "61.00 ± 0.00 [61.00, 61.00]"  # 61 at both seeds
    assert variant["Effect, variant − parent (pp)"] == "-10.00"
    assert (
        variant["Per seed: variant − parent (McNemar p)"] == "0: -15.00 (0.453); 1: -5.00 (1.000)"
    )


def test_table_and_figure_files_are_written(tmp_path):
    path = study.summarize_study(
        fake_runs(tmp_path, [0]),
        tmp_path / "study.json",
        parents=PARENTS,
        titles=TITLES,
        settings=SETTINGS,
    )
    md, tex = tmp_path / "ablation.md", tmp_path / "ablation.tex"
    study.make_ablation_table(path, md, tex)
    assert "Base without X" in md.read_text() and r"\toprule" in tex.read_text()
    png, pdf = tmp_path / "effects.png", tmp_path / "effects.pdf"
    study.plot_ablation_effects(path, png, pdf, dpi=50)
    assert png.read_bytes().startswith(b"\x89PNG") and pdf.read_bytes().startswith(b"%PDF")


def test_the_forest_plot_has_one_row_per_variant_with_a_parent(one_seed):
    ax = study.ablation_effects_figure(one_seed).axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["Base without X"]
    low, high = one_seed["effects"]["variant"]["holm"]["interval"]
    # the interval bar: the one line that is not vertical (the line at 0) nor a point (the mean)
    (bar,) = [line for line in ax.get_lines() if len(set(line.get_xdata())) == 2]
    assert list(bar.get_xdata()) == pytest.approx([low, high])
    # the equivalence margin, shaded
    (band,) = ax.patches
    assert band.get_x() == pytest.approx(-0.5) and band.get_width() == pytest.approx(1.0)
