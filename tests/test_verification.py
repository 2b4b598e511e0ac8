"""Verification: published claims recomputed, reruns against their bands, checksums.

Against the published prediction files where they are available (`../shared/published/`, copied
into a temporary download_dir: the project never commits them), and against small synthetic CSVs
built here whose exact and batch-mean accuracies are known by hand. No test touches the network.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from convnext_tinyimagenet import paths, published, stats, verification
from convnext_tinyimagenet.cli import main
from convnext_tinyimagenet.config import load_config
from convnext_tinyimagenet.evaluation import (
    Z95,
    predictions_frame,
    summarize_predictions,
    write_predictions,
)

from .conftest import CONFIG, SHARED_PUBLISHED, SMOKE

PUBLISHED_FILES = (
    "baseline_validation_predictions.csv",
    "improvement_validation_predictions.csv",
)
have_published = pytest.mark.skipif(
    not all((SHARED_PUBLISHED / name).is_file() for name in PUBLISHED_FILES),
    reason=f"the published prediction CSVs are not in {SHARED_PUBLISHED} (the project never "
    "commits them; CI provides them there)",
)


def smoke(tmp_path: Path, *overrides: str) -> dict:
    """The smoke config with every output and download under tmp_path."""
    return load_config(
        [CONFIG, SMOKE],
        [
            f"output_dir={tmp_path / 'results'}",
            f"published.download_dir={tmp_path / 'downloads'}",
            *overrides,
        ],
    )


@pytest.fixture
def real_published(tmp_path) -> list[str]:
    """The published CSVs copied into a temporary download_dir; overrides that use them."""
    if not all((SHARED_PUBLISHED / name).is_file() for name in PUBLISHED_FILES):
        pytest.skip(f"the published prediction CSVs are not in {SHARED_PUBLISHED}")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for name in PUBLISHED_FILES:
        shutil.copy(SHARED_PUBLISHED / name, downloads / name)
    return ["published.use_predictions=true"]


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
    overrides = ["published.use_predictions=true"]
    for run, name in zip(("baseline", "improved"), PUBLISHED_FILES, strict=True):
        path = tmp_path / "downloads" / name
        digest = write_published_csv(path, SYNTHETIC_LABELS, predictions, index=run == "improved")
        overrides.append(f"published.runs.{run}.predictions.sha256={digest}")
    # baseline claims the exact figure, improved the batch mean, as the notebooks computed them
    overrides += ["published.runs.baseline.claim=60.0", "published.runs.improved.claim=75.0"]
    return overrides


def write_rerun(cfg: dict, name: str, labels, predictions, source: str = "synthetic") -> dict:
    """A rerun's predictions.csv and summary.json, written by the evaluation's own functions."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    n = len(labels)
    per_image = {
        "index": np.arange(n),
        "label": labels,
        "prediction": predictions,
        "top5": np.ones(n, dtype=bool),
        "confidence": np.full(n, 0.5),
    }
    frame = predictions_frame(per_image, np.array([f"img{i:05d}" for i in range(n)]))
    run = paths.run_dir(cfg, name)
    write_predictions(frame, run / "predictions.csv")
    classes = [f"c{k}" for k in range(int(labels.max()) + 1)]
    summary = {"experiment": name, **summarize_predictions(frame, classes, 32)}
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    data = paths.data_summary(cfg)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(json.dumps({"source": source}), encoding="utf-8")
    return summary


def in_band_reruns(cfg: dict) -> None:
    """Both reruns at 150 / 160 (93.75 %), inside the smoke bands of 95 +/- 8."""
    labels = np.repeat(np.arange(10), 16)
    wrong = np.zeros(160, dtype=bool)
    wrong[::16] = True
    for name in ("baseline", "improved"):
        write_rerun(cfg, name, labels, np.where(wrong, (labels + 1) % 10, labels))


# --------------------------------------------------------------------------- the published files


@have_published
def test_published_figures_recompute_exactly(tmp_path, real_published):
    result = verification.verify_published(smoke(tmp_path, *real_published))
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
def test_published_gain_holds_with_an_unpaired_interval(tmp_path, real_published):
    comparison = verification.verify_published(smoke(tmp_path, *real_published))["comparison"]
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
def test_cli_verify_published_only_prints_the_figures(tmp_path, real_published, capsys):
    argv = ["verify", "--published-only", "--config", str(CONFIG), "--config", str(SMOKE)]
    argv += ["--set", f"output_dir={tmp_path / 'results'}"]
    argv += ["--set", f"published.download_dir={tmp_path / 'downloads'}"]
    argv += ["--set", real_published[0]]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for figure in ("82.61", "86.31", "86.30", "86.3019", "+3.69", "+3.70"):
        assert figure in out
    assert "verification passed" in out
    written = json.loads((tmp_path / "results/published/verification.json").read_text())
    assert written["verdict"] == "pass" and written["reruns"] is None


@have_published
def test_a_tampered_published_file_is_refused(tmp_path, real_published):
    path = tmp_path / "downloads" / PUBLISHED_FILES[1]
    lines = path.read_text().splitlines(keepends=True)
    assert lines[1] == "0,0,0,True\n"
    lines[1] = "0,0,1,False\n"  # one row changed, still self-consistent
    path.write_text("".join(lines))
    cfg = smoke(tmp_path, *real_published)
    with pytest.raises(published.PublishedError, match="refused") as error:
        verification.verify_published(cfg)
    assert str(path) in str(error.value)
    assert cfg["published"]["runs"]["improved"]["predictions"]["sha256"] in str(error.value)


# --------------------------------------------------------------------------- synthetic claims


def test_exact_and_batch_mean_arithmetic(tmp_path, synthetic):
    result = verification.verify_published(smoke(tmp_path, *synthetic))
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
    cfg = smoke(tmp_path, *synthetic, f"published.runs.baseline.claim={claim}")
    assert verification.verify_published(cfg)["runs"]["baseline"]["verdict"] == verdict


def test_published_rows_from_the_same_source_are_paired(tmp_path, synthetic):
    cfg = smoke(tmp_path, *synthetic, "published.runs.improved.source=hf")
    comparison = verification.verify_published(cfg)["comparison"]
    assert comparison["pairing"]["status"] == "paired"
    assert comparison["pairing"]["agreement"] == 100.0
    assert comparison["ci95"][0] <= 0 <= comparison["ci95"][1]
    assert "paired" in comparison["method"]


# --------------------------------------------------------------------------- intervals


def wilson_by_bisection(correct: int, n: int) -> tuple[float, float]:
    """Wilson's bounds as the two roots of |p_hat - p| = z sqrt(p (1 - p) / n), in %."""
    p_hat = correct / n

    def gap(p: float) -> float:
        return abs(p_hat - p) - Z95 * math.sqrt(p * (1 - p) / n)

    def root(lo: float, hi: float) -> float:  # gap changes sign between lo and hi
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if (gap(mid) > 0) == (gap(lo) > 0) else (lo, mid)
        return 100 * (lo + hi) / 2

    return root(0.0, p_hat), root(p_hat, 1.0)


@pytest.mark.parametrize(("correct", "n"), [(8261, 10_000), (8631, 10_000), (150, 160), (1, 7)])
def test_accuracy_interval_is_wilson(correct, n):
    interval = stats.accuracy_interval(correct, n)
    assert interval["accuracy"] == pytest.approx(100 * correct / n)
    assert interval["wilson95"] == pytest.approx(list(wilson_by_bisection(correct, n)), abs=1e-9)


def test_newcombe_difference_matches_published_example():
    """Newcombe (1998), Table II, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339."""
    low, high = stats.newcombe_difference(
        stats.accuracy_interval(56, 70), stats.accuracy_interval(48, 80)
    )
    assert (low, high) == pytest.approx((5.24, 33.39), abs=0.01)


def test_paired_interval_without_correlation_is_the_independent_one():
    # a d == b c (36 x 16 == 24 x 24): phi = 0, so the cross term vanishes
    counts = {"n": 100, "both": 36, "first_only": 24, "second_only": 24, "neither": 16}
    first = stats.accuracy_interval(60, 100)
    second = stats.accuracy_interval(60, 100)
    assert stats.newcombe_paired_difference(counts) == pytest.approx(
        stats.newcombe_difference(first, second)
    )


def test_paired_interval_approaches_the_paired_wald_interval():
    # large n: the score interval converges on d +/- z sqrt((b + c) / n^2 - (b - c)^2 / n^3)
    counts = {"n": 100_000, "both": 80_000, "first_only": 6_000, "second_only": 4_000}
    counts["neither"] = 10_000
    n, b, c = counts["n"], counts["first_only"], counts["second_only"]
    half = 100 * Z95 * math.sqrt((b + c) / n**2 - (b - c) ** 2 / n**3)
    low, high = stats.newcombe_paired_difference(counts)
    assert (low, high) == pytest.approx((2.0 - half, 2.0 + half), abs=0.01)
    # pairing narrows the interval: these runs agree on 90 % of the images
    wide = stats.newcombe_difference(
        stats.accuracy_interval(86_000, n), stats.accuracy_interval(84_000, n)
    )
    assert high - low < 0.7 * (wide[1] - wide[0])


@pytest.mark.parametrize(
    ("first_only", "second_only", "p"),
    [(5, 0, 2 / 32), (0, 5, 2 / 32), (3, 1, 2 * 5 / 16), (4, 4, 1.0), (0, 0, 1.0)],
)
def test_mcnemar_exact_p(first_only, second_only, p):
    assert stats.mcnemar_exact_p(first_only, second_only) == pytest.approx(p)


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
    cfg = smoke(tmp_path)
    labels = np.repeat(np.arange(10), 16)
    missed = np.arange(160) < wrong
    write_rerun(cfg, "baseline", labels, np.where(missed, (labels + 1) % 10, labels))
    in_band = np.where(np.arange(160) < 8, (labels + 1) % 10, labels)
    write_rerun(cfg, "improved", labels, in_band)
    runs = verification.verify_rerun(cfg, verification.verify_published(cfg))["runs"]
    assert runs["baseline"]["verdict"] == verdict
    assert runs["baseline"]["basis"] == "verification.reruns.baseline.expected"
    assert runs["improved"]["verdict"] == "pass"


def test_rerun_is_checked_against_the_claim_when_expected_is_null(tmp_path, synthetic):
    # the improved claim (75.0) is a batch mean: so is the rerun figure it is compared with
    cfg = smoke(tmp_path, *synthetic, "verification.reruns.improved.expected=null")
    for name in ("baseline", "improved"):
        write_rerun(cfg, name, SYNTHETIC_LABELS, synthetic_predictions())
    run = verification.verify_rerun(cfg, verification.verify_published(cfg))["runs"]["improved"]
    assert (run["metric"], run["basis"]) == ("batch_mean", "published claim")
    assert run["value"] == pytest.approx(75.0) and run["accuracy"] == pytest.approx(60.0)
    assert run["verdict"] == "pass"


def test_rerun_on_the_published_source_is_paired_image_by_image(tmp_path, synthetic):
    cfg = smoke(tmp_path, *synthetic)
    labels = SYNTHETIC_LABELS
    better = np.where(np.arange(40) < 36, labels, (labels + 1) % 4)  # 36 / 40 right
    write_rerun(cfg, "baseline", labels, better, source="hf")  # the baseline's published order
    write_rerun(cfg, "improved", labels, better, source="hf")
    result = verification.verify_rerun(cfg, verification.verify_published(cfg))
    pairing = result["runs"]["baseline"]["pairing"]
    assert pairing["status"] == "paired"
    # published: right on the even rows of batch 1 and all of batch 2; rerun: wrong on 36-39
    assert pairing["counts"] == {
        "n": 40,
        "both": 20,
        "first_only": 16,
        "second_only": 4,
        "neither": 0,
    }
    assert pairing["difference"] == pytest.approx(30.0)  # 90 % - 60 %
    assert result["runs"]["improved"]["pairing"]["status"] == "not paired"  # folder order
    assert "folder" in result["runs"]["improved"]["pairing"]["reason"]
    rows = verification.verification_rows(cfg, verification.verify_published(cfg), result)
    assert any("image by image" in r["Claim"] and "McNemar" in r["Rerun"] for r in rows)


def test_smoke_verify_without_published_predictions_passes(tmp_path, capsys):
    cfg = smoke(tmp_path)
    in_band_reruns(cfg)
    assert verification.run_verify(cfg) == 0
    out = capsys.readouterr().out
    assert NOT_FETCHED_TEXT in out
    result = json.loads(verification.result_path(cfg).read_text())
    assert result["verdict"] == "pass"
    assert result["published"]["status"] == "not checked"
    verdicts = {row["Claim"]: row["Verdict"] for row in result["rows"]}
    assert verdicts["baseline: the claim is the exact accuracy of its predictions"] == (
        "not checked"
    )
    assert verdicts["baseline: the rerun lies in its band"] == "pass"


NOT_FETCHED_TEXT = "not checked (published predictions not fetched; set published.use_predictions)"


def test_published_only_without_the_files_says_what_it_needs(tmp_path, capsys):
    argv = ["verify", "--published-only", "--config", str(CONFIG), "--config", str(SMOKE)]
    argv += ["--set", f"output_dir={tmp_path}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "published.use_predictions is false" in err
    assert "baseline_validation_predictions.csv" in err and "sha256" in err


def test_a_claim_outside_its_band_exits_1_naming_the_run(tmp_path, capsys):
    cfg = smoke(tmp_path)
    in_band_reruns(cfg)
    argv = ["verify", "--config", str(CONFIG), "--config", str(SMOKE)]
    argv += ["--set", f"output_dir={cfg['output_dir']}"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--set", "verification.reruns.improved.expected=80.0"]) == 1
    out = capsys.readouterr().out
    assert "verification FAILED: improved: the rerun lies in its band" in out
    assert "80.00 +/- 8 (expected)" in out


def test_missing_rerun_is_a_user_error(tmp_path, capsys):
    argv = ["verify", "--config", str(CONFIG), "--config", str(SMOKE)]
    argv += ["--set", f"output_dir={tmp_path}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "baseline" / "summary.json") in err


# --------------------------------------------------------------------------- checksums


def test_checksummed_files_cover_the_paper_but_not_the_check():
    cfg = load_config([CONFIG, SMOKE])
    files = {str(path) for path in verification.checksummed_files(cfg)}
    out = cfg["output_dir"]
    for expected in (
        f"{out}/baseline/predictions.csv",
        f"{out}/improved/metrics.jsonl",
        f"{out}/improved/summary.json",
        f"{out}/baseline/experiment.html",
        f"{out}/figures/learning_curves.png",
        f"{out}/figures/improved/class_grid.pdf",
        f"{out}/tables/verification.tex",
        f"{out}/tables/results.md",
        f"{out}/paper/generated/numbers.tex",
        f"{out}/paper/generated/verification.tex",
    ):
        assert expected in files
    assert not any(f.endswith(("SHA256SUMS", "verification.json")) for f in files)
    assert f"{out}/published/summary.json" not in files  # use_predictions is false in smoke


def test_a_tampered_result_file_fails_the_check_naming_it(tmp_path, capsys):
    cfg = smoke(tmp_path)
    in_band_reruns(cfg)
    out = paths.output_dir(cfg)
    files = [out / name / "summary.json" for name in ("baseline", "improved")]
    files += [out / "baseline" / "predictions.csv", out / "improved" / "predictions.csv"]
    path = verification.write_checksums(cfg, files)
    assert path == out / "SHA256SUMS"
    assert verification.check_checksums(cfg) == []
    argv = ["verify", "--check", "--config", str(CONFIG), "--config", str(SMOKE)]
    argv += ["--set", f"output_dir={out}", "--set", f"published.download_dir={tmp_path}"]
    assert main(argv) == 0
    capsys.readouterr()

    tampered = out / "improved" / "predictions.csv"
    tampered.write_text(tampered.read_text().replace(",True,", ",False,", 1))
    (out / "baseline" / "summary.json").unlink()
    problems = verification.check_checksums(cfg)
    assert [p.split(":")[0] for p in problems] == [str(files[0]), str(tampered)]
    assert "missing" in problems[0] and "changed" in problems[1]
    write_rerun(cfg, "baseline", np.repeat(np.arange(10), 16), np.repeat(np.arange(10), 16))
    assert main(argv) == 1
    report = capsys.readouterr().out
    assert f"{tampered}: changed" in report
    assert "verification FAILED: SHA256SUMS" in report


def test_check_without_checksums_is_a_user_error(tmp_path, capsys):
    cfg = smoke(tmp_path)
    in_band_reruns(cfg)
    argv = ["verify", "--check", "--config", str(CONFIG), "--config", str(SMOKE)]
    argv += ["--set", f"output_dir={cfg['output_dir']}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "SHA256SUMS is missing" in err and "write_checksums" in err


def test_write_checksums_refuses_missing_files(tmp_path):
    cfg = smoke(tmp_path)
    with pytest.raises(verification.VerificationError, match="missing"):
        verification.write_checksums(cfg, [tmp_path / "nope.csv"])
    assert not verification.checksums_path(cfg).exists()


# --------------------------------------------------------------------------- table, fetch


def test_verification_table_for_the_paper_has_no_checksum_row(tmp_path, synthetic):
    cfg = smoke(tmp_path, *synthetic)
    in_band_reruns(cfg)
    md, tex = verification.make_verification_table(cfg)
    text = md.read_text()
    assert "| Claim | Published | Recomputed | Rerun | Tolerance | Verdict | Affected by |" in text
    assert "SHA256SUMS" not in text
    assert "Reported accuracy" in text  # the discrepancy beside the improved run's numbers
    assert r"\begin{tabular}" in tex.read_text()
    # written whatever the verdicts: the synthetic "gain" does not hold, and the table says so
    assert "| FAIL |" in text


def test_offline_fetch_names_url_path_and_hash(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(published.urllib.request, "urlopen", offline)
    cfg = smoke(tmp_path, "published.use_predictions=true")
    with pytest.raises(published.PublishedError) as error:
        verification.verify_published(cfg)
    message = str(error.value)
    assert message.startswith("2 published files cannot be used")  # both named at once
    for run in ("baseline", "improved"):
        spec = cfg["published"]["runs"][run]["predictions"]
        assert spec["url"] in message and spec["sha256"] in message
        assert str(published.local_path(cfg, run)) in message
    assert "by hand" in message
    assert not any((tmp_path / "downloads").glob("*"))  # nothing half-written


def test_a_download_with_another_hash_is_refused_naming_url_and_destination(tmp_path, monkeypatch):
    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    other = b"Ground_Truth,Prediction,Is_Correct\n"
    monkeypatch.setattr(published.urllib.request, "urlopen", lambda url, timeout: Response(other))
    cfg = smoke(tmp_path, "published.use_predictions=true")
    with pytest.raises(published.PublishedError) as error:
        published.fetch(cfg, "baseline")
    message = str(error.value)
    spec = cfg["published"]["runs"]["baseline"]["predictions"]
    destination = published.local_path(cfg, "baseline")
    assert spec["url"] in message and spec["sha256"] in message and str(destination) in message
    assert ".tmp" not in message and "refused" in message
    assert not any((tmp_path / "downloads").glob("*"))  # neither the file nor a temporary one


def test_verify_help_names_its_modes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--published-only", "--check", "--write-table", "--write-checksums", "--set"):
        assert option in text


def test_check_does_not_go_with_a_write(tmp_path, capsys):
    argv = ["verify", "--write-table", "--check", "--config", str(CONFIG), "--config", str(SMOKE)]
    assert main([*argv, "--set", f"output_dir={tmp_path}"]) == 2
    assert "--check and --out go with a check" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_fetching_an_unknown_published_run_names_the_known_ones(tmp_path):
    cfg = smoke(tmp_path, "published.use_predictions=true")
    with pytest.raises(
        published.PublishedError, match=r"no published run 'nope' .*baseline, improved"
    ):
        published.fetch(cfg, "nope")
