"""Verify the paper's numbers: the published claims, the reruns against them, and checksums.

The verdict records its :class:`Inputs`, so that `verify --check` reads the same files again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from convnext_tinyimagenet import atomic, stats
from convnext_tinyimagenet.config import ConfigError, runs_to_do, settings_digest
from convnext_tinyimagenet.errors import ArtifactError
from convnext_tinyimagenet.numbers import NA, pct, signed
from convnext_tinyimagenet.report.tables import markdown, save_table
from convnext_tinyimagenet.run_folder import (
    ResultFileError,
    read_json,
    read_predictions,
    read_summary,
    require,
)
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
COLUMNS = ("Claim", "Published", "Recomputed", "Rerun", "Tolerance", "Verdict", "Affected by")
_ROW = dict.fromkeys(COLUMNS, NA) | {"Verdict": INFO}  # what each row says unless it says more
# Paragraph columns so the long cells wrap in the paper (0.77 of the line; the two narrow columns
# and the padding take the rest, and the paper shrinks the table to the line if need be).
TABLE_ALIGN = (
    r"p{0.15\linewidth}rp{0.19\linewidth}p{0.17\linewidth}p{0.1\linewidth}l"
    r"p{0.16\linewidth}"
)


class VerificationError(ArtifactError):
    """Verification cannot run as asked (a missing file, a missing input); the message says why."""


class VerificationFailedError(ArtifactError):
    """The checks ran and a claim does not hold, or a checksummed file changed."""


# --------------------------------------------------------------------------- what is checked
@dataclass(frozen=True)
class Claims:
    """The config values the checks read; in `runs` (config order) the gain is last minus first."""

    runs: Mapping[str, Mapping]
    rounding_pp: float
    bands: Mapping[str, Mapping] = field(default_factory=dict)
    discrepancies: Sequence[Mapping] = ()
    # each rerun's settings digest, `<experiment>/seed<N>`: what its provenance must record
    digests: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Mapping) -> Claims:
        checks = cfg["verification"]
        runs, rounding = cfg["published"]["runs"], checks["claim_rounding_pp"]
        digests = {f"{n}/seed{s}": settings_digest(cfg, n, s) for n, s in runs_to_do(cfg)}
        return cls(runs, rounding, checks["reruns"], cfg["discrepancies"], digests)


@dataclass(frozen=True)
class Inputs:
    """The files the checks read, as the rule named them (relative to its folder): `published`
    per published run, the others per rerun, named `<experiment>/seed<N>` (:func:`experiment_of`)
    in config order, `data` being the data summary of the source each rerun read; empty or
    None: not checked."""

    published: Mapping[str, str] = field(default_factory=dict)
    summaries: Mapping[str, str] = field(default_factory=dict)
    predictions: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)
    provenance: Mapping[str, str] = field(default_factory=dict)
    checksums: str | None = None
    # the files SHA256SUMS must list, no more and no fewer (the rule's checksummed files)
    checksummed: Sequence[str] = ()

    def record(self) -> dict:
        """The verdict's `inputs`: paths as strings."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @classmethod
    def from_record(cls, record: Mapping) -> Inputs:
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{name: record[name] for name in names if record.get(name)})


def experiment_of(run: str) -> str:
    """The experiment of a rerun's name, `<experiment>/seed<N>` (a bare name is its own)."""
    return run.split("/", 1)[0]


def named(names: Iterable[str], files: Sequence[str]) -> dict[str, str]:
    """Name each of a rule's files, listed one per name in the order of `names` (or none)."""
    names, files = list(names), list(files)
    if not files:
        return {}
    if len(files) != len(names):
        raise VerificationError(
            f"{len(files)} files for {len(names)} names ({', '.join(names)}): {', '.join(files)}"
        )
    return dict(zip(names, files, strict=True))


def from_rule(params: Any, input: Any) -> tuple[Claims, Inputs]:
    """The claims and files a verification rule hands over: its `params` (runs, rounding_pp,
    bands, discrepancies, experiments) and `input` (published, summaries, predictions, data and,
    for the verdict, checksums)."""
    digests = getattr(params, "digests", {})
    claims = Claims(params.runs, params.rounding_pp, params.bands, params.discrepancies, digests)
    inputs = Inputs(
        published=named(params.runs, getattr(params, "published", ())),
        summaries=named(params.experiments, input.summaries),
        predictions=named(params.experiments, input.predictions),
        data=named(params.experiments, input.data),
        provenance=named(params.experiments, getattr(input, "provenance", ())),
        checksums=getattr(input, "checksums", None),
        checksummed=list(getattr(params, "checksummed", ())),
    )
    return claims, inputs


# --------------------------------------------------------------------------- published claims
def _interval_text(low: float, high: float, signed: bool = False) -> str:
    fmt = "{:+.2f}" if signed else "{:.2f}"
    return f"95 % CI {fmt.format(low)} to {fmt.format(high)}"


def _within(value: float, expected: float, tolerance: float) -> bool:
    return abs(value - expected) <= tolerance + _EPS


def check_published_run(spec: Mapping, frame: pd.DataFrame, rounding_pp: float) -> dict:
    """Recompute one published run and check its claim against the figure its notebook computed
    (`spec`'s claim_metric), within `rounding_pp`."""
    figures = published.recompute(frame)
    n, correct, size = figures["n"], figures["correct"], figures["batch_size"]
    metric = spec["claim_metric"]
    recomputed = figures[METRIC_KEYS[metric]]
    batches, last = math.ceil(n / size), (n - 1) % size + 1  # last: the last batch's images
    exact = f"{correct:,} / {n:,} = {figures['accuracy']:.2f} %"
    how = (
        f"the notebook counted correct / total: {exact}; the mean of per-batch accuracies "
        f"would be {figures['accuracy_batch_mean']:.4f} %"
        if metric == "exact"
        else f"the training loop logged the mean of {batches} per-batch accuracies at batch "
        f"{size} (the last batch of {last} images weighs as much as a full one): "
        f"{figures['accuracy_batch_mean']:.4f} %, printed as {spec['claim']:.2f} %; the "
        f"exact accuracy of the same predictions is {exact}"
    )
    return {
        "claim": spec["claim"],
        "claim_metric": metric,
        **{key: value for key, value in figures.items() if key != "per_class"},  # n .. batch_size
        "wilson95": stats.accuracy_interval(correct, n)["wilson95"],
        "recomputed": recomputed,
        "difference": recomputed - spec["claim"],
        "tolerance_pp": rounding_pp,
        "verdict": PASS if _within(recomputed, spec["claim"], rounding_pp) else FAIL,
        "explanation": how,
        "per_class": {str(k): v for k, v in figures["per_class"].items()},
    }


def paired_comparison(first: pd.DataFrame, second: pd.DataFrame, by_id: bool = False) -> dict:
    """Image-by-image comparison of two prediction sets, paired only where the labels agree row by
    row; the difference first - second (pp) with McNemar's p and Newcombe's paired interval.
    `by_id`: two reruns, whose rows are first matched on `image_id` (sources differ in order)."""
    if by_id and set(first["image_id"]) == set(second["image_id"]):
        second = second.set_index("image_id").loc[first["image_id"]].reset_index()
    if len(first) != len(second):
        return {"status": "not paired", "reason": f"{len(first)} vs {len(second)} rows"}
    labels_differ = int((first["label"].to_numpy() != second["label"].to_numpy()).sum())
    if labels_differ:
        return {
            "status": "not paired",
            "reason": f"labels differ in {labels_differ:,} of {len(first):,} rows: the rows are "
            "not the same images in the same order",
        }
    correct = [frame["correct"].to_numpy(dtype=bool) for frame in (first, second)]
    counts = stats.paired_counts(*correct)
    same = (first["prediction"].to_numpy() == second["prediction"].to_numpy()).mean()
    return {
        "status": "paired",
        "n": counts["n"],
        "agreement": 100.0 * float(same),
        "counts": counts,
        "mcnemar_p": stats.mcnemar_exact_p(counts["first_only"], counts["second_only"]),
        "difference": 100.0 * (counts["first_only"] - counts["second_only"]) / counts["n"],
        "ci95": list(stats.newcombe_paired_difference(counts)),
    }


def compare_published(claims: Claims, runs: Mapping[str, dict], frames: Mapping) -> dict | None:
    """The claimed gain (last run minus first), recomputed: it must agree within twice the
    rounding, and its exact 95 % interval must exclude zero on the claimed side."""
    if len(runs) < 2:
        return None
    first, *_, last = runs
    claimed = claims.runs[last]["claim"] - claims.runs[first]["claim"]
    recomputed = runs[last]["recomputed"] - runs[first]["recomputed"]
    pairing, (low, high), method = _published_interval(first, last, runs, frames)
    holds = low > 0 if claimed > 0 else high < 0
    agrees = _within(recomputed, claimed, 2 * claims.rounding_pp)
    before, after = runs[first]["per_class"], runs[last]["per_class"]
    shared = before.keys() & after.keys()
    return {
        "first": first,
        "last": last,
        "claimed": claimed,
        "recomputed": recomputed,
        "exact": runs[last]["accuracy"] - runs[first]["accuracy"],
        "ci95": [low, high],
        "method": method,
        "pairing": pairing,
        "tolerance_pp": 2 * claims.rounding_pp,
        "agrees": agrees,
        "holds": holds,
        "verdict": PASS if agrees and holds else FAIL,
        "classes": {
            "better": sum(after[c] > before[c] for c in shared),
            "worse": sum(after[c] < before[c] for c in shared),
            "tied": sum(after[c] == before[c] for c in shared),
        },
    }


def _published_interval(first: str, last: str, runs: Mapping, frames: Mapping) -> tuple:
    """Pairing, 95 % interval and method: paired where both files follow one source's order."""
    sources = (runs[first]["source"], runs[last]["source"])
    if sources[0] == sources[1]:
        pairing = paired_comparison(frames[last], frames[first])
        if pairing["status"] == "paired":
            method = "Newcombe's paired score interval (same images, same order)"
            return pairing, pairing["ci95"], method
    else:
        pairing = {
            "status": "not paired",
            "reason": f"the {first} rows follow {SOURCE_ORDER[sources[0]]}, the {last} rows "
            f"{SOURCE_ORDER[sources[1]]}, and no image ids were saved: row i is not the same "
            "image in both files. Per-class accuracy compares (50 images per class in both); "
            "per-image pairing does not",
        }
    interval = stats.newcombe_difference(runs[last], runs[first])
    return pairing, interval, "Newcombe's hybrid score interval for independent proportions"


def verify_published(claims: Claims, files: Mapping[str, str]) -> dict:
    """Check every published claim against its prediction CSV (run -> path), each fetched and
    sha256-verified; no files: not checked, and the result says why."""
    if not files:
        return {"status": NOT_CHECKED, "reason": NOT_FETCHED, "runs": {}, "comparison": None}
    pins = {name: claims.runs[name]["predictions"] for name in files}
    runs, frames = {}, {}
    for name, path in published.fetch_all(files, pins).items():
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


def _needs_published(runs: Mapping[str, Mapping]) -> str:
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
def check_rerun(name: str, summary: Mapping, spec: Mapping | None, band: Mapping | None) -> dict:
    """One rerun against its band: its `expected` exact accuracy, or (expected null) the
    published claim (`spec`), computed the way the claim was (exact or batch mean)."""
    mean = summary.get("accuracy_batch_mean")
    result = {"accuracy": summary["accuracy"], "accuracy_batch_mean": mean}
    result |= {key: summary[key] for key in ("wilson95", "n", "correct")}
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
    return result | {
        "metric": metric,
        "value": value,
        "expected": expected,
        "basis": basis,
        "tolerance_pp": band["tolerance_pp"],
        "difference": value - expected,
        "verdict": PASS if _within(value, expected, band["tolerance_pp"]) else FAIL,
    }


def _rerun_source(claims: Claims, inputs: Inputs, name: str) -> str:
    """The source rerun `name` read (its data summary), once its files agree (:func:`_agree`)."""
    if name not in inputs.data:
        raise VerificationError(f"checking rerun {name} needs its data summary, and none was given")
    data = read_json(require(Path(inputs.data[name]), made_by=DATA_MADE_BY))
    if name in inputs.provenance:
        _agree(Path(inputs.provenance[name]), data.get("fingerprint"), claims.digests.get(name))
    return data.get("source", "")


def _agree(path: Path, fingerprint: str | None, digest: str | None) -> None:
    """A run's files come from one run: its provenance `path` records the same settings (the
    config's, `digest`, where given), data (its source's, `fingerprint`) and model for training
    and evaluation; else VerificationFailedError in one line naming the file."""
    record = read_json(require(path))
    train, evaluate = (record.get(section) or {} for section in ("train", "evaluate"))
    facts = {
        "settings": ("config_digest", digest),
        "data": ("data", fingerprint),
        "model": ("model", train.get("model")),
    }
    for what, (key, expected) in facts.items():
        values = [section.get(key) for section in (train, evaluate)]
        values = [v.get("fingerprint") if isinstance(v, dict) else v for v in values]
        if len({*values, expected or values[0]}) > 1:
            raise VerificationFailedError(
                f"{path} mixes runs: its {what} differ (trained {str(values[0])[:12]}, "
                f"evaluated {str(values[1])[:12]}, expected {str(expected)[:12]}); rerun it: "
                f"snakemake --forcerun run_experiment"
            )


def verify_rerun(claims: Claims, inputs: Inputs, published_result: Mapping) -> dict:
    """Check every rerun against its band and pair it with the published run where possible;
    the `difference` of the last minus the first is paired (both read the same store)."""
    names = list(inputs.summaries)
    experiments = list(dict.fromkeys(map(experiment_of, names)))
    unknown = [name for name in claims.bands if name not in experiments]
    if unknown:
        raise ConfigError(
            f"verification.reruns.{unknown[0]} names no experiment "
            f"(experiments: {', '.join(experiments)})"
        )
    if set(inputs.predictions) != set(names):
        raise VerificationError(
            f"reruns with a summary ({', '.join(names)}) and with predictions "
            f"({', '.join(inputs.predictions)}) differ"
        )
    runs, frames = {}, {}
    for name in names:
        source, experiment = _rerun_source(claims, inputs, name), experiment_of(name)
        frame = read_predictions(inputs.predictions[name])
        frames[name] = frame.sort_values("index", kind="stable").reset_index(drop=True)
        spec = claims.runs.get(experiment)
        band = claims.bands.get(experiment)
        runs[name] = check_rerun(experiment, read_summary(inputs.summaries[name]), spec, band)
        pairing = _pair_with_published(experiment, spec, source, frames[name], published_result)
        runs[name] |= {"pairing": pairing, "source": source}
    pair = _gain_pair(names)
    difference = None
    if pair is not None:
        first, last = pair
        unpaired = list(stats.newcombe_difference(runs[last], runs[first]))
        difference = {"first": first, "last": last, "unpaired_ci95": unpaired}
        difference |= paired_comparison(frames[last], frames[first], by_id=True)
    return {"status": CHECKED, "runs": runs, "difference": difference}


def _gain_pair(names: Sequence[str]) -> tuple[str, str] | None:
    """The reruns whose difference is the rerun's gain: the first, and the last of another
    experiment with the same seed (else the last of another experiment); None with one."""
    first = names[0] if names else None
    others = [n for n in names if experiment_of(n) != experiment_of(first or "")]
    if not others:
        return None
    seed = first.partition("/")[2]
    same_seed = [n for n in others if n.partition("/")[2] == seed]
    return first, (same_seed or others)[-1]


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
    """Write `out` in the `sha256sum -c` format: `<sha256>  <path>`, the paths as given."""
    files = [str(f) for f in files]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:  # a checksum of nothing would certify nothing
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


def check_checksums(path: str | Path, expected: Sequence[str] = ()) -> dict:
    """Recompute the SHA256SUMS at `path`: its file count, the `problems` (one line per file that
    changed or went missing, and, given the `expected` files, per file it lists that is not one
    of them or does not list) and the verdict."""
    if not Path(path).is_file():
        raise VerificationError(f"{Path(path)} is missing; it is made by {CHECKSUMS_MADE_BY}")
    pairs, problems = read_checksums(Path(path)), []
    if expected:
        listed = [name for _, name in pairs]
        problems += [f"{name}: not in {Path(path).name}" for name in expected if name not in listed]
        problems += [f"{name}: listed, not expected" for name in listed if name not in expected]
    for expected, name in pairs:
        if not Path(name).is_file():
            problems.append(f"{name}: missing")
        elif (actual := published.sha256(Path(name))) != expected:
            problems.append(
                f"{name}: changed (sha256 {actual[:12]}..., recorded {expected[:12]}...)"
            )
    counted = {"status": CHECKED, "file": str(path), "files": len(pairs)}
    return counted | {"problems": problems, "verdict": FAIL if problems else PASS}


# --------------------------------------------------------------------------- rows
def caveats(discrepancies: Sequence[Mapping], runs: Iterable[str]) -> str:
    """The README-vs-notebook discrepancies that affect any of `runs`, by their number in the
    discrepancies table (D1, D2, ...): a short cell, not the topics again on every row."""
    found = [f"D{i}" for i, d in enumerate(discrepancies, 1) if set(d["affects"]) & set(runs)]
    return ", ".join(found) if found else "none"


def _published_row(claims: Claims, name: str, found: Mapping | None, reason: str) -> dict:
    spec = claims.runs[name]
    words = METRIC_WORDS[spec["claim_metric"]]
    row = _ROW | {
        "Claim": f"{name}: the claim is the {words} of its predictions",
        "Published": pct(spec["claim"]),
        "Affected by": caveats(claims.discrepancies, [name]),
    }
    if found is None:
        return row | {"Recomputed": f"not checked ({reason})", "Verdict": NOT_CHECKED}
    exact = f"{found['correct']:,} / {found['n']:,} = {found['accuracy']:.2f}"
    recomputed = f"{exact} exact"
    if found["claim_metric"] != "exact":
        recomputed = f"{found['accuracy_batch_mean']:.4f} batch mean (exact: {exact})"
    return row | {
        "Recomputed": f"{recomputed}; {_interval_text(*found['wilson95'])}",
        "Tolerance": f"+/- {found['tolerance_pp']:g} (rounding)",
        "Verdict": found["verdict"],
    }


def _comparison_row(claims: Claims, comparison: Mapping | None, reason: str) -> dict:
    first, *_, last = claims.runs
    row = _ROW | {
        "Claim": f"{last} - {first}: the published gain holds",
        "Published": signed(claims.runs[last]["claim"] - claims.runs[first]["claim"]),
        "Affected by": caveats(claims.discrepancies, claims.runs),
    }
    if comparison is None:
        return row | {"Recomputed": f"not checked ({reason})", "Verdict": NOT_CHECKED}
    paired = "paired" if comparison["pairing"]["status"] == "paired" else "unpaired"
    return row | {
        "Recomputed": f"{signed(comparison['recomputed'])} (exact {signed(comparison['exact'])};"
        f" {_interval_text(*comparison['ci95'], signed=True)}, {paired})",
        "Tolerance": f"+/- {comparison['tolerance_pp']:g} and 95 % CI excludes 0",
        "Verdict": comparison["verdict"],
    }


def _rerun_row(claims: Claims, name: str, rerun: Mapping, found: Mapping | None) -> dict:
    spec, interval = claims.runs.get(experiment_of(name)), _interval_text(*rerun["wilson95"])
    row = _ROW | {
        "Claim": f"{name}: the rerun lies in its band",
        "Published": NA if spec is None else pct(spec["claim"]),
        "Recomputed": NA if found is None else pct(found["recomputed"]),
        "Affected by": caveats(claims.discrepancies, [experiment_of(name)]),
    }
    if rerun["verdict"] == NOT_CHECKED:
        return row | {"Rerun": f"{rerun['accuracy']:.2f}; {interval}", "Verdict": NOT_CHECKED}
    words = "batch mean" if rerun["metric"] == "batch_mean" else "exact"
    target = "claim" if rerun["basis"] == "published claim" else "expected"
    return row | {
        "Rerun": f"{rerun['value']:.2f} {words} ({rerun['correct']:,} / {rerun['n']:,}); "
        f"{interval}",
        "Tolerance": f"{rerun['expected']:.2f} +/- {rerun['tolerance_pp']:g} ({target})",
        "Verdict": rerun["verdict"],
    }


def _paired_row(name: str, pairing: Mapping) -> dict:
    row = _ROW | {"Claim": f"{name}: rerun vs published, image by image"}
    if pairing["status"] != "paired":
        return row | {"Rerun": f"{pairing['status']}: {pairing['reason']}"}
    counts = pairing["counts"]
    return row | {
        "Rerun": f"same prediction on {pairing['agreement']:.2f} %; rerun-only correct "
        f"{counts['first_only']:,}, published-only {counts['second_only']:,} (McNemar p = "
        f"{pairing['mcnemar_p']:.3g}); difference {signed(pairing['difference'])}, "
        f"{_interval_text(*pairing['ci95'], signed=True)}"
    }


def _difference_row(claims: Claims, difference: Mapping) -> dict:
    first, last = difference["first"], difference["last"]
    paired = difference["status"] == "paired"
    interval = _interval_text(*difference["ci95" if paired else "unpaired_ci95"], signed=True)
    if paired:
        p = difference["mcnemar_p"]
        value = f"{signed(difference['difference'])}; {interval} (paired; McNemar p = {p:.3g})"
    else:
        value = f"{interval} (unpaired: {difference['reason']})"
    return _ROW | {
        "Claim": f"{last} - {first}: the rerun's gain (one seed each; not judged)",
        "Rerun": value,
        "Affected by": caveats(claims.discrepancies, [experiment_of(first), experiment_of(last)]),
    }


def _checksum_row(result: Mapping) -> dict:
    problems = result["problems"]
    return _ROW | {
        "Claim": "SHA256SUMS: the paper's files are unchanged",
        "Recomputed": f"{result['files'] - len(problems)} of {result['files']} files match",
        "Tolerance": "exact",
        "Verdict": result["verdict"],
        "Affected by": "; ".join(problems) if problems else "none",
    }


def verification_rows(
    claims: Claims,
    published_result: Mapping,
    rerun_result: Mapping | None = None,
    checksum_result: Mapping | None = None,
) -> list[dict]:
    """One row per claim (:data:`COLUMNS`): published, recomputed and rerun value, tolerance,
    verdict, and the config's discrepancies that bear on the row's runs."""
    reason, found = published_result.get("reason", ""), published_result.get("runs", {})
    rows = [_published_row(claims, name, found.get(name), reason) for name in claims.runs]
    if len(claims.runs) >= 2:
        rows.append(_comparison_row(claims, published_result.get("comparison"), reason))
    for name, rerun in (rerun_result["runs"] if rerun_result else {}).items():
        rows.append(_rerun_row(claims, name, rerun, found.get(experiment_of(name))))
        if rerun["pairing"]["status"] in ("paired", "not paired") and experiment_of(name) in found:
            rows.append(_paired_row(name, rerun["pairing"]))
    if rerun_result and rerun_result.get("difference"):
        rows.append(_difference_row(claims, rerun_result["difference"]))
    if checksum_result is not None:
        rows.append(_checksum_row(checksum_result))
    return rows


# --------------------------------------------------------------------------- the verdict
def band_explanation(rerun_result: Mapping) -> str | None:
    """How much of each rerun band is binomial sampling error: the 95 % half-width of one
    accuracy p on n images is 1.96 * sqrt(p (1 - p) / n); against a published claim both carry
    one (sqrt(2) times as much together); the rest allows for seed-to-seed spread of training."""
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
            f"images {sampling}; {max(0.0, band - both):.2f} pp left for seed-to-seed spread"
        )
    return "; ".join(parts) if parts else None


def _notes(published_result: Mapping, rerun_result: Mapping | None) -> list[str]:
    bands = None if rerun_result is None else band_explanation(rerun_result)
    notes = [bands] if bands else []
    notes += [f"{name}: {run['explanation']}" for name, run in published_result["runs"].items()]
    comparison = published_result.get("comparison")
    if comparison:
        if comparison["pairing"]["status"] != "paired":
            notes.append(f"published runs not paired: {comparison['pairing']['reason']}")
        classes = comparison["classes"]
        notes.append(
            f"per class, published {comparison['last']} vs {comparison['first']}: higher on "
            f"{classes['better']}, lower on {classes['worse']}, tied on {classes['tied']}"
        )
    return notes


def check(claims: Claims, inputs: Inputs) -> dict:
    """Run every check `inputs` allow; the verdict, with the inputs recorded in it."""
    published_result = verify_published(claims, inputs.published)
    if not inputs.summaries and published_result["status"] != CHECKED:
        raise VerificationError(_needs_published(claims.runs))
    rerun_result = verify_rerun(claims, inputs, published_result) if inputs.summaries else None
    checksum_result = (
        None if inputs.checksums is None else check_checksums(inputs.checksums, inputs.checksummed)
    )
    rows = verification_rows(claims, published_result, rerun_result, checksum_result)
    failed = [row["Claim"] for row in rows if row["Verdict"] == FAIL]
    return {
        "verdict": FAIL if failed else PASS,
        "failed": failed,
        "published": dict(published_result),
        "reruns": None if rerun_result is None else dict(rerun_result),
        "checksums": {"status": NOT_CHECKED} if checksum_result is None else checksum_result,
        "discrepancies": list(claims.discrepancies),
        "notes": _notes(published_result, rerun_result),
        "rows": rows,
        "inputs": inputs.record(),
        "claims": dataclasses.asdict(claims),  # what `verify --check` checks again by default
    }


def render(result: Mapping) -> str:
    """The one-screen report: the table (the claims, the figures and the verdicts; every
    column is in the verdict's rows and tables/verification.md), the notes, the problems and
    the verdict."""
    problems = result["checksums"].get("problems", [])
    shown = ["Claim", "Published", "Recomputed", "Rerun", "Tolerance", "Verdict"]
    frame, why = (
        pd.DataFrame(result["rows"], columns=list(COLUMNS))[shown],
        r"^not checked \((.*)\)$",
    )
    lines = [markdown(frame.replace(why, NOT_CHECKED, regex=True))]  # each reason once, below
    lines += [
        f"- not checked: {r}" for r in dict.fromkeys(frame.stack().str.extract(why)[0].dropna())
    ]
    lines += [textwrap.fill(f"- {note}", 100, subsequent_indent="  ") for note in result["notes"]]
    lines += [f"- checksum problem: {problem}" for problem in problems]
    if result["verdict"] == PASS:
        return "\n".join([*lines, "\nverification passed"])
    lines.append(f"\nverification FAILED: {'; '.join(result['failed'])}")
    if problems:
        lines.append(
            "  (a file changed since SHA256SUMS was written: rebuild it with the workflow, "
            "or accept the change with `snakemake --forcerun write_checksums`)"
        )
    return "\n".join(lines)


def record_verdict(
    claims: Claims, inputs: Inputs, *, verdict: Path, out: Path, console: TextIO | None = None
) -> dict:
    """The workflow's check: the verdict to `verdict`, the report printed (and to `console`), and
    `out` written only when every check passes. Snakemake deletes a failed job's outputs but keeps
    its logs: `verdict` is a log, so a failed check keeps its verdict as well as its printout."""
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


def check_record(record: Path, claims: Claims | None, *, out: Path | None = None) -> dict:
    """`verify --check`: check again the files a verdict records (paths relative to the folder
    the workflow ran in), with the caller's claims or (None) those it records; `out` (None:
    nowhere) is never read."""
    record = Path(record)
    if not record.is_file():
        raise VerificationError(
            f"{record} is missing: name a verdict JSON the workflow wrote (its rule verify "
            "writes verification.json, and logs/verify.json also after a failed check)"
        )
    try:
        verdict = read_json(record)
    except ResultFileError as exc:  # a README, [], a truncated file: no verdict of ours
        raise VerificationError(f"{exc}; name a verdict JSON the workflow wrote") from None
    recorded = verdict.get("inputs")
    if claims is None and not isinstance(verdict.get("claims"), Mapping):
        raise VerificationError(f"{record} records no claims: give the config with --config")
    claims = claims or Claims(**verdict["claims"])
    runs = ("published", "summaries", "predictions", "data", "provenance")  # run -> file
    if not recorded or any(not isinstance(recorded.get(k) or {}, Mapping) for k in runs):
        raise VerificationError(f"{record} records no inputs; `snakemake verify` rewrites it")
    inputs = Inputs.from_record(recorded)
    paths = inputs.record()
    read = [record, *paths["data"].values(), paths["checksums"]]
    read += [p for kind in ("published", "summaries", "predictions") for p in paths[kind].values()]
    if paths["checksums"] and Path(paths["checksums"]).is_file():
        read += [name for _, name in read_checksums(Path(paths["checksums"]))]
    if out is not None and any(Path(p).resolve() == Path(out).resolve() for p in read if p):
        raise VerificationError(f"--out {out} is a file the check reads; name another")
    result = check(claims, inputs)
    if out is not None:
        atomic.write_json(out, result)
    return result


def make_verification_table(claims: Claims, inputs: Inputs, md: Path, tex: Path) -> list[Path]:
    """The paper's table of the published claims and reruns, whatever their verdicts (the
    `verify` rule fails on them later); no checksum row."""
    published_result = verify_published(claims, inputs.published)
    rerun_result = verify_rerun(claims, inputs, published_result)
    rows = verification_rows(claims, published_result, rerun_result)
    return save_table(pd.DataFrame(rows), md, tex, align=TABLE_ALIGN)
