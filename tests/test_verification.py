"""Verification: published claims recomputed, reruns against their bands, checksums.

Against the published prediction files where they are available (`../shared/published/`, copied
into a temporary folder: the project never commits them), and against small synthetic CSVs built
here whose exact and batch-mean accuracies are known by hand. No test touches the network. The
files live wherever a test puts them: the checks read the paths they are given (as the
workflow's rules hand them), and `verify --check` the paths a verdict JSON records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import io
import json
import math
import re
import shutil
import subprocess
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from convnext_tinyimagenet.cli import main
from convnext_tinyimagenet.config import load_config, settings_digest
from convnext_tinyimagenet.run_folder import RunFolder, run_dir, write_predictions
from convnext_tinyimagenet.train.evaluation import predictions_frame, summarize_predictions
from convnext_tinyimagenet.verify import published, verification
from convnext_tinyimagenet.verify.verification import Claims, Inputs

from .conftest import CONFIG, SHARED_PUBLISHED, SMOKE

PUBLISHED_FILES = {
    "baseline": "baseline_validation_predictions.csv",
    "improved": "improvement_validation_predictions.csv",
}
EXPERIMENTS = ("baseline", "improved")
# the reruns verify checks, named as rules/verify.smk names them: <experiment>/seed<N>
RERUNS = ("baseline/seed0", "improved/seed0")
have_published = pytest.mark.skipif(
    not all((SHARED_PUBLISHED / name).is_file() for name in PUBLISHED_FILES.values()),
    reason=f"the published prediction CSVs are not in {SHARED_PUBLISHED} (the project never "
    "commits them; CI provides them there)",
)


def smoke(*overrides: str) -> dict:
    """The smoke config with `overrides` (--set style)."""
    return load_config([SMOKE], list(overrides))


def claims(*overrides: str) -> Claims:
    """The smoke config's claims, bands and discrepancies."""
    return Claims.from_config(smoke(*overrides))


def downloads(tmp_path: Path) -> dict[str, Path]:
    """Where each published run's CSV lies in these tests."""
    return {run: tmp_path / "downloads" / name for run, name in PUBLISHED_FILES.items()}


def rerun_folder(tmp_path: Path, run: str) -> RunFolder:
    """Where the workflow puts rerun `run` (`<experiment>/seed<N>`): results/<exp>/seed<N>/."""
    experiment, _, seed = run.partition("/seed")
    return RunFolder(run_dir(tmp_path / "results", experiment, seed))


def data_summary(tmp_path: Path, source: str) -> Path:
    """prepare_data's summary of `source`: results/data/<source>/data.json."""
    return tmp_path / "results" / "data" / source / "data.json"


def rerun_inputs(
    tmp_path: Path, *, published_csvs=False, runs=RERUNS, sources=None, **more
) -> Inputs:
    """The files of `runs` as write_rerun puts them, each with the data summary of its source
    in `sources` (run -> source; default synthetic), and the published CSVs if asked."""
    sources = sources or {}
    return Inputs(
        published=downloads(tmp_path) if published_csvs else {},
        summaries={run: str(rerun_folder(tmp_path, run).summary) for run in runs},
        predictions={run: str(rerun_folder(tmp_path, run).predictions) for run in runs},
        data={run: str(data_summary(tmp_path, sources.get(run, "synthetic"))) for run in runs},
        provenance={run: str(rerun_folder(tmp_path, run).provenance) for run in runs},
        **more,
    )


@pytest.fixture
def real_published(tmp_path) -> dict[str, Path]:
    """The published CSVs copied into a temporary folder; run -> path."""
    if not all((SHARED_PUBLISHED / name).is_file() for name in PUBLISHED_FILES.values()):
        pytest.skip(f"the published prediction CSVs are not in {SHARED_PUBLISHED}")
    files = downloads(tmp_path)
    for run, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED_PUBLISHED / PUBLISHED_FILES[run], path)
    return files


# --------------------------------------------------------------------------- synthetic CSVs

# 40 images at batch 32: the first batch holds 16 of 32 correct (50 %), the second all 8 (100 %).
# Exact: 24 / 40 = 60 %. Mean of per-batch accuracies: (50 + 100) / 2 = 75 %.
SYNTHETIC_LABELS = np.repeat(np.arange(4), 10)
SYNTHETIC_CORRECT = np.array([i % 2 == 0 for i in range(32)] + [True] * 8)


def synthetic_predictions(
    labels: np.ndarray = SYNTHETIC_LABELS, correct: np.ndarray = SYNTHETIC_CORRECT
) -> np.ndarray:
    """Predictions that are right exactly where `correct` says (wrong = the next class)."""
    return np.where(correct, labels, (labels + 1) % 4)


def write_published_csv(path: Path, labels, predictions, *, index: bool) -> str:
    """A CSV in the published schema (improvement: with a leading Index); returns its sha256."""
    frame = pd.DataFrame({"Ground_Truth": labels, "Prediction": predictions})
    frame["Is_Correct"] = frame["Ground_Truth"] == frame["Prediction"]
    if index:
        frame.insert(0, "Index", np.arange(len(frame)))
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def synthetic(tmp_path) -> list[str]:
    """Both published runs as the synthetic 40-image set; overrides pinning their sha256."""
    predictions = synthetic_predictions()
    overrides = []
    for run, path in downloads(tmp_path).items():
        digest = write_published_csv(path, SYNTHETIC_LABELS, predictions, index=run == "improved")
        overrides.append(f"published.runs.{run}.predictions.sha256={digest}")
    # baseline claims the exact figure, improved the batch mean, as the notebooks computed them
    overrides += ["published.runs.baseline.claim=60.0", "published.runs.improved.claim=75.0"]
    return overrides


def write_rerun(
    tmp_path: Path, name: str, labels, predictions, source: str = "synthetic", ids=None
) -> dict:
    """Rerun `name`'s (`<experiment>/seed<N>`) predictions.csv and summary.json, written by the
    evaluation's own functions, and the data summary of the `source` it read; `ids`: the rows'
    image ids (default img00000, img00001, ... in row order)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    n = len(labels)
    per_image = {
        "index": np.arange(n),
        "label": labels,
        "prediction": predictions,
        "top5": np.ones(n, dtype=bool),
        "confidence": np.full(n, 0.5),
    }
    frame = predictions_frame(per_image, image_ids(n) if ids is None else np.asarray(ids))
    run = rerun_folder(tmp_path, name)
    write_predictions(frame, run.predictions)
    classes = [f"c{k}" for k in range(int(labels.max()) + 1)]
    summary = summarize_predictions(frame, classes, 32)
    summary = {"experiment": verification.experiment_of(name), **summary}
    run.summary.write_text(json.dumps(summary), encoding="utf-8")
    data_summary(tmp_path, source).parent.mkdir(parents=True, exist_ok=True)
    data_summary(tmp_path, source).write_text(json.dumps({"source": source}))
    experiment, _, seed = name.partition("/seed")
    digest = settings_digest(smoke(), experiment, int(seed))  # what training records
    record = {"config_digest": digest, "data": {"fingerprint": "f"}, "model": "m"}
    run.provenance.write_text(json.dumps({"train": record, "evaluate": record}))
    return summary


def image_ids(n: int) -> np.ndarray:
    return np.array([f"img{i:05d}" for i in range(n)])


def in_band_reruns(tmp_path: Path) -> None:
    """Both reruns at 150 / 160 (93.75 %), inside the smoke bands of 95 +/- 8."""
    labels = np.repeat(np.arange(10), 16)
    wrong = np.zeros(160, dtype=bool)
    wrong[::16] = True
    for name in RERUNS:
        write_rerun(tmp_path, name, labels, np.where(wrong, (labels + 1) % 10, labels))


# --------------------------------------------------------------------------- the published files


@have_published
def test_published_figures_recompute_exactly(real_published):
    result = verification.verify_published(claims(), real_published)
    baseline, improved = result["runs"]["baseline"], result["runs"]["improved"]
    assert (baseline["correct"], baseline["n"]) == (8261, 10_000)
    assert (improved["correct"], improved["n"]) == (8631, 10_000)
    assert f"{baseline['accuracy']:.2f}" == "82.61"
    assert f"{baseline['accuracy_batch_mean']:.2f}" == "82.61"  # 82.6078: counted exactly
    assert f"{improved['accuracy']:.2f}" == "86.31"
    assert f"{improved['accuracy_batch_mean']:.2f}" == "86.30"
    assert improved["accuracy_batch_mean"] == pytest.approx(86.3019, abs=5e-5)
    # each claim is checked against what its notebook computed
    assert (baseline["claim_metric"], baseline["recomputed"]) == ("exact", baseline["accuracy"])
    assert improved["recomputed"] == improved["accuracy_batch_mean"]
    assert baseline["verdict"] == improved["verdict"] == verification.PASS
    assert "313 per-batch accuracies" in improved["explanation"]
    assert "8,631 / 10,000 = 86.31 %" in improved["explanation"]
    # 200 classes of 50 images: every per-class accuracy is a multiple of 2 %
    for run in (baseline, improved):
        assert len(run["per_class"]) == 200
        assert all(math.isclose(v / 2, round(v / 2)) for v in run["per_class"].values())


@have_published
def test_published_gain_holds_with_an_unpaired_interval(real_published):
    comparison = verification.verify_published(claims(), real_published)["comparison"]
    assert f"{comparison['claimed']:+.2f}" == "+3.69"  # 86.30 - 82.61
    assert f"{comparison['recomputed']:+.2f}" == "+3.69"  # 86.3019 - 82.61
    assert f"{comparison['exact']:+.2f}" == "+3.70"  # 86.31 - 82.61
    low, high = comparison["ci95"]
    assert 0 < low < 3.70 < high
    # the rows follow different sources, so the interval must not pair them
    assert comparison["pairing"]["status"] == "not paired"
    assert "no image ids" in comparison["pairing"]["reason"]
    assert "independent" in comparison["method"]
    assert comparison["verdict"] == verification.PASS
    classes = comparison["classes"]
    assert classes["better"] + classes["worse"] + classes["tied"] == 200


@have_published
def test_the_published_check_prints_the_figures_and_keeps_its_verdict(tmp_path, real_published):
    """The verify_published rule: the report on the console, the verdict in the log and out."""
    console, verdict, out = io.StringIO(), tmp_path / "logs/verdict.json", tmp_path / "out.json"
    result = verification.record_verdict(
        claims(), Inputs(published=real_published), verdict=verdict, out=out, console=console
    )
    for figure in ("82.61", "86.31", "86.30", "86.3019", "+3.69", "+3.70"):
        assert figure in console.getvalue()
    assert "verification passed" in console.getvalue()
    assert max(map(len, console.getvalue().splitlines())) <= 230  # was 504: not every column
    written = json.loads(out.read_text())
    assert written == json.loads(verdict.read_text()) == result
    assert written["verdict"] == "pass" and written["reruns"] is None
    assert written["inputs"]["published"] == {run: str(p) for run, p in real_published.items()}


@have_published
def test_a_tampered_published_file_is_refused(real_published):
    path = real_published["improved"]
    lines = path.read_text().splitlines(keepends=True)
    assert lines[1] == "0,0,0,True\n"
    lines[1] = "0,0,1,False\n"  # one row changed, still self-consistent
    path.write_text("".join(lines))
    checked = claims()
    with pytest.raises(published.PublishedError, match="refused") as error:
        verification.verify_published(checked, real_published)
    assert str(path) in str(error.value)
    assert checked.runs["improved"]["predictions"]["sha256"] in str(error.value)


# --------------------------------------------------------------------------- synthetic claims


def test_exact_and_batch_mean_arithmetic(tmp_path, synthetic):
    result = verification.verify_published(claims(*synthetic), downloads(tmp_path))
    baseline, improved = result["runs"]["baseline"], result["runs"]["improved"]
    for run in (baseline, improved):
        assert (run["correct"], run["n"]) == (24, 40)
        assert run["accuracy"] == pytest.approx(60.0)
        assert run["accuracy_batch_mean"] == pytest.approx(75.0)  # (16/32 + 8/8) / 2
    assert baseline["recomputed"] == pytest.approx(60.0)  # claim_metric exact
    assert improved["recomputed"] == pytest.approx(75.0)  # claim_metric batch_mean
    assert baseline["verdict"] == improved["verdict"] == verification.PASS
    explanation = improved["explanation"]
    assert "2 per-batch accuracies at batch 32 (the last batch of 8 images" in explanation
    # class 3 is rows 30-39: 30 right, 31 wrong (batch 1), 32-39 right (batch 2)
    assert baseline["per_class"] == {"0": 50.0, "1": 50.0, "2": 50.0, "3": 90.0}
    # same predictions in both files: a gain of 75 - 60 = 15 claimed, but no gain at all
    comparison = result["comparison"]
    assert comparison["claimed"] == pytest.approx(15.0)
    assert comparison["exact"] == pytest.approx(0.0)
    assert comparison["agrees"] and not comparison["holds"]
    assert comparison["verdict"] == verification.FAIL


@pytest.mark.parametrize(
    ("claim", "verdict"),
    [("60.0", "pass"), ("60.004", "pass"), ("59.996", "pass"), ("60.01", "FAIL"), ("75.0", "FAIL")],
)
def test_claim_verdict_uses_the_rounding_band(tmp_path, synthetic, claim, verdict):
    checked = claims(*synthetic, f"published.runs.baseline.claim={claim}")
    result = verification.verify_published(checked, downloads(tmp_path))
    assert result["runs"]["baseline"]["verdict"] == verdict


def test_published_rows_from_the_same_source_are_paired(tmp_path, synthetic):
    checked = claims(*synthetic, "published.runs.improved.source=hf")
    comparison = verification.verify_published(checked, downloads(tmp_path))["comparison"]
    assert comparison["pairing"]["status"] == "paired"
    assert comparison["pairing"]["agreement"] == 100.0
    assert comparison["ci95"][0] <= 0 <= comparison["ci95"][1]
    assert "paired" in comparison["method"]


def test_a_changed_published_file_is_refused_by_every_reader(tmp_path, synthetic):
    """A CSV edited after it was fetched: the check and the summary refuse it, naming it."""
    checked = claims(*synthetic)
    path = downloads(tmp_path)["baseline"]
    path.write_text(path.read_text().replace("0,0,True", "0,1,False", 1))
    with pytest.raises(published.PublishedError, match="refused") as error:
        verification.verify_published(checked, downloads(tmp_path))
    assert str(path) in str(error.value)
    pins = {run: spec["predictions"]["sha256"] for run, spec in checked.runs.items()}
    out = tmp_path / "summary.json"
    with pytest.raises(published.PublishedError, match="refused"):
        published.summarize_published(downloads(tmp_path), {}, pins, out)
    assert not out.exists()


def test_the_published_summary_holds_each_runs_figures(tmp_path, synthetic):
    checked = claims(*synthetic)
    pins = {run: spec["predictions"]["sha256"] for run, spec in checked.runs.items()}
    out = tmp_path / "published" / "summary.json"
    published.summarize_published(
        downloads(tmp_path), {"baseline": 60.0, "improved": 75.0}, pins, out
    )
    summary = json.loads(out.read_text())
    assert list(summary) == ["baseline", "improved"]
    baseline = summary["baseline"]
    assert (baseline["claim"], baseline["correct"], baseline["n"]) == (60.0, 24, 40)
    assert baseline["accuracy"] == pytest.approx(60.0)
    assert baseline["accuracy_batch_mean"] == pytest.approx(75.0)
    assert baseline["file"] == str(downloads(tmp_path)["baseline"])
    assert baseline["sha256"] == pins["baseline"]


def test_paired_comparison_needs_the_same_labels_row_by_row():
    labels = SYNTHETIC_LABELS
    first = pd.DataFrame({"label": labels, "prediction": labels, "correct": True})
    shuffled = first.sample(frac=1, random_state=0).reset_index(drop=True)
    result = verification.paired_comparison(first, shuffled)
    assert result["status"] == "not paired" and "labels differ" in result["reason"]
    second = first.assign(prediction=synthetic_predictions())
    second["correct"] = second["prediction"] == second["label"]
    paired = verification.paired_comparison(first, second)
    assert paired["status"] == "paired"
    assert paired["counts"] == {
        "n": 40,
        "both": 24,
        "first_only": 16,
        "second_only": 0,
        "neither": 0,
    }
    assert paired["agreement"] == pytest.approx(60.0)
    assert paired["difference"] == pytest.approx(40.0)
    assert paired["mcnemar_p"] == pytest.approx(2 / 2**16)


# --------------------------------------------------------------------------- reruns


@pytest.mark.parametrize(
    ("wrong", "verdict"), [(0, "pass"), (20, "pass"), (21, "FAIL")]
)  # 95 +/- 8: 140 / 160 = 87.5 % is in, 139 / 160 = 86.875 % is out
def test_rerun_band_verdicts(tmp_path, wrong, verdict):
    labels = np.repeat(np.arange(10), 16)
    missed = np.arange(160) < wrong
    write_rerun(tmp_path, "baseline/seed0", labels, np.where(missed, (labels + 1) % 10, labels))
    in_band = np.where(np.arange(160) < 8, (labels + 1) % 10, labels)
    write_rerun(tmp_path, "improved/seed0", labels, in_band)
    checked, inputs = claims(), rerun_inputs(tmp_path)
    published_result = verification.verify_published(checked, inputs.published)
    runs = verification.verify_rerun(checked, inputs, published_result)["runs"]
    assert runs["baseline/seed0"]["verdict"] == verdict
    assert runs["baseline/seed0"]["basis"] == "verification.reruns.baseline.expected"
    assert runs["improved/seed0"]["verdict"] == "pass"


@pytest.mark.parametrize(
    ("section", "key", "value", "what"),
    [
        ("train", "config_digest", "0" * 64, "settings"),  # `train --set ...` into the folder
        ("evaluate", "config_digest", "0" * 64, "settings"),
        ("evaluate", "data", {"fingerprint": "other"}, "data"),  # evaluated on changed data
        ("train", "model", "retrained", "model"),  # trained again after the evaluation
    ],
)
def test_a_run_folder_mixing_two_runs_fails_verification(tmp_path, section, key, value, what):
    """A run's provenance must record one run: the config's settings, its source's data, and
    the model training published for both commands; otherwise the check fails in one line
    naming the file, and the result files are left as they are."""
    labels = np.repeat(np.arange(10), 16)
    for name in RERUNS:
        write_rerun(tmp_path, name, labels, labels)
    inputs = rerun_inputs(tmp_path)
    verification.verify_rerun(claims(), inputs, {"status": "not checked"})  # one run: passes
    path = Path(inputs.provenance["improved/seed0"])
    record = json.loads(path.read_text())
    record[section][key] = value
    path.write_text(json.dumps(record))
    before = {p: p.read_bytes() for p in path.parent.iterdir()}
    with pytest.raises(verification.VerificationFailedError) as failed:
        verification.verify_rerun(claims(), inputs, {"status": "not checked"})
    message = str(failed.value)
    assert "\n" not in message and str(path) in message and f"its {what} differ" in message
    assert {p: p.read_bytes() for p in path.parent.iterdir()} == before


def test_rerun_is_checked_against_the_claim_when_expected_is_null(tmp_path, synthetic):
    # the improved claim (75.0) is a batch mean: so is the rerun figure it is compared with
    checked = claims(*synthetic, "verification.reruns.improved.expected=null")
    for name in RERUNS:
        write_rerun(tmp_path, name, SYNTHETIC_LABELS, synthetic_predictions())
    inputs = rerun_inputs(tmp_path, published_csvs=True)
    published_result = verification.verify_published(checked, inputs.published)
    run = verification.verify_rerun(checked, inputs, published_result)["runs"]["improved/seed0"]
    assert (run["metric"], run["basis"]) == ("batch_mean", "published claim")
    assert run["value"] == pytest.approx(75.0) and run["accuracy"] == pytest.approx(60.0)
    assert run["verdict"] == "pass"


def test_rerun_on_the_published_source_is_paired_image_by_image(tmp_path, synthetic):
    """Per seed: the run that read the published order is paired row by row, the others not."""
    checked = claims(*synthetic)
    labels = SYNTHETIC_LABELS
    better = np.where(np.arange(40) < 36, labels, (labels + 1) % 4)  # 36 / 40 right
    sources = {"baseline/seed0": "hf", "baseline/seed1": "folder", "improved/seed0": "hf"}
    for run, source in sources.items():  # hf: the baseline's published order, not improved's
        write_rerun(tmp_path, run, labels, better, source=source)
    inputs = rerun_inputs(tmp_path, published_csvs=True, runs=list(sources), sources=sources)
    published_result = verification.verify_published(checked, inputs.published)
    result = verification.verify_rerun(checked, inputs, published_result)
    runs = result["runs"]
    assert {run: runs[run]["source"] for run in sources} == sources
    pairing = runs["baseline/seed0"]["pairing"]
    assert pairing["status"] == "paired"
    # published: right on the even rows of batch 1 and all of batch 2; rerun: wrong on 36-39
    assert pairing["counts"] == {
        "n": 40,
        "both": 20,
        "first_only": 16,
        "second_only": 4,
        "neither": 0,
    }
    assert pairing["agreement"] == pytest.approx(50.0)  # wrong = next class: same where both right
    two_sided = 2 * sum(math.comb(20, k) for k in range(5)) / 2**20  # 4 of 20 discordant
    assert pairing["mcnemar_p"] == pytest.approx(two_sided)
    assert pairing["difference"] == pytest.approx(30.0)  # 90 % - 60 %
    other_seed = runs["baseline/seed1"]["pairing"]  # same recipe, read in folder order
    assert other_seed["status"] == "not paired"
    assert "'folder' source" in other_seed["reason"] and "data.source: hf" in other_seed["reason"]
    assert runs["improved/seed0"]["pairing"]["status"] == "not paired"  # folder order
    assert "folder" in runs["improved/seed0"]["pairing"]["reason"]
    rows = verification.verification_rows(checked, published_result, result)
    rows = {row["Claim"]: row["Rerun"] for row in rows}
    paired_row = rows["baseline/seed0: rerun vs published, image by image"]
    assert "same prediction on 50.00 %" in paired_row and "rerun-only correct 16" in paired_row
    assert "published-only 4 (McNemar p = " in paired_row
    assert rows["baseline/seed1: rerun vs published, image by image"].startswith("not paired: ")


def seeded_reruns(tmp_path: Path, wrong: dict[str, int]) -> None:
    """Reruns on 160 synthetic images, run -> how many (the first rows) it gets wrong."""
    labels = np.repeat(np.arange(10), 16)
    for run, count in wrong.items():
        missed = np.arange(160) < count
        write_rerun(tmp_path, run, labels, np.where(missed, (labels + 1) % 10, labels))


def test_each_seed_of_a_recipe_is_checked_against_its_band(tmp_path):
    # 95 +/- 8: 150 / 160 = 93.75 % is in, 139 / 160 = 86.875 % is out
    wrong = {"baseline/seed0": 10, "baseline/seed1": 21, "improved/seed0": 8, "improved/seed1": 0}
    seeded_reruns(tmp_path, wrong)
    result = verification.check(claims(), rerun_inputs(tmp_path, runs=list(wrong)))
    runs = result["reruns"]["runs"]
    assert list(runs) == list(wrong)
    assert {run: runs[run]["basis"] for run in wrong} == {
        run: f"verification.reruns.{verification.experiment_of(run)}.expected" for run in wrong
    }
    verdicts = {row["Claim"]: row["Verdict"] for row in result["rows"]}
    assert verdicts["baseline/seed0: the rerun lies in its band"] == "pass"
    assert verdicts["baseline/seed1: the rerun lies in its band"] == "FAIL"
    assert result["failed"] == ["baseline/seed1: the rerun lies in its band"]
    # the gain pairs the first rerun with the other recipe's run of the same seed, not the last
    difference = result["reruns"]["difference"]
    assert (difference["first"], difference["last"]) == ("baseline/seed0", "improved/seed0")
    assert difference["difference"] == pytest.approx(100 * (10 - 8) / 160)


def test_the_rerun_gain_pairs_two_sources_by_image_id(tmp_path):
    """Two reruns that read their images in different orders are paired image by image."""
    labels, ids = np.repeat(np.arange(10), 16), image_ids(160)
    first = np.where(np.arange(160) < 10, (labels + 1) % 10, labels)  # wrong on images 0-9
    write_rerun(tmp_path, "baseline/seed0", labels, first, source="hf", ids=ids)
    order = np.random.default_rng(0).permutation(160)  # the other source's order
    shuffled = labels[order]  # all right
    write_rerun(tmp_path, "improved/seed0", shuffled, shuffled, "folder", ids=ids[order])
    inputs = rerun_inputs(tmp_path, sources={"baseline/seed0": "hf", "improved/seed0": "folder"})
    result = verification.verify_rerun(claims(), inputs, {"status": "not checked"})
    difference = result["difference"]
    assert difference["status"] == "paired"  # row by row, the labels differ
    counts = {"n": 160, "both": 150, "first_only": 10, "second_only": 0, "neither": 0}
    assert difference["counts"] == counts  # improved - baseline: right on images 0-9 only
    assert difference["agreement"] == pytest.approx(100 * 150 / 160)
    assert difference["mcnemar_p"] == pytest.approx(2 / 2**10)


NOT_FETCHED_TEXT = "not checked (published predictions not fetched; set published.use_predictions)"


def test_smoke_verify_without_published_predictions_passes(tmp_path):
    """The verify rule on the smoke config: no CSVs, both reruns in band, checksums unchanged."""
    in_band_reruns(tmp_path)
    inputs = rerun_inputs(tmp_path)
    sums = verification.write_checksums(inputs.summaries.values(), tmp_path / "SHA256SUMS")
    inputs = rerun_inputs(tmp_path, checksums=str(sums))
    console, verdict, out = io.StringIO(), tmp_path / "logs/verify.json", tmp_path / "verify.json"
    verification.record_verdict(claims(), inputs, verdict=verdict, out=out, console=console)
    # the reason once below the table, not in every cell of a 500-character-wide table
    assert console.getvalue().count("- not checked: published predictions not fetched; set "
                                    "published.use_predictions") == 1  # fmt: skip
    assert NOT_FETCHED_TEXT in json.dumps(json.loads(out.read_text())["rows"])
    assert max(map(len, console.getvalue().splitlines())) <= 230
    assert "verification passed" in console.getvalue()
    result = json.loads(out.read_text())
    assert result == json.loads(verdict.read_text())
    assert result["verdict"] == "pass"
    assert result["published"]["status"] == "not checked"
    assert result["checksums"]["files"] == 2 and result["checksums"]["problems"] == []
    assert result["inputs"] == inputs.record()
    verdicts = {row["Claim"]: row["Verdict"] for row in result["rows"]}
    assert verdicts["baseline: the claim is the exact accuracy of its predictions"] == (
        "not checked"
    )
    assert verdicts["baseline/seed0: the rerun lies in its band"] == "pass"


def test_checking_the_published_claims_without_their_files_says_what_it_needs(tmp_path):
    """The verify_published rule under published.use_predictions false gets no CSVs."""
    verdict, out = tmp_path / "verdict.json", tmp_path / "out.json"
    with pytest.raises(verification.VerificationError) as error:
        verification.record_verdict(claims(), Inputs(), verdict=verdict, out=out)
    message = str(error.value)
    assert "published.use_predictions" in message and "fetch_published" in message
    assert "baseline_validation_predictions.csv" in message and "sha256" in message
    assert not verdict.exists() and not out.exists()


def test_a_failed_check_keeps_its_verdict_and_writes_no_output(tmp_path):
    """Snakemake deletes a failed job's outputs, not its logs: the verdict goes to the log."""
    in_band_reruns(tmp_path)
    checked = claims("verification.reruns.improved.expected=80.0")
    console, verdict, out = io.StringIO(), tmp_path / "logs/verify.json", tmp_path / "verify.json"
    with pytest.raises(verification.VerificationFailedError) as error:
        verification.record_verdict(
            checked, rerun_inputs(tmp_path), verdict=verdict, out=out, console=console
        )
    assert "improved/seed0: the rerun lies in its band" in str(error.value)
    assert str(verdict) in str(error.value)
    assert json.loads(verdict.read_text())["verdict"] == "FAIL"
    assert not out.exists()
    assert "verification FAILED: improved/seed0: the rerun lies in its band" in console.getvalue()
    assert "80.00 +/- 8 (expected)" in console.getvalue()


def test_reruns_and_their_names_must_agree(tmp_path):
    in_band_reruns(tmp_path)
    checked = dataclasses.replace(claims(), bands={"nope": {"expected": 90.0, "tolerance_pp": 1}})
    inputs = rerun_inputs(tmp_path)
    with pytest.raises(verification.ConfigError, match=r"verification\.reruns\.nope names no"):
        verification.verify_rerun(checked, inputs, {"status": "not checked"})
    assert verification.named(EXPERIMENTS, ["a.json", "b.json"]) == {
        "baseline": "a.json",
        "improved": "b.json",
    }
    assert verification.named(PUBLISHED_FILES, []) == {}  # config reads no published CSV
    with pytest.raises(verification.VerificationError, match="1 files for 2 names"):
        verification.named(EXPERIMENTS, ["a.json"])


# --------------------------------------------------------------------------- by hand


def write_record(tmp_path: Path, inputs: Inputs) -> Path:
    """A verdict JSON as the workflow's verify rule writes it, by the same function."""
    verdict, out = tmp_path / "results/logs/verify.json", tmp_path / "results/verification.json"
    verification.record_verdict(claims(), inputs, verdict=verdict, out=out)
    return out


def check_argv(record: Path, *overrides: str) -> list[str]:
    argv = ["verify", "--check", str(record), "--config", str(CONFIG), "--config", str(SMOKE)]
    return argv + [item for override in overrides for item in ("--set", override)]


def test_the_check_reads_the_claims_its_verdict_records(tmp_path, capsys):
    """`verify --check VERDICT` alone checks with the bands the verdict was made with (the
    demo's 95 +/- 8, not the paper's +/- 1.5 around the claims); --config or --set replace
    them."""
    labels = np.repeat(np.arange(10), 16)
    for name in RERUNS:  # 150 / 160 right: 93.75 %, in the demo's band only
        write_rerun(
            tmp_path, name, labels, np.where(np.arange(160) < 10, (labels + 1) % 10, labels)
        )
    record = write_record(tmp_path, rerun_inputs(tmp_path))
    assert json.loads(record.read_text())["claims"]["bands"]["baseline"]["tolerance_pp"] == 8.0
    assert main(["verify", "--check", str(record)]) == 0
    assert "verification passed" in capsys.readouterr().out
    narrow = "verification.reruns.baseline.tolerance_pp=0.5"
    assert main([*check_argv(record, narrow)]) == 1
    del_claims = json.loads(record.read_text())
    del del_claims["claims"]
    record.write_text(json.dumps(del_claims))
    assert main(["verify", "--check", str(record)]) == 2
    assert "records no claims: give the config with --config" in capsys.readouterr().err


def test_a_tampered_result_file_fails_the_check_naming_it(tmp_path, capsys):
    in_band_reruns(tmp_path)
    files = [
        *rerun_inputs(tmp_path).summaries.values(),
        *rerun_inputs(tmp_path).predictions.values(),
    ]
    sums = verification.write_checksums(files, tmp_path / "results" / "SHA256SUMS")
    assert verification.check_checksums(sums)["problems"] == []
    record = write_record(tmp_path, rerun_inputs(tmp_path, checksums=str(sums)))
    before = sorted(tmp_path.rglob("*"))
    assert main(check_argv(record)) == 0
    assert "verification passed" in capsys.readouterr().out
    assert sorted(tmp_path.rglob("*")) == before  # print only: no --out, nothing written

    tampered = Path(files[3])  # improved/seed0/predictions.csv
    tampered.write_text(tampered.read_text().replace(",True,", ",False,", 1))
    Path(files[0]).unlink()  # baseline/seed0/summary.json
    problems = verification.check_checksums(sums)["problems"]
    assert [p.split(":")[0] for p in problems] == [files[0], files[3]]
    assert "missing" in problems[0] and "changed" in problems[1]
    labels = np.repeat(np.arange(10), 16)
    write_rerun(tmp_path, "baseline/seed0", labels, labels)
    mine = tmp_path / "mine" / "check.json"
    assert main([*check_argv(record), "--out", str(mine)]) == 1
    report = capsys.readouterr().out
    assert f"{tampered}: changed" in report
    assert "verification FAILED: SHA256SUMS" in report
    assert json.loads(mine.read_text())["verdict"] == "FAIL"
    assert json.loads(record.read_text())["verdict"] == "pass"  # the workflow's, untouched


def test_the_check_reads_the_recorded_paths_and_the_configs_bands(tmp_path, capsys):
    """No layout of its own: results moved into any folders are found through the record."""
    in_band_reruns(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    moved = {}
    for kind in ("summary", "predictions"):
        for name in RERUNS:
            moved[kind, name] = elsewhere / f"{kind}-{name.replace('/', '-')}"
            moved[kind, name].parent.mkdir(exist_ok=True)
            shutil.move(getattr(rerun_folder(tmp_path, name), kind), moved[kind, name])
    data = elsewhere / "data-synthetic.json"
    shutil.move(data_summary(tmp_path, "synthetic"), data)
    inputs = Inputs(
        summaries={name: str(moved["summary", name]) for name in RERUNS},
        predictions={name: str(moved["predictions", name]) for name in RERUNS},
        data=dict.fromkeys(RERUNS, str(data)),
    )
    record = write_record(tmp_path, inputs)
    assert main(check_argv(record)) == 0
    capsys.readouterr()
    assert main(check_argv(record, "verification.reruns.improved.expected=80.0")) == 1
    out = capsys.readouterr().out
    assert "verification FAILED: improved/seed0: the rerun lies in its band" in out
    assert "80.00 +/- 8 (expected)" in out


def test_missing_rerun_is_a_user_error(tmp_path, capsys):
    in_band_reruns(tmp_path)
    record = write_record(tmp_path, rerun_inputs(tmp_path))
    summary = rerun_folder(tmp_path, "baseline/seed0").summary
    summary.unlink()
    assert main(check_argv(record)) == 2
    assert str(summary) in capsys.readouterr().err


def test_check_without_checksums_is_a_user_error(tmp_path, capsys):
    in_band_reruns(tmp_path)
    data = data_summary(tmp_path, "synthetic")
    sums = verification.write_checksums([data], tmp_path / "SHA256SUMS")
    record = write_record(tmp_path, rerun_inputs(tmp_path, checksums=str(sums)))
    sums.unlink()
    assert main(check_argv(record)) == 2
    err = capsys.readouterr().err
    assert "SHA256SUMS is missing" in err and "write_checksums" in err


@pytest.mark.parametrize("problem", ["missing", "no inputs", "one data summary", "out is read"])
def test_the_check_refuses_what_it_cannot_do(tmp_path, capsys, problem):
    in_band_reruns(tmp_path)
    record = write_record(tmp_path, rerun_inputs(tmp_path))
    argv = check_argv(record)
    if problem == "missing":
        argv = check_argv(tmp_path / "nope.json")
    elif problem == "no inputs":  # a verdict written before the workflow recorded its inputs
        old = json.loads(record.read_text())
        del old["inputs"]
        record.write_text(json.dumps(old))
    elif problem == "one data summary":  # written before runs had seeds and their own sources
        old = json.loads(record.read_text())
        old["inputs"]["data"] = "results/data/data.json"
        record.write_text(json.dumps(old))
    else:  # the check never writes over what it reads: here the workflow's own verdict
        argv += ["--out", str(record)]
    before = record.read_text() if record.exists() else None
    assert main(argv) == 2
    expected = {"missing": "nope.json is missing", "no inputs": "records no inputs"}
    expected["one data summary"] = "records no inputs"
    assert expected.get(problem, "is a file the check reads") in capsys.readouterr().err
    assert (record.read_text() if record.exists() else None) == before


def test_verify_help_names_its_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--check", "--out", "--config", "--set", "config.yaml", "verification.json"):
        assert option in text


# --------------------------------------------------------------------------- checksums


def test_checksums_are_in_the_sha256sum_format(tmp_path, monkeypatch):
    """`sha256sum -c` reads the file (the paths as given, relative to where it runs)."""
    monkeypatch.chdir(tmp_path)
    Path("a").mkdir()
    Path("a/one.txt").write_text("one\n")
    Path("two.csv").write_bytes(b"x,y\n1,2\n")
    sums = verification.write_checksums(["a/one.txt", "two.csv"], "out/SHA256SUMS")
    digest = hashlib.sha256(b"one\n").hexdigest()
    assert sums.read_text().splitlines()[0] == f"{digest}  a/one.txt"
    assert verification.read_checksums(sums) == [
        (digest, "a/one.txt"),
        (hashlib.sha256(b"x,y\n1,2\n").hexdigest(), "two.csv"),
    ]
    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum on this machine")
    checked = subprocess.run(["sha256sum", "-c", str(sums)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    Path("two.csv").write_text("changed\n")
    assert subprocess.run(["sha256sum", "-c", str(sums)], capture_output=True).returncode == 1
    report = verification.check_checksums(sums)
    assert (report["files"], report["verdict"]) == (2, "FAIL")
    assert report["problems"] == [report["problems"][0]]
    assert report["problems"][0].startswith("two.csv: changed")


def test_a_line_deleted_from_the_checksums_or_added_fails_the_check(tmp_path, monkeypatch):
    """The check knows the files SHA256SUMS must list: deleting a changed file's line does not
    hide the change."""
    monkeypatch.chdir(tmp_path)
    for name in ("one.txt", "two.txt", "three.txt"):
        Path(name).write_text(name)
    expected = ["one.txt", "two.txt"]
    sums = verification.write_checksums(expected, "SHA256SUMS")
    assert verification.check_checksums(sums, expected)["verdict"] == "pass"
    Path("two.txt").write_text("changed")
    sums.write_text(sums.read_text().splitlines()[0] + "\n")  # two.txt's line gone
    assert verification.check_checksums(sums)["verdict"] == "pass"  # the list alone can't tell
    report = verification.check_checksums(sums, expected)
    assert (report["verdict"], report["problems"]) == ("FAIL", ["two.txt: not in SHA256SUMS"])
    verification.write_checksums(["one.txt", "two.txt", "three.txt"], "SHA256SUMS")
    report = verification.check_checksums(sums, expected)
    assert report["problems"] == ["three.txt: listed, not expected"]


def test_write_checksums_refuses_missing_files(tmp_path):
    out = tmp_path / "SHA256SUMS"
    with pytest.raises(verification.VerificationError, match="missing"):
        verification.write_checksums([tmp_path / "nope.csv"], out)
    assert not out.exists()


# --------------------------------------------------------------------------- table, fetch


def test_verification_table_for_the_paper_has_no_checksum_row(tmp_path, synthetic):
    in_band_reruns(tmp_path)
    md, tex = tmp_path / "tables/verification.md", tmp_path / "tables/verification.tex"
    inputs = rerun_inputs(tmp_path, published_csvs=True)
    written = verification.make_verification_table(claims(*synthetic), inputs, md, tex)
    assert written == [md, tex]
    table = pd.read_csv(md, sep=r"\s*\|\s*", engine="python", skiprows=[1], dtype=str)
    table = table.iloc[:, 1:-1]  # the empty fields outside the outer pipes
    assert table.columns.tolist() == list(verification.COLUMNS)
    assert not table["Claim"].str.contains("SHA256SUMS").any()
    verdicts = dict(zip(table["Claim"], table["Verdict"], strict=True))
    # written whatever the verdicts: the synthetic "gain" does not hold, and the table says so
    assert verdicts["improved - baseline: the published gain holds"] == "FAIL"
    assert verdicts["baseline/seed0: the rerun lies in its band"] == "pass"
    # the discrepancy beside the improved run's numbers
    affected = dict(zip(table["Claim"], table["Affected by"], strict=True))
    reported = next(
        i for i, d in enumerate(claims().discrepancies, 1) if d["topic"] == "Reported accuracy"
    )
    assert f"D{reported}" in affected["improved/seed0: the rerun lies in its band"].split(", ")
    assert max(map(len, table["Affected by"].fillna(""))) < 30  # numbers, not seven topics
    assert r"\begin{tabular}" in tex.read_text()
    assert r"improved - baseline: the published gain holds & +15.00" in tex.read_text()


def offline(*args, **kwargs):
    raise urllib.error.URLError("no network")


def test_offline_fetch_names_url_and_where_to_place_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(published.urllib.request, "urlopen", offline)
    spec = claims().runs["baseline"]["predictions"]
    path = downloads(tmp_path)["baseline"]
    with pytest.raises(published.PublishedError) as error:
        published.fetch(spec["url"], spec["sha256"], path)
    message = str(error.value)
    assert "\n" not in message  # one line on the console
    assert spec["url"] in message and str(path) in message and spec["sha256"] in message
    assert "by hand" in message
    assert not path.parent.exists() or not any(path.parent.iterdir())  # nothing half-written


def test_offline_check_names_every_missing_file_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(published.urllib.request, "urlopen", offline)
    checked = claims()
    with pytest.raises(published.PublishedError) as error:
        verification.verify_published(checked, downloads(tmp_path))
    message = str(error.value)
    assert message.startswith("2 published files cannot be used")  # both named at once
    for run, path in downloads(tmp_path).items():
        spec = checked.runs[run]["predictions"]
        assert spec["url"] in message and spec["sha256"] in message and str(path) in message
    assert not any((tmp_path / "downloads").glob("*"))


def test_a_placed_file_is_verified_not_downloaded(tmp_path, synthetic, monkeypatch):
    monkeypatch.setattr(published.urllib.request, "urlopen", offline)
    spec = claims(*synthetic).runs["baseline"]["predictions"]
    path = downloads(tmp_path)["baseline"]
    assert published.fetch(spec["url"], spec["sha256"], path) == path


def test_a_download_with_another_hash_is_refused_naming_url_and_destination(tmp_path, monkeypatch):
    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    other = b"Ground_Truth,Prediction,Is_Correct\n"
    monkeypatch.setattr(published.urllib.request, "urlopen", lambda url, timeout: Response(other))
    spec = claims().runs["baseline"]["predictions"]
    destination = downloads(tmp_path)["baseline"]
    with pytest.raises(published.PublishedError) as error:
        published.fetch(spec["url"], spec["sha256"], destination)
    message = str(error.value)
    assert spec["url"] in message and spec["sha256"] in message and str(destination) in message
    assert ".tmp" not in message and "refused" in message
    assert not any(destination.parent.glob("*"))  # neither the file nor a temporary one


def test_a_download_cut_short_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    """A body shorter than its Content-Length: http.client raises IncompleteRead on read()."""

    class Short:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            raise http.client.IncompleteRead(b"Ground_Truth,", 1000)

    monkeypatch.setattr(published.urllib.request, "urlopen", lambda url, timeout: Short())
    spec = claims().runs["baseline"]["predictions"]
    destination = downloads(tmp_path)["baseline"]
    with pytest.raises(published.PublishedError) as error:
        published.fetch(spec["url"], spec["sha256"], destination)
    message = str(error.value)
    assert "\n" not in message and "IncompleteRead" in message and "by hand" in message
    assert not destination.parent.exists() or not any(destination.parent.iterdir())


def test_from_rule_names_each_rule_file_by_its_run():
    """rules/verify.smk lists one data summary per rerun (its source's), named like the rest."""
    runs = {"baseline": {"claim": 82.61}, "improved": {"claim": 86.30}}
    reruns = ["baseline/seed0", "baseline/seed1", "improved/seed0"]
    params = SimpleNamespace(
        runs=runs, rounding_pp=0.005, bands={}, discrepancies=[], experiments=reruns
    )
    table_input = SimpleNamespace(
        published=[], summaries=[f"r/{run}/summary.json" for run in reruns],
        predictions=[f"r/{run}/predictions.csv" for run in reruns],
        data=["r/data/hf/data.json", "r/data/hf/data.json", "r/data/folder/data.json"],
        provenance=[f"r/{run}/provenance.json" for run in reruns],
    )  # fmt: skip
    claims, inputs = verification.from_rule(params, table_input)
    assert claims.runs == runs and claims.rounding_pp == 0.005
    assert inputs.summaries["baseline/seed1"] == "r/baseline/seed1/summary.json"
    assert list(inputs.predictions) == reruns
    assert inputs.data == {
        "baseline/seed0": "r/data/hf/data.json",
        "baseline/seed1": "r/data/hf/data.json",
        "improved/seed0": "r/data/folder/data.json",
    }
    assert list(map(verification.experiment_of, reruns)) == ["baseline", "baseline", "improved"]
    assert inputs.published == {} and inputs.checksums is None  # the table has no SHA256SUMS
    verdict_input = SimpleNamespace(**vars(table_input), checksums="r/SHA256SUMS")
    assert verification.from_rule(params, verdict_input)[1].checksums == "r/SHA256SUMS"
    with pytest.raises(verification.VerificationError, match="2 files for 3 names"):
        verification.from_rule(params, SimpleNamespace(**vars(table_input) | {"data": ["a", "b"]}))


@have_published
def test_a_rerun_pairs_with_the_shared_published_rows_row_by_row():
    """On the shared CSVs: a rerun in the baseline's published order (its predictions those of
    the published file with 100 right rows made wrong and 40 wrong rows made right) pairs row by
    row; the improved file's rows (ImageFolder order) do not pair with the baseline's."""
    baseline = published.read_predictions(SHARED_PUBLISHED / PUBLISHED_FILES["baseline"])
    right = np.flatnonzero(baseline["correct"].to_numpy())
    wrong = np.flatnonzero(~baseline["correct"].to_numpy())
    assert (len(right), len(wrong)) == (8261, 1739)  # the published 82.61 %
    rerun = baseline.copy()
    labels = rerun["label"].to_numpy()
    rerun.loc[right[:100], "prediction"] = (labels[right[:100]] + 1) % 200
    rerun.loc[wrong[:40], "prediction"] = labels[wrong[:40]]
    rerun["correct"] = rerun["label"] == rerun["prediction"]
    pairing = verification.paired_comparison(rerun, baseline)
    assert pairing["status"] == "paired"
    assert pairing["counts"] == {
        "n": 10_000, "both": 8161, "first_only": 40, "second_only": 100, "neither": 1699
    }  # fmt: skip
    assert pairing["agreement"] == pytest.approx(100 * (10_000 - 140) / 10_000)
    assert pairing["difference"] == pytest.approx(-0.6)  # (40 - 100) / 10,000
    exact = 2 * sum(math.comb(140, k) for k in range(41)) / 2**140  # 40 of 140 discordant
    assert pairing["mcnemar_p"] == pytest.approx(exact)
    # Both files list the images class by class, 50 per class, so their labels agree row by row
    # although within a class the orders differ (the Hugging Face split's vs ImageFolder's file
    # order): labels cannot tell, which is why a rerun pairs with a published file only when it
    # read that file's source (test_rerun_on_the_published_source_is_paired_image_by_image).
    improved = published.read_predictions(SHARED_PUBLISHED / PUBLISHED_FILES["improved"])
    assert (improved["label"].to_numpy() == labels).all()
    assert (labels == np.repeat(np.arange(200), 50)).all()
    shifted = baseline.iloc[np.r_[1:10_000, 0]].reset_index(drop=True)  # one row out of step
    other_order = verification.paired_comparison(rerun, shifted)
    assert other_order["status"] == "not paired"
    assert re.match(r"labels differ in 200 of 10,000 rows", other_order["reason"])


@pytest.mark.parametrize(
    "content", [b"# README\n", b"[]", b'{"inputs": {"data"', b"\xff\xfe"], ids=str
)
def test_verify_check_of_a_file_that_is_no_verdict_is_one_line(tmp_path, content, capsys):
    # issue 20: a README, [], a truncated or a non-UTF-8 file was a traceback
    record = tmp_path / "verification.json"
    record.write_bytes(content)
    assert main(["verify", "--check", str(record)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {record} is damaged") and "\n" not in err
    assert err.endswith("name a verdict JSON the workflow wrote")
