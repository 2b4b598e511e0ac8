"""Verify the paper's numbers: the published claims, a rerun against them, and checksums.

Three checks, each a small function returning a plain dict:

- :func:`verify_published` recomputes the published claims from the published prediction CSVs
  (fetched and sha256-verified by :mod:`published`): exact and batch-mean accuracy, per-class
  accuracy, Wilson 95 % intervals, and the improved-minus-baseline difference with Newcombe's
  interval for *independent* proportions, because the two files list the validation images in
  different orders (Hugging Face `valid` vs ImageFolder) without image ids. Each claim is checked
  against the figure its notebook actually computed (`published.runs.<run>.claim_metric`).
- :func:`verify_rerun` compares each rerun (`<output_dir>/<experiment>/summary.json`) with its
  band from `verification.reruns` (the published claim, or an explicit expectation such as the
  smoke config's), and pairs it image by image with the published predictions where both list
  the images in the same order (same data source, same labels row by row).
- :func:`write_checksums` / :func:`check_checksums`: `<output_dir>/SHA256SUMS` over every file
  that goes into the paper (:func:`checksummed_files`), written at the end of the workflow and
  recomputed by `verify --check`.

:func:`verification_rows` turns the results into one row per claim (published value, recomputed
value, rerun value, tolerance, verdict, the README-vs-notebook discrepancies that affect it);
:func:`run_verify` is the `verify` command. The paper's table (:func:`make_verification_table`)
holds the published and rerun rows only: the paper is itself checksummed, so the checksum row
cannot be part of it.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from . import atomic, paths, published, stats
from .config import ConfigError
from .figures import read_run_predictions, read_summary
from .paper import copied_inputs
from .tables import write_table

PASS, FAIL, NOT_CHECKED, INFO = "pass", "FAIL", "not checked", "info"
CHECKED = "checked"
NOT_FETCHED = "published predictions not fetched; set published.use_predictions"
NA = ""  # a cell that does not apply stays empty
# summary.json / published recompute key of each way of computing an accuracy
METRIC_KEYS = {"exact": "accuracy", "batch_mean": "accuracy_batch_mean"}
METRIC_WORDS = {"exact": "exact accuracy", "batch_mean": "mean of per-batch accuracies"}
SOURCE_ORDER = {
    "hf": "the Hugging Face `valid` split's order",
    "folder": "ImageFolder order over the original zip (the `folder` source)",
    "synthetic": "the synthetic source's order",
}
# Float slack for "within the band": 86.3019 - 86.30 must not fail on the 17th digit.
_EPS = 1e-9
CHECKSUMS_MADE_BY = (
    "`snakemake write_checksums` (python -m convnext_tinyimagenet verify --write-checksums)"
)


class VerificationError(Exception):
    """Verification cannot run as asked (a missing file, a missing input); the message says why."""


# --------------------------------------------------------------------------- paths


def checksums_path(cfg: dict) -> Path:
    """`<output_dir>/SHA256SUMS`."""
    return paths.output_dir(cfg) / "SHA256SUMS"


def result_path(cfg: dict, *, published_only: bool = False) -> Path:
    """`<output_dir>/verification.json`, or `<output_dir>/published/verification.json`."""
    if published_only:
        return paths.output_dir(cfg) / "published" / "verification.json"
    return paths.output_dir(cfg) / "verification.json"


def table_stem(cfg: dict) -> Path:
    """`<output_dir>/tables/verification` (.md and .tex)."""
    return paths.tables_dir(cfg) / "verification"


# --------------------------------------------------------------------------- published claims


def _interval_text(low: float, high: float, signed: bool = False) -> str:
    fmt = "{:+.2f}" if signed else "{:.2f}"
    return f"95 % CI {fmt.format(low)} to {fmt.format(high)}"


def check_published_run(spec: Mapping, frame: pd.DataFrame, rounding_pp: float) -> dict:
    """Recompute one published run and check its claim against what its notebook computed.

    Args:
        spec: `published.runs.<run>` of the config (claim, claim_metric).
        frame: its predictions (:func:`published.read_predictions`), in published row order.
        rounding_pp: largest |recomputed - claim| that still agrees (the claim's rounding).

    Returns:
        n, correct, exact and batch-mean accuracy (%), Wilson 95 % interval of the exact one,
        per-class accuracy, the recomputed figure the claim is checked against, the verdict and
        a sentence saying how the claim was computed.
    """
    figures = published.recompute(frame)
    n, correct, size = figures["n"], figures["correct"], figures["batch_size"]
    interval = stats.accuracy_interval(correct, n)
    metric = spec["claim_metric"]
    recomputed = figures[METRIC_KEYS[metric]]
    difference = recomputed - spec["claim"]
    batches = math.ceil(n / size)
    last = n - (batches - 1) * size
    exact = f"{correct:,} / {n:,} = {figures['accuracy']:.2f} %"
    if metric == "exact":
        how = (
            f"the notebook counted correct / total: {exact}; the mean of per-batch accuracies "
            f"would be {figures['accuracy_batch_mean']:.4f} %"
        )
    else:
        how = (
            f"the training loop logged the mean of {batches} per-batch accuracies at batch "
            f"{size} (the last batch of {last} images weighs as much as a full one): "
            f"{figures['accuracy_batch_mean']:.4f} %, printed as {spec['claim']:.2f} %; the "
            f"exact accuracy of the same predictions is {exact}"
        )
    return {
        "claim": spec["claim"],
        "claim_metric": metric,
        "n": n,
        "correct": correct,
        "accuracy": figures["accuracy"],
        "accuracy_batch_mean": figures["accuracy_batch_mean"],
        "batch_size": size,
        "wilson95": interval["wilson95"],
        "recomputed": recomputed,
        "difference": difference,
        "tolerance_pp": rounding_pp,
        "verdict": PASS if abs(difference) <= rounding_pp + _EPS else FAIL,
        "explanation": how,
        "per_class": {str(k): v for k, v in figures["per_class"].items()},
    }


def paired_comparison(first: pd.DataFrame, second: pd.DataFrame) -> dict:
    """Image-by-image comparison of two prediction sets listed in the same image order.

    Pairs only where both have the same length and the same label in every row (else the rows
    are not the same images, and the result says why). Discordant counts are McNemar's: images
    one run gets right and the other wrong.

    Args:
        first, second: frames with `label`, `prediction` and `correct`, one row per image.

    Returns:
        ``status`` "paired" with agreement (% same prediction), the 2x2 counts, the exact
        McNemar p-value, the difference first - second (pp) and its paired Newcombe 95 %
        interval; or ``status`` "not paired" and a ``reason``.
    """
    if len(first) != len(second):
        return {"status": "not paired", "reason": f"{len(first)} vs {len(second)} rows"}
    labels_differ = int((first["label"].to_numpy() != second["label"].to_numpy()).sum())
    if labels_differ:
        return {
            "status": "not paired",
            "reason": f"labels differ in {labels_differ:,} of {len(first):,} rows: the rows are "
            "not the same images in the same order",
        }
    counts = stats.paired_counts(
        first["correct"].to_numpy(dtype=bool), second["correct"].to_numpy(dtype=bool)
    )
    low, high = stats.newcombe_paired_difference(counts)
    n = counts["n"]
    same = (first["prediction"].to_numpy() == second["prediction"].to_numpy()).mean()
    return {
        "status": "paired",
        "n": n,
        "agreement": 100.0 * float(same),
        "counts": counts,
        "mcnemar_p": stats.mcnemar_exact_p(counts["first_only"], counts["second_only"]),
        "difference": 100.0 * (counts["first_only"] - counts["second_only"]) / n,
        "ci95": [low, high],
    }


def compare_published(cfg: dict, runs: Mapping[str, dict], frames: Mapping) -> dict | None:
    """The last published run minus the first: the claimed gain, recomputed, with its interval.

    The difference of the claims is checked against the difference of the recomputed figures
    (each rounded, so within twice the rounding), and the gain must hold: the 95 % interval of
    the exact difference lies on the claimed side of zero. The interval pairs the two files
    image by image only where both list the images in the same order; the published files do
    not (different sources, no image ids), so Newcombe's interval for independent proportions
    applies.
    """
    names = list(runs)
    if len(names) < 2:
        return None
    first, last = names[0], names[-1]
    specs = cfg["published"]["runs"]
    rounding = cfg["verification"]["claim_rounding_pp"]
    claimed = specs[last]["claim"] - specs[first]["claim"]
    recomputed = runs[last]["recomputed"] - runs[first]["recomputed"]
    exact = runs[last]["accuracy"] - runs[first]["accuracy"]
    sources = (specs[first]["source"], specs[last]["source"])
    pairing = (
        paired_comparison(frames[last], frames[first])
        if sources[0] == sources[1]
        else {
            "status": "not paired",
            "reason": f"the {first} rows follow {SOURCE_ORDER[sources[0]]}, the {last} rows "
            f"{SOURCE_ORDER[sources[1]]}, and no image ids were saved: row i is not the same "
            "image in both files. Per-class accuracy compares (50 images per class in both); "
            "per-image pairing does not",
        }
    )
    if pairing["status"] == "paired":
        low, high = pairing["ci95"]
        method = "Newcombe's paired score interval (same images, same order)"
    else:
        low, high = stats.newcombe_difference(runs[last], runs[first])
        method = "Newcombe's hybrid score interval for independent proportions"
    holds = low > 0 if claimed > 0 else high < 0
    agrees = abs(recomputed - claimed) <= 2 * rounding + _EPS
    before, after = runs[first]["per_class"], runs[last]["per_class"]
    shared = before.keys() & after.keys()
    return {
        "first": first,
        "last": last,
        "claimed": claimed,
        "recomputed": recomputed,
        "exact": exact,
        "ci95": [low, high],
        "method": method,
        "pairing": pairing,
        "tolerance_pp": 2 * rounding,
        "agrees": agrees,
        "holds": holds,
        "verdict": PASS if agrees and holds else FAIL,
        "classes": {
            "better": sum(after[c] > before[c] for c in shared),
            "worse": sum(after[c] < before[c] for c in shared),
            "tied": sum(after[c] == before[c] for c in shared),
        },
    }


def verify_published(cfg: dict) -> dict:
    """Check every published claim against the published prediction CSVs.

    The CSVs are fetched (downloaded once, sha256-verified; a file that differs is refused) only
    when `published.use_predictions` is true; otherwise nothing is checked and the result says
    so.

    Returns:
        ``status`` ("checked" or "not checked"), ``reason`` when not checked, ``runs`` (run ->
        :func:`check_published_run` plus its file and sha256) and ``comparison``
        (:func:`compare_published`).

    Raises:
        published.PublishedError: a file cannot be fetched or does not match its sha256.
    """
    if not cfg["published"]["use_predictions"]:
        return {"status": NOT_CHECKED, "reason": NOT_FETCHED, "runs": {}, "comparison": None}
    rounding = cfg["verification"]["claim_rounding_pp"]
    runs, frames = {}, {}
    fetched = published.fetch_all(cfg)
    for name, spec in cfg["published"]["runs"].items():
        path = fetched[name]
        frames[name] = published.read_predictions(path)
        runs[name] = {
            "file": str(path),
            "sha256": spec["predictions"]["sha256"],
            "url": spec["predictions"]["url"],
            "source": spec["source"],
            **check_published_run(spec, frames[name], rounding),
        }
    return {"status": CHECKED, "runs": runs, "comparison": compare_published(cfg, runs, frames)}


def needs_published_message(cfg: dict) -> str:
    """Why `verify --published-only` cannot run without the published CSVs, and how to fix it."""
    places = "; ".join(
        f"{published.local_path(cfg, name)} (sha256 {spec['predictions']['sha256']}, from "
        f"{spec['predictions']['url']})"
        for name, spec in cfg["published"]["runs"].items()
    )
    return (
        "checking the published claims needs the published prediction CSVs, but "
        "published.use_predictions is false. Set it true (--set published.use_predictions=true;"
        " for snakemake, in a --configfile): it downloads them (sha256-verified), or uses "
        f"copies placed by hand at the expected paths: {places}"
    )


# --------------------------------------------------------------------------- reruns


def _rerun_source(cfg: dict) -> str:
    """The data source the reruns read: from the data summary when it exists, else config."""
    summary = paths.data_summary(cfg)
    if summary.is_file():
        return json.loads(summary.read_text(encoding="utf-8")).get("source", "")
    return cfg["data"]["source"]


def _in_validation_order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("index", kind="stable").reset_index(drop=True)


def check_rerun(name: str, summary: Mapping, spec: Mapping | None, band: Mapping | None) -> dict:
    """One rerun against its band: the published claim (expected null) or an expectation.

    Against a claim the rerun's figure is computed the way the claim was (exact or batch mean);
    against an explicit `expected` it is the exact accuracy.

    Returns:
        The rerun's accuracy (%) with its Wilson interval, the target, tolerance, verdict and
        what the target is.
    """
    result = {
        "accuracy": summary["accuracy"],
        "accuracy_batch_mean": summary.get("accuracy_batch_mean"),
        "wilson95": summary["wilson95"],
        "n": summary["n"],
        "correct": summary["correct"],
    }
    if band is None:
        return result | {"verdict": NOT_CHECKED, "reason": f"no verification.reruns.{name}"}
    if band["expected"] is not None:
        metric, expected = "exact", band["expected"]
        basis = f"verification.reruns.{name}.expected"
    elif spec is not None:
        metric, expected, basis = spec["claim_metric"], spec["claim"], "published claim"
    else:
        return result | {"verdict": NOT_CHECKED, "reason": "no published claim, no expected value"}
    value = summary[METRIC_KEYS[metric]]
    tolerance = band["tolerance_pp"]
    return result | {
        "metric": metric,
        "value": value,
        "expected": expected,
        "basis": basis,
        "tolerance_pp": tolerance,
        "difference": value - expected,
        "verdict": PASS if abs(value - expected) <= tolerance + _EPS else FAIL,
    }


def _check_rerun_names(cfg: dict) -> None:
    unknown = [name for name in cfg["verification"]["reruns"] if name not in cfg["experiments"]]
    if unknown:
        raise ConfigError(
            f"verification.reruns.{unknown[0]} names no experiment "
            f"(experiments: {', '.join(cfg['experiments'])})"
        )


def verify_rerun(cfg: dict, published_result: Mapping) -> dict:
    """Compare every rerun with its band, and pair it with the published run where possible.

    Args:
        cfg: the configuration the reruns were made with.
        published_result: :func:`verify_published`'s result (pairing needs its files).

    Returns:
        ``runs``: experiment -> :func:`check_rerun` plus ``pairing`` (with the published
        predictions); ``difference``: last minus first experiment, paired image by image (both
        reruns score the same store in the same order).

    Raises:
        ResultFileError: a summary.json or predictions.csv is missing (the message names it).
    """
    _check_rerun_names(cfg)
    names = paths.experiments(cfg)
    source = _rerun_source(cfg)
    runs, frames = {}, {}
    for name in names:
        run = paths.run_dir(cfg, name)
        summary = read_summary(run / "summary.json")
        frames[name] = _in_validation_order(read_run_predictions(run / "predictions.csv"))
        spec = cfg["published"]["runs"].get(name)
        runs[name] = check_rerun(name, summary, spec, cfg["verification"]["reruns"].get(name))
        runs[name]["pairing"] = _pair_with_published(cfg, name, spec, source, frames[name])
        runs[name]["source"] = source
    difference = None
    if len(names) >= 2:
        first, last = names[0], names[-1]
        difference = {
            "first": first,
            "last": last,
            "unpaired_ci95": list(stats.newcombe_difference(runs[last], runs[first])),
            **paired_comparison(frames[last], frames[first]),
        }
    return {"status": CHECKED, "source": source, "runs": runs, "difference": difference}


def _pair_with_published(
    cfg: dict, name: str, spec: Mapping | None, source: str, frame: pd.DataFrame
) -> dict:
    if spec is None:
        return {"status": "not paired", "reason": "no published run of this name"}
    if not cfg["published"]["use_predictions"]:
        return {"status": NOT_CHECKED, "reason": NOT_FETCHED}
    if source != spec["source"]:
        return {
            "status": "not paired",
            "reason": f"the rerun read the {source!r} source; the published rows follow "
            f"{SOURCE_ORDER[spec['source']]} (rerun with data.source: {spec['source']} to pair)",
        }
    theirs = published.read_predictions(published.fetch(cfg, name))
    return paired_comparison(frame, theirs)


# --------------------------------------------------------------------------- checksums


def checksummed_files(cfg: dict) -> list[Path]:
    """Every file that goes into the paper, in a fixed order.

    Per experiment: predictions, metrics, summary, provenance and the rendered notebook; the
    data summary and (when used) the published summary; every figure (PNG and PDF) and table
    (Markdown and LaTeX); the paper's generated inputs; and the PDF where latexmk builds it.
    """
    names = paths.experiments(cfg)
    files = [paths.data_summary(cfg)]
    for name in names:
        run = paths.run_dir(cfg, name)
        files += [
            run / f
            for f in (
                "predictions.csv",
                "metrics.jsonl",
                "summary.json",
                "provenance.json",
                "experiment.html",
            )
        ]
    if cfg["published"]["use_predictions"]:
        files.append(paths.published_summary(cfg))
    files.append(paths.fidelity_summary(cfg))
    figures = paths.figures_dir(cfg)
    stems = [figures / "learning_curves", figures / "per_class_accuracy"]
    stems += [figures / n / kind for n in names for kind in ("correct_wrong", "class_grid")]
    files += [stem.with_suffix(suffix) for stem in stems for suffix in (".png", ".pdf")]
    tables = ["results", "recipe", "discrepancies", "verification", "input_fidelity"]
    tables += [f"classes_{n}" for n in names]
    for table in tables:
        files += [paths.tables_dir(cfg) / f"{table}{suffix}" for suffix in (".md", ".tex")]
    generated = paths.paper_generated(cfg)
    files += [generated / "numbers.tex", *(generated / name for name in copied_inputs(cfg))]
    if shutil.which("latexmk"):  # as the workflow's all_outputs: the PDF only where it is built
        files.append(paths.paper_pdf(cfg))
    return files


def write_checksums(cfg: dict, files: Iterable[Path]) -> Path:
    """Write `<output_dir>/SHA256SUMS` (`sha256sum -c` format) over `files`, atomically.

    Raises:
        VerificationError: a file is missing (a checksum of nothing would certify nothing).
    """
    files = list(files)
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise VerificationError(
            f"cannot write checksums: {len(missing)} file(s) missing: {', '.join(missing)}"
        )
    lines = [f"{published.sha256(Path(f))}  {f}" for f in files]
    return atomic.write_text(checksums_path(cfg), "\n".join(lines) + "\n")


def read_checksums(path: Path) -> list[tuple[str, str]]:
    """(sha256, file) pairs of a SHA256SUMS file."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise VerificationError(f"{path}, line {number}: not `<sha256>  <file>`: {line!r}")
        pairs.append((digest, name))
    return pairs


def check_checksums(cfg: dict) -> list[str]:
    """Recompute `<output_dir>/SHA256SUMS`; one line per file that changed or went missing.

    Raises:
        VerificationError: there is no SHA256SUMS (the message says how it is made).
    """
    path = checksums_path(cfg)
    if not path.is_file():
        raise VerificationError(f"{path} is missing; it is made by {CHECKSUMS_MADE_BY}")
    problems = []
    for expected, name in read_checksums(path):
        file = Path(name)
        if not file.is_file():
            problems.append(f"{name}: missing")
            continue
        actual = published.sha256(file)
        if actual != expected:
            problems.append(
                f"{name}: changed (sha256 {actual[:12]}..., recorded {expected[:12]}...)"
            )
    return problems


def checksum_report(cfg: dict) -> dict:
    """:func:`check_checksums` as a result dict (file count, problems, verdict)."""
    problems = check_checksums(cfg)
    count = len(read_checksums(checksums_path(cfg)))
    return {
        "status": CHECKED,
        "file": str(checksums_path(cfg)),
        "files": count,
        "problems": problems,
        "verdict": FAIL if problems else PASS,
    }


# --------------------------------------------------------------------------- rows


def _pct(value: float | None, digits: int = 2) -> str:
    return NA if value is None else f"{value:.{digits}f}"


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def caveats(cfg: dict, runs: Sequence[str]) -> str:
    """Topics of the README-vs-notebook discrepancies that affect any of `runs`."""
    topics = [d["topic"] for d in cfg["discrepancies"] if set(d["affects"]) & set(runs)]
    return "; ".join(topics) if topics else "none"


def _published_cells(cfg: dict, name: str, found: Mapping | None, reason: str) -> dict:
    spec = cfg["published"]["runs"][name]
    claim = f"{name}: the claim is the {METRIC_WORDS[spec['claim_metric']]} of its predictions"
    if found is None:
        return {
            "Claim": claim,
            "Published": _pct(spec["claim"]),
            "Recomputed": f"not checked ({reason})",
            "Rerun": NA,
            "Tolerance": NA,
            "Verdict": NOT_CHECKED,
        }
    low, high = found["wilson95"]
    exact = f"{found['correct']:,} / {found['n']:,} = {found['accuracy']:.2f}"
    recomputed = (
        f"{exact} exact"
        if found["claim_metric"] == "exact"
        else f"{found['accuracy_batch_mean']:.4f} batch mean (exact: {exact})"
    )
    return {
        "Claim": claim,
        "Published": _pct(spec["claim"]),
        "Recomputed": f"{recomputed}; {_interval_text(low, high)}",
        "Rerun": NA,
        "Tolerance": f"+/- {found['tolerance_pp']:g} (rounding)",
        "Verdict": found["verdict"],
    }


def _comparison_cells(cfg: dict, comparison: Mapping | None, reason: str) -> dict | None:
    runs = list(cfg["published"]["runs"])
    if len(runs) < 2:
        return None
    first, last = runs[0], runs[-1]
    specs = cfg["published"]["runs"]
    claimed = specs[last]["claim"] - specs[first]["claim"]
    cells = {
        "Claim": f"{last} - {first}: the published gain holds",
        "Published": _signed(claimed),
    }
    if comparison is None:
        return cells | {
            "Recomputed": f"not checked ({reason})",
            "Rerun": NA,
            "Tolerance": NA,
            "Verdict": NOT_CHECKED,
        }
    low, high = comparison["ci95"]
    paired = "paired" if comparison["pairing"]["status"] == "paired" else "unpaired"
    return cells | {
        "Recomputed": f"{_signed(comparison['recomputed'])} (exact {_signed(comparison['exact'])};"
        f" {_interval_text(low, high, signed=True)}, {paired})",
        "Rerun": NA,
        "Tolerance": f"+/- {comparison['tolerance_pp']:g} and 95 % CI excludes 0",
        "Verdict": comparison["verdict"],
    }


def _rerun_cells(cfg: dict, name: str, rerun: Mapping, found: Mapping | None) -> dict:
    low, high = rerun["wilson95"]
    spec = cfg["published"]["runs"].get(name)
    cells = {
        "Claim": f"{name}: the rerun lies in its band",
        "Published": NA if spec is None else _pct(spec["claim"]),
        "Recomputed": NA if found is None else _pct(found["recomputed"]),
    }
    if rerun["verdict"] == NOT_CHECKED:
        return cells | {
            "Rerun": f"{rerun['accuracy']:.2f}; {_interval_text(low, high)}",
            "Tolerance": NA,
            "Verdict": NOT_CHECKED,
        }
    words = "batch mean" if rerun["metric"] == "batch_mean" else "exact"
    target = "claim" if rerun["basis"] == "published claim" else "expected"
    return cells | {
        "Rerun": f"{rerun['value']:.2f} {words} ({rerun['correct']:,} / {rerun['n']:,}); "
        f"{_interval_text(low, high)}",
        "Tolerance": f"{rerun['expected']:.2f} +/- {rerun['tolerance_pp']:g} ({target})",
        "Verdict": rerun["verdict"],
    }


def _paired_cells(name: str, pairing: Mapping) -> dict:
    cells = {
        "Claim": f"{name}: rerun vs published, image by image",
        "Published": NA,
        "Recomputed": NA,
        "Tolerance": NA,
    }
    if pairing["status"] != "paired":
        return cells | {"Rerun": f"{pairing['status']}: {pairing['reason']}", "Verdict": INFO}
    counts = pairing["counts"]
    low, high = pairing["ci95"]
    return cells | {
        "Rerun": f"same prediction on {pairing['agreement']:.2f} %; rerun-only correct "
        f"{counts['first_only']:,}, published-only {counts['second_only']:,} (McNemar p = "
        f"{pairing['mcnemar_p']:.3g}); difference {_signed(pairing['difference'])}, "
        f"{_interval_text(low, high, signed=True)}",
        "Verdict": INFO,
    }


def _difference_cells(difference: Mapping) -> dict:
    first, last = difference["first"], difference["last"]
    if difference["status"] == "paired":
        low, high = difference["ci95"]
        value = (
            f"{_signed(difference['difference'])}; {_interval_text(low, high, signed=True)}"
            f" (paired; McNemar p = {difference['mcnemar_p']:.3g})"
        )
    else:
        low, high = difference["unpaired_ci95"]
        value = f"{_interval_text(low, high, signed=True)} (unpaired: {difference['reason']})"
    return {
        "Claim": f"{last} - {first}: the rerun's gain (one seed each; not judged)",
        "Published": NA,
        "Recomputed": NA,
        "Rerun": value,
        "Tolerance": NA,
        "Verdict": INFO,
    }


def verification_rows(
    cfg: dict,
    published_result: Mapping,
    rerun_result: Mapping | None = None,
    checksum_result: Mapping | None = None,
) -> list[dict]:
    """One row per claim: published, recomputed and rerun value, tolerance, verdict, caveats.

    Args:
        cfg: the configuration (claims, bands, discrepancies).
        published_result: :func:`verify_published`'s result.
        rerun_result: :func:`verify_rerun`'s result, or None (published only).
        checksum_result: :func:`checksum_report`'s result, or None (not checked).

    Returns:
        Rows of strings with the keys Claim, Published, Recomputed, Rerun, Tolerance, Verdict,
        Affected by (the config's discrepancies that bear on the row's runs).
    """
    reason = published_result.get("reason", "")
    found = published_result.get("runs", {})
    rows = []
    for name in cfg["published"]["runs"]:
        cells = _published_cells(cfg, name, found.get(name), reason)
        rows.append(cells | {"Affected by": caveats(cfg, [name])})
    comparison = _comparison_cells(cfg, published_result.get("comparison"), reason)
    if comparison is not None:
        rows.append(comparison | {"Affected by": caveats(cfg, list(cfg["published"]["runs"]))})
    if rerun_result is not None:
        for name, rerun in rerun_result["runs"].items():
            cells = _rerun_cells(cfg, name, rerun, found.get(name))
            rows.append(cells | {"Affected by": caveats(cfg, [name])})
            if rerun["pairing"]["status"] in ("paired", "not paired") and name in found:
                rows.append(_paired_cells(name, rerun["pairing"]) | {"Affected by": NA})
        if rerun_result.get("difference"):
            names = [rerun_result["difference"]["first"], rerun_result["difference"]["last"]]
            cells = _difference_cells(rerun_result["difference"])
            rows.append(cells | {"Affected by": caveats(cfg, names)})
    if checksum_result is not None:
        problems = checksum_result["problems"]
        rows.append(
            {
                "Claim": "SHA256SUMS: the paper's files are unchanged",
                "Published": NA,
                "Recomputed": f"{checksum_result['files'] - len(problems)} of "
                f"{checksum_result['files']} files match",
                "Rerun": NA,
                "Tolerance": "exact",
                "Verdict": checksum_result["verdict"],
                "Affected by": "; ".join(problems) if problems else "none",
            }
        )
    return rows


COLUMNS = ("Claim", "Published", "Recomputed", "Rerun", "Tolerance", "Verdict", "Affected by")
# Paragraph columns so the long cells wrap in the paper (0.77 of the line; the two narrow columns
# and the padding take the rest, and the paper shrinks the table to the line if need be).
TABLE_ALIGN = (
    r"p{0.15\linewidth}rp{0.19\linewidth}p{0.17\linewidth}p{0.1\linewidth}l"
    r"p{0.16\linewidth}"
)


def rows_frame(rows: Sequence[Mapping]) -> pd.DataFrame:
    """The rows as a table of strings in :data:`COLUMNS` order."""
    return pd.DataFrame([[row[c] for c in COLUMNS] for row in rows], columns=list(COLUMNS))


# --------------------------------------------------------------------------- the command


def band_explanation(rerun_result: Mapping) -> str | None:
    """How much of each rerun band is binomial sampling error, computed from the rerun's n.

    The 95 % half-width of one accuracy p on n images is 1.96 * sqrt(p (1 - p) / n); against a
    published claim both the claim and the rerun carry one (sqrt(2) times as much together);
    the rest of the band allows for seed-to-seed spread of training.
    """
    from .evaluation import Z95  # evaluation imports torch; see published.recompute

    parts = []
    for name, run in rerun_result["runs"].items():
        if run["verdict"] == NOT_CHECKED:
            continue
        p, n, band = run["expected"] / 100, run["n"], run["tolerance_pp"]
        half = 100 * Z95 * math.sqrt(p * (1 - p) / n)
        if run["basis"] == "published claim":
            both = math.sqrt(2) * half
            sampling = f"{half:.2f} pp for the claim and for the rerun, {both:.2f} pp together"
        else:
            both, sampling = half, f"{half:.2f} pp"
        parts.append(
            f"{name} band +/- {band:g} pp: binomial 95 % half-width at {100 * p:.1f} % on {n:,} "
            "images "
            f"{sampling}; {max(0.0, band - both):.2f} pp left for seed-to-seed spread"
        )
    return "; ".join(parts) if parts else None


def assemble(
    cfg: dict,
    published_result: Mapping,
    rerun_result: Mapping | None,
    checksum_result: Mapping | None,
) -> dict:
    """Everything `verify` found, with the rows and the overall verdict (verification.json)."""
    rows = verification_rows(cfg, published_result, rerun_result, checksum_result)
    failed = [row["Claim"] for row in rows if row["Verdict"] == FAIL]
    bands = None if rerun_result is None else band_explanation(rerun_result)
    notes = [bands] if bands else []
    for name, run in published_result.get("runs", {}).items():
        notes.append(f"{name}: {run['explanation']}")
    comparison = published_result.get("comparison")
    if comparison:
        pairing = comparison["pairing"]
        if pairing["status"] != "paired":
            notes.append(f"published runs not paired: {pairing['reason']}")
        classes = comparison["classes"]
        notes.append(
            f"per class, published {comparison['last']} vs {comparison['first']}: higher on "
            f"{classes['better']}, lower on {classes['worse']}, tied on {classes['tied']}"
        )
    return {
        "verdict": FAIL if failed else PASS,
        "failed": failed,
        "published": dict(published_result),
        "reruns": None if rerun_result is None else dict(rerun_result),
        "checksums": dict(checksum_result)
        if checksum_result is not None
        else {"status": NOT_CHECKED},
        "discrepancies": cfg["discrepancies"],
        "notes": notes,
        "rows": rows,
    }


def render(result: Mapping) -> str:
    """The one-screen report: the table, the notes, the problems and the verdict."""
    from .tables import markdown_table

    lines = [markdown_table(rows_frame(result["rows"])).rstrip(), ""]
    lines += [f"- {note}" for note in result["notes"]]
    for problem in result["checksums"].get("problems", []):
        lines.append(f"- checksum problem: {problem}")
    if result["verdict"] == PASS:
        lines.append("\nverification passed")
    else:
        lines.append(f"\nverification FAILED: {'; '.join(result['failed'])}")
        if result["checksums"].get("problems"):
            lines.append(
                "  (a file changed since SHA256SUMS was written: rebuild it with the workflow, "
                "or accept the change with `snakemake --forcerun write_checksums`)"
            )
    return "\n".join(lines)


def run_verify(
    cfg: dict,
    *,
    published_only: bool = False,
    check: bool = False,
    out: Path | None = None,
    echo: Callable[[str], object] = print,
) -> int:
    """The `verify` command: check, write the JSON, print the table; return the exit status.

    Args:
        cfg: the configuration the results were made with.
        published_only: check the published files alone (needs them; trains nothing).
        check: also recompute SHA256SUMS.
        out: where to write the JSON (default :func:`result_path`).
        echo: where the one-screen report goes.

    Returns:
        0 when every checked claim holds, 1 when any fails.

    Raises:
        VerificationError: published-only without the published predictions, or no SHA256SUMS.
        ResultFileError: a rerun's result file is missing.
        published.PublishedError: a published file cannot be fetched or fails its sha256.
    """
    published_result = verify_published(cfg)
    if published_only and published_result["status"] != CHECKED:
        raise VerificationError(needs_published_message(cfg))
    rerun_result = None if published_only else verify_rerun(cfg, published_result)
    checksum_result = checksum_report(cfg) if check else None
    result = assemble(cfg, published_result, rerun_result, checksum_result)
    atomic.write_json(out or result_path(cfg, published_only=published_only), result)
    echo(render(result))
    return 0 if result["verdict"] == PASS else 1


def make_verification_table(cfg: dict) -> list[Path]:
    """tables/verification.{md,tex} for the paper: published claims and reruns, no checksums.

    Written whatever the verdicts (the table records them); `verify` fails on them later.
    """
    published_result = verify_published(cfg)
    rerun_result = verify_rerun(cfg, published_result)
    rows = verification_rows(cfg, published_result, rerun_result)
    return write_table(rows_frame(rows), table_stem(cfg), align=TABLE_ALIGN)
