"""Verify the paper's numbers: the published claims, a rerun against them, and checksums.

Three checks, each a small function returning a plain dict:

- :func:`verify_published` recomputes the published claims from the published prediction CSVs
  (sha256-verified by :mod:`published`): exact and batch-mean accuracy, per-class accuracy,
  Wilson 95 % intervals, and the improved-minus-baseline difference with Newcombe's interval for
  *independent* proportions, because the two files list the validation images in different
  orders (Hugging Face `valid` vs ImageFolder) without image ids. Each claim is checked against
  the figure its notebook actually computed (`published.runs.<run>.claim_metric`).
- :func:`verify_rerun` compares each rerun (its summary.json) with its band from
  `verification.reruns` (the published claim, or an explicit expectation such as the smoke
  config's), and pairs it image by image with the published predictions where both list the
  images in the same order (same data source, same labels row by row).
- :func:`write_checksums` / :func:`check_checksums`: a SHA256SUMS file (`sha256sum -c` format)
  over the files the workflow's rule hands it, recomputed by the `verify` rule.

What the checks compare with is a :class:`Claims` (the config values they read); what they read
is an :class:`Inputs` (the paths the workflow's rules name). :func:`check` runs whichever checks
its inputs allow and records the inputs in the verdict, so that :func:`check_record` (the
`verify --check` command, for results received from elsewhere) reads the same files again
without a layout of its own. :func:`verification_rows` turns the results into one row per claim
(published value, recomputed value, rerun value, tolerance, verdict, the README-vs-notebook
discrepancies that affect it). The paper's table (:func:`make_verification_table`) holds the
published and rerun rows only: the paper is itself checksummed, so the checksum row cannot be
part of it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pandas as pd

from convnext_tinyimagenet import atomic, stats
from convnext_tinyimagenet.config import ConfigError
from convnext_tinyimagenet.errors import ArtifactError
from convnext_tinyimagenet.numbers import NA, pct, signed
from convnext_tinyimagenet.report.tables import markdown_table, save_table
from convnext_tinyimagenet.run_folder import read_predictions, read_summary, require
from convnext_tinyimagenet.verify import published

PASS, FAIL, NOT_CHECKED, INFO = "pass", "FAIL", "not checked", "info"
CHECKED = "checked"
NOT_FETCHED = "published predictions not fetched; set published.use_predictions"
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
CHECKSUMS_MADE_BY = "the workflow's rule write_checksums (`snakemake write_checksums`)"
DATA_MADE_BY = "the workflow's rule prepare_data (`snakemake prepare_data`)"


class VerificationError(ArtifactError):
    """Verification cannot run as asked (a missing file, a missing input); the message says why."""


class VerificationFailedError(ArtifactError):
    """The checks ran and a claim does not hold, or a checksummed file changed."""


# --------------------------------------------------------------------------- what is checked


@dataclass(frozen=True)
class Claims:
    """The config values the checks read.

    Attributes:
        runs: `published.runs`, each with its claim, claim_metric, source and predictions (url,
            sha256), in config order: the published gain is the last run minus the first.
        rounding_pp: `verification.claim_rounding_pp`, the claims' rounding.
        bands: `verification.reruns`, experiment -> expected and tolerance_pp.
        discrepancies: the README-vs-notebook discrepancies, named beside what they affect.
    """

    runs: Mapping[str, Mapping]
    rounding_pp: float
    bands: Mapping[str, Mapping] = field(default_factory=dict)
    discrepancies: Sequence[Mapping] = ()

    @classmethod
    def from_config(cls, cfg: Mapping) -> Claims:
        """The claims of a whole configuration (the by-hand `verify --check`)."""
        return cls(
            runs=cfg["published"]["runs"],
            rounding_pp=cfg["verification"]["claim_rounding_pp"],
            bands=cfg["verification"]["reruns"],
            discrepancies=cfg["discrepancies"],
        )


@dataclass(frozen=True)
class Inputs:
    """The files the checks read, as the workflow's rule named them.

    The verdict JSON records them (its `inputs`), so a later check reads the same files: paths
    relative to the folder the workflow ran in, as in SHA256SUMS.

    Attributes:
        published: published run -> its prediction CSV; empty when config does not read them.
        summaries: experiment -> its summary.json, in config order (the rerun gain is the last
            minus the first); empty when no rerun is checked.
        predictions: experiment -> its predictions.csv, for the same experiments.
        data: the data summary: which source, hence which image order, the reruns read.
        checksums: the SHA256SUMS to recompute, or None.
    """

    published: Mapping[str, str] = field(default_factory=dict)
    summaries: Mapping[str, str] = field(default_factory=dict)
    predictions: Mapping[str, str] = field(default_factory=dict)
    data: str | None = None
    checksums: str | None = None

    def record(self) -> dict:
        """The inputs as JSON values (paths as strings)."""
        return {
            "published": {name: str(path) for name, path in self.published.items()},
            "summaries": {name: str(path) for name, path in self.summaries.items()},
            "predictions": {name: str(path) for name, path in self.predictions.items()},
            "data": None if self.data is None else str(self.data),
            "checksums": None if self.checksums is None else str(self.checksums),
        }

    @classmethod
    def from_record(cls, record: Mapping) -> Inputs:
        """The inputs a verdict JSON recorded (:meth:`record`)."""
        return cls(
            published=record.get("published") or {},
            summaries=record.get("summaries") or {},
            predictions=record.get("predictions") or {},
            data=record.get("data"),
            checksums=record.get("checksums"),
        )


def named(names: Iterable[str], files: Sequence[str]) -> dict[str, str]:
    """Name each of a rule's files: `files` lists one per name, in the order of `names`.

    A rule lists its per-experiment inputs (`per_experiment(...)`) and the published CSVs
    (`PUBLISHED_FILES`) in config order; a list with none at all (the published CSVs when config
    does not read them) names nothing.

    Raises:
        VerificationError: the counts differ (the rule and the names disagree).
    """
    names, files = list(names), list(files)
    if not files:
        return {}
    if len(files) != len(names):
        raise VerificationError(
            f"{len(files)} files for {len(names)} names ({', '.join(names)}): {', '.join(files)}"
        )
    return dict(zip(names, files, strict=True))


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


def _published_pairing(first: str, last: str, runs: Mapping, frames: Mapping) -> dict:
    """Pair two published runs' rows where both files follow the same source's image order."""
    sources = (runs[first]["source"], runs[last]["source"])
    if sources[0] == sources[1]:
        return paired_comparison(frames[last], frames[first])
    return {
        "status": "not paired",
        "reason": f"the {first} rows follow {SOURCE_ORDER[sources[0]]}, the {last} rows "
        f"{SOURCE_ORDER[sources[1]]}, and no image ids were saved: row i is not the same "
        "image in both files. Per-class accuracy compares (50 images per class in both); "
        "per-image pairing does not",
    }


def compare_published(claims: Claims, runs: Mapping[str, dict], frames: Mapping) -> dict | None:
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
    specs, rounding = claims.runs, claims.rounding_pp
    claimed = specs[last]["claim"] - specs[first]["claim"]
    recomputed = runs[last]["recomputed"] - runs[first]["recomputed"]
    exact = runs[last]["accuracy"] - runs[first]["accuracy"]
    pairing = _published_pairing(first, last, runs, frames)
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


def verify_published(claims: Claims, files: Mapping[str, str]) -> dict:
    """Check every published claim against the published prediction CSVs.

    Args:
        claims: the claims and their pinned files.
        files: published run -> its CSV, each verified against its sha256 (a file that differs
            is refused) and downloaded if absent; empty: nothing is checked, the result says so.

    Returns:
        ``status`` ("checked" or "not checked"), ``reason`` when not checked, ``runs`` (run ->
        :func:`check_published_run` plus its file and sha256) and ``comparison``
        (:func:`compare_published`).

    Raises:
        published.PublishedError: a file cannot be fetched or does not match its sha256.
    """
    if not files:
        return {"status": NOT_CHECKED, "reason": NOT_FETCHED, "runs": {}, "comparison": None}
    pins = {name: claims.runs[name]["predictions"] for name in files}
    fetched = published.fetch_all(files, pins)
    runs, frames = {}, {}
    for name, path in fetched.items():
        spec = claims.runs[name]
        frames[name] = published.read_predictions(path)
        runs[name] = {
            "file": str(path),
            "sha256": spec["predictions"]["sha256"],
            "url": spec["predictions"]["url"],
            "source": spec["source"],
            **check_published_run(spec, frames[name], claims.rounding_pp),
        }
    return {"status": CHECKED, "runs": runs, "comparison": compare_published(claims, runs, frames)}


def needs_published_message(runs: Mapping[str, Mapping]) -> str:
    """Why checking the published claims alone cannot run without their CSVs, and the fix."""
    pins = "; ".join(
        f"{name} from {spec['predictions']['url']} (sha256 {spec['predictions']['sha256']})"
        for name, spec in runs.items()
    )
    return (
        "checking the published claims needs the published prediction CSVs, but none were "
        "given: the workflow reads them only with published.use_predictions true. Set it (for "
        "snakemake, in a --configfile); rule fetch_published then downloads each, sha256-"
        f"verified, or names where to place it by hand: {pins}"
    )


# --------------------------------------------------------------------------- reruns


def _rerun_source(data: str | None) -> str:
    """The data source the reruns read, from the data summary."""
    if data is None:
        raise VerificationError("checking the reruns needs the data summary, and none was given")
    summary = require(Path(data), made_by=DATA_MADE_BY)
    return json.loads(summary.read_text(encoding="utf-8")).get("source", "")


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


def _check_rerun_names(bands: Mapping, names: Sequence[str], predictions: Mapping) -> None:
    unknown = [name for name in bands if name not in names]
    if unknown:
        raise ConfigError(
            f"verification.reruns.{unknown[0]} names no experiment "
            f"(experiments: {', '.join(names)})"
        )
    if set(predictions) != set(names):
        raise VerificationError(
            f"reruns with a summary ({', '.join(names)}) and with predictions "
            f"({', '.join(predictions)}) differ"
        )


def verify_rerun(claims: Claims, inputs: Inputs, published_result: Mapping) -> dict:
    """Compare every rerun with its band, and pair it with the published run where possible.

    Args:
        claims: the published claims and the reruns' bands.
        inputs: each rerun's summary.json and predictions.csv, and the data summary.
        published_result: :func:`verify_published`'s result (pairing needs its files).

    Returns:
        ``runs``: experiment -> :func:`check_rerun` plus ``pairing`` (with the published
        predictions); ``difference``: last minus first experiment, paired image by image (both
        reruns score the same store in the same order).

    Raises:
        ResultFileError: a summary.json or predictions.csv is missing (the message names it).
    """
    names = list(inputs.summaries)
    _check_rerun_names(claims.bands, names, inputs.predictions)
    source = _rerun_source(inputs.data)
    runs, frames = {}, {}
    for name in names:
        summary = read_summary(inputs.summaries[name])
        frames[name] = _in_validation_order(read_predictions(inputs.predictions[name]))
        spec = claims.runs.get(name)
        runs[name] = check_rerun(name, summary, spec, claims.bands.get(name))
        runs[name]["pairing"] = _pair_with_published(
            name, spec, source, frames[name], published_result
        )
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
    name: str, spec: Mapping | None, source: str, frame: pd.DataFrame, published_result: Mapping
) -> dict:
    if spec is None:
        return {"status": "not paired", "reason": "no published run of this name"}
    if published_result["status"] != CHECKED:
        return {"status": NOT_CHECKED, "reason": NOT_FETCHED}
    if source != spec["source"]:
        return {
            "status": "not paired",
            "reason": f"the rerun read the {source!r} source; the published rows follow "
            f"{SOURCE_ORDER[spec['source']]} (rerun with data.source: {spec['source']} to pair)",
        }
    # the file verify_published read, after its sha256 was verified
    theirs = published.read_predictions(Path(published_result["runs"][name]["file"]))
    return paired_comparison(frame, theirs)


# --------------------------------------------------------------------------- checksums


def write_checksums(files: Iterable[str | Path], out: str | Path) -> Path:
    """Write `out` in the `sha256sum -c` format over `files`, atomically.

    Each line is `<sha256>  <path>`, the path as given (the workflow's rule hands paths relative
    to its folder, so `sha256sum -c` runs there).

    Raises:
        VerificationError: a file is missing (a checksum of nothing would certify nothing).
    """
    files = [str(f) for f in files]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise VerificationError(
            f"cannot write checksums: {len(missing)} file(s) missing: {', '.join(missing)}"
        )
    lines = [f"{published.sha256(Path(f))}  {f}" for f in files]
    return atomic.write_text(out, "\n".join(lines) + "\n")


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


def check_checksums(path: str | Path) -> list[str]:
    """Recompute the SHA256SUMS at `path`; one line per file that changed or went missing.

    Raises:
        VerificationError: there is no such file (the message says how it is made).
    """
    path = Path(path)
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


def checksum_report(path: str | Path) -> dict:
    """:func:`check_checksums` as a result dict (file count, problems, verdict)."""
    problems = check_checksums(path)
    count = len(read_checksums(Path(path)))
    return {
        "status": CHECKED,
        "file": str(path),
        "files": count,
        "problems": problems,
        "verdict": FAIL if problems else PASS,
    }


# --------------------------------------------------------------------------- rows


def caveats(discrepancies: Sequence[Mapping], runs: Sequence[str]) -> str:
    """Topics of the README-vs-notebook discrepancies that affect any of `runs`."""
    topics = [d["topic"] for d in discrepancies if set(d["affects"]) & set(runs)]
    return "; ".join(topics) if topics else "none"


def _published_cells(spec: Mapping, name: str, found: Mapping | None, reason: str) -> dict:
    claim = f"{name}: the claim is the {METRIC_WORDS[spec['claim_metric']]} of its predictions"
    if found is None:
        return {
            "Claim": claim,
            "Published": pct(spec["claim"]),
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
        "Published": pct(spec["claim"]),
        "Recomputed": f"{recomputed}; {_interval_text(low, high)}",
        "Rerun": NA,
        "Tolerance": f"+/- {found['tolerance_pp']:g} (rounding)",
        "Verdict": found["verdict"],
    }


def _comparison_cells(specs: Mapping, comparison: Mapping | None, reason: str) -> dict | None:
    runs = list(specs)
    if len(runs) < 2:
        return None
    first, last = runs[0], runs[-1]
    claimed = specs[last]["claim"] - specs[first]["claim"]
    cells = {
        "Claim": f"{last} - {first}: the published gain holds",
        "Published": signed(claimed),
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
        "Recomputed": f"{signed(comparison['recomputed'])} (exact {signed(comparison['exact'])};"
        f" {_interval_text(low, high, signed=True)}, {paired})",
        "Rerun": NA,
        "Tolerance": f"+/- {comparison['tolerance_pp']:g} and 95 % CI excludes 0",
        "Verdict": comparison["verdict"],
    }


def _rerun_cells(spec: Mapping | None, name: str, rerun: Mapping, found: Mapping | None) -> dict:
    low, high = rerun["wilson95"]
    cells = {
        "Claim": f"{name}: the rerun lies in its band",
        "Published": NA if spec is None else pct(spec["claim"]),
        "Recomputed": NA if found is None else pct(found["recomputed"]),
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
        f"{pairing['mcnemar_p']:.3g}); difference {signed(pairing['difference'])}, "
        f"{_interval_text(low, high, signed=True)}",
        "Verdict": INFO,
    }


def _difference_cells(difference: Mapping) -> dict:
    first, last = difference["first"], difference["last"]
    if difference["status"] == "paired":
        low, high = difference["ci95"]
        value = (
            f"{signed(difference['difference'])}; {_interval_text(low, high, signed=True)}"
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


def _rerun_rows(claims: Claims, rerun_result: Mapping, found: Mapping) -> list[dict]:
    rows = []
    for name, rerun in rerun_result["runs"].items():
        cells = _rerun_cells(claims.runs.get(name), name, rerun, found.get(name))
        rows.append(cells | {"Affected by": caveats(claims.discrepancies, [name])})
        if rerun["pairing"]["status"] in ("paired", "not paired") and name in found:
            rows.append(_paired_cells(name, rerun["pairing"]) | {"Affected by": NA})
    if rerun_result.get("difference"):
        names = [rerun_result["difference"]["first"], rerun_result["difference"]["last"]]
        cells = _difference_cells(rerun_result["difference"])
        rows.append(cells | {"Affected by": caveats(claims.discrepancies, names)})
    return rows


def _checksum_row(checksum_result: Mapping) -> dict:
    problems = checksum_result["problems"]
    return {
        "Claim": "SHA256SUMS: the paper's files are unchanged",
        "Published": NA,
        "Recomputed": f"{checksum_result['files'] - len(problems)} of "
        f"{checksum_result['files']} files match",
        "Rerun": NA,
        "Tolerance": "exact",
        "Verdict": checksum_result["verdict"],
        "Affected by": "; ".join(problems) if problems else "none",
    }


def verification_rows(
    claims: Claims,
    published_result: Mapping,
    rerun_result: Mapping | None = None,
    checksum_result: Mapping | None = None,
) -> list[dict]:
    """One row per claim: published, recomputed and rerun value, tolerance, verdict, caveats.

    Args:
        claims: the claims, bands and discrepancies.
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
    for name, spec in claims.runs.items():
        cells = _published_cells(spec, name, found.get(name), reason)
        rows.append(cells | {"Affected by": caveats(claims.discrepancies, [name])})
    comparison = _comparison_cells(claims.runs, published_result.get("comparison"), reason)
    if comparison is not None:
        rows.append(comparison | {"Affected by": caveats(claims.discrepancies, list(claims.runs))})
    if rerun_result is not None:
        rows += _rerun_rows(claims, rerun_result, found)
    if checksum_result is not None:
        rows.append(_checksum_row(checksum_result))
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


# --------------------------------------------------------------------------- the verdict


def band_explanation(rerun_result: Mapping) -> str | None:
    """How much of each rerun band is binomial sampling error, computed from the rerun's n.

    The 95 % half-width of one accuracy p on n images is 1.96 * sqrt(p (1 - p) / n); against a
    published claim both the claim and the rerun carry one (sqrt(2) times as much together);
    the rest of the band allows for seed-to-seed spread of training.
    """
    parts = []
    for name, run in rerun_result["runs"].items():
        if run["verdict"] == NOT_CHECKED:
            continue
        p, n, band = run["expected"] / 100, run["n"], run["tolerance_pp"]
        half = 100 * stats.Z95 * math.sqrt(p * (1 - p) / n)
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
    claims: Claims,
    published_result: Mapping,
    rerun_result: Mapping | None,
    checksum_result: Mapping | None,
) -> dict:
    """Everything `verify` found, with the rows and the overall verdict (verification.json)."""
    rows = verification_rows(claims, published_result, rerun_result, checksum_result)
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
        "discrepancies": list(claims.discrepancies),
        "notes": notes,
        "rows": rows,
    }


def render(result: Mapping) -> str:
    """The one-screen report: the table, the notes, the problems and the verdict."""
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


def check(claims: Claims, inputs: Inputs) -> dict:
    """Run every check `inputs` allow and assemble the verdict, recording the inputs in it.

    The published claims are checked when their CSVs are given, the reruns when their
    summaries are, the checksums when a SHA256SUMS is.

    Raises:
        VerificationError: nothing to check (no published CSVs and no rerun), or a missing
            SHA256SUMS or data summary.
        ResultFileError: a rerun's result file is missing.
        published.PublishedError: a published file cannot be fetched or fails its sha256.
    """
    published_result = verify_published(claims, inputs.published)
    if not inputs.summaries and published_result["status"] != CHECKED:
        raise VerificationError(needs_published_message(claims.runs))
    rerun_result = verify_rerun(claims, inputs, published_result) if inputs.summaries else None
    checksum_result = None if inputs.checksums is None else checksum_report(inputs.checksums)
    result = assemble(claims, published_result, rerun_result, checksum_result)
    return result | {"inputs": inputs.record()}


def record_verdict(
    claims: Claims, inputs: Inputs, *, verdict: Path, out: Path, console: TextIO | None = None
) -> dict:
    """The workflow's check: keep the verdict, print the report, write `out` only on a pass.

    Snakemake deletes a failed job's outputs but keeps its logs, so the verdict JSON goes to
    `verdict` (a log) first: a failed check keeps it there as well as its printout.

    Args:
        claims, inputs: what :func:`check` compares and reads.
        verdict: the JSON kept whatever the verdict.
        out: the JSON written when every check passes.
        console: where the report is printed as well (prints go to the rule's log).

    Raises:
        VerificationFailedError: a claim does not hold or a file changed (the message names them).
    """
    Path(verdict).unlink(missing_ok=True)  # no earlier verdict outlives a check that stops
    result = check(claims, inputs)
    atomic.write_json(verdict, result)
    report = render(result)
    print(report)
    if console is not None:
        print(report, file=console, flush=True)
    if result["verdict"] != PASS:
        raise VerificationFailedError(
            f"verification FAILED: {'; '.join(result['failed'])} (verdict in {verdict})"
        )
    atomic.write_json(out, result)
    return result


def check_record(record: Path, claims: Claims, *, out: Path | None = None) -> dict:
    """`verify --check`: check again the files a verdict JSON of the workflow records.

    The paths are the ones the workflow's rule named, relative to the folder it ran in (run
    this there); the claims and bands come from the caller's configuration.

    Args:
        record: a verdict JSON the workflow wrote (`verification.json`, `logs/verify.json`, or
            the published claims' alone).
        claims: the configuration's claims, bands and discrepancies.
        out: where to write this check's verdict JSON; None: nowhere. Never a file it checks.

    Raises:
        VerificationError: the record is missing or records no inputs, or `out` is one of the
            files the check reads.
    """
    record = Path(record)
    if not record.is_file():
        raise VerificationError(
            f"{record} is missing: name a verdict JSON the workflow wrote (its rule verify "
            "writes verification.json, and logs/verify.json also after a failed check)"
        )
    recorded = json.loads(record.read_text(encoding="utf-8")).get("inputs")
    if not recorded:
        raise VerificationError(f"{record} records no inputs; `snakemake verify` rewrites it")
    inputs = Inputs.from_record(recorded)
    if out is not None and _is_read(Path(out), record, inputs):
        raise VerificationError(f"--out {out} is a file the check reads; name another")
    result = check(claims, inputs)
    if out is not None:
        atomic.write_json(out, result)
    return result


def _is_read(out: Path, record: Path, inputs: Inputs) -> bool:
    """Whether `out` is the record, a file it names, or a file its SHA256SUMS lists."""
    recorded = inputs.record()
    read = [record, *recorded["published"].values(), *recorded["summaries"].values()]
    read += [*recorded["predictions"].values(), recorded["data"], recorded["checksums"]]
    checksums = recorded["checksums"]
    if checksums and Path(checksums).is_file():
        read += [name for _, name in read_checksums(Path(checksums))]
    return any(Path(path).resolve() == out.resolve() for path in read if path)


def make_verification_table(claims: Claims, inputs: Inputs, md: Path, tex: Path) -> list[Path]:
    """The paper's verification table: published claims and reruns, no checksums.

    Written whatever the verdicts (the table records them); the `verify` rule fails on them
    later.

    Returns:
        The Markdown and the LaTeX path.
    """
    published_result = verify_published(claims, inputs.published)
    rerun_result = verify_rerun(claims, inputs, published_result)
    rows = verification_rows(claims, published_result, rerun_result)
    return save_table(rows_frame(rows), md, tex, align=TABLE_ALIGN)
