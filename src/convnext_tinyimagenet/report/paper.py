"""The paper's numbers: every value `paper/paper.tex` prints, as `\\newcommand` macros.

The TeX source types no number: every accuracy, interval, count, size and hyperparameter it
prints is a macro written here from the result files (`summary.json`, `metrics.jsonl`,
`provenance.json`, `data.json`, the input-fidelity measurement, the published summary) and the
config values the text cites (:class:`PaperConfig`), or sits in a table the tables rules write.
Rule `make_paper_inputs` writes the macros (`numbers.tex`) with :func:`make_paper_inputs`; rule
`build_paper` runs latexmk on the source (rules/paper.smk).

Macro names are letters only (TeX control words cannot hold digits): the experiment name in
CamelCase, then what it is, e.g. `BaselineRerunAcc`, `ImprovedStagesThreeLr`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.errors import ArtifactError
from convnext_tinyimagenet.numbers import NA, count, pct, signed
from convnext_tinyimagenet.report.tables import latex_escape
from convnext_tinyimagenet.stats import newcombe_difference

# the run whose sample grids the paper shows: paper.tex includes figures/improved/*.pdf, and
# rules/paper.smk names them as build_paper's inputs
FIGURE_EXPERIMENT = "improved"
DIGIT_WORDS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
_MACRO_NAME = re.compile(r"^[A-Za-z]+$")


class PaperError(ArtifactError):
    """The paper's numbers cannot be written; the message says why."""


class MissingInputError(PaperError, FileNotFoundError):
    """A result file handed to the paper does not exist; the message names it."""


@dataclass(frozen=True)
class PaperConfig:
    """The config values the paper's text cites (rule make_paper_inputs' params).

    Attributes:
        experiments: config `experiments` in order; the last is compared with the first.
        published_runs: config `published.runs` (the README's claims, epochs and minutes).
        published_repository: config `published.repository`.
        published_commit: config `published.commit` (the text cites its first 7 characters).
        figures: config `figures` (how many samples and grid classes, and their seeds).
        input_size: config `data.input_size`, the side every image is resized to.
        seed: config `seed`.
        output_dir: config `output_dir`, where the text says the results are.
    """

    experiments: Mapping[str, dict]
    published_runs: Mapping[str, dict]
    published_repository: str
    published_commit: str
    figures: Mapping[str, Any]
    input_size: int
    seed: int
    output_dir: str


# --------------------------------------------------------------------------- formatting


def tex_escape(text: Any) -> str:
    """`text` as LaTeX source that prints it literally (`_` → `\\_`, `%` → `\\%`, ...)."""
    return latex_escape(str(text))


def camel(name: str) -> str:
    """A macro-name part from any name: `stages.3` → `StagesThree`, `baseline` → `Baseline`."""
    words = re.findall(r"[A-Za-z]+|[0-9]", name)
    parts = [DIGIT_WORDS[int(w)] if w.isdigit() else w[0].upper() + w[1:] for w in words]
    if not parts:
        raise ValueError(f"no letters or digits in {name!r} to build a macro name from")
    return "".join(parts)


def tex_signed(value: float | None, digits: int = 2) -> str:
    """A difference with its sign for TeX: `+3.69`, `$-$0.42` (a true minus sign)."""
    return signed(value, digits).replace("-", "$-$", 1)


def number(value: float | None) -> str:
    """A hyperparameter: `0.05` → `0.05`; under 0.01 in powers of ten: `$5\\times10^{-5}$`."""
    if value is None:
        return NA
    if value != 0 and abs(value) < 1e-2:
        mantissa, exponent = f"{value:e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        times = "" if mantissa == "1" else f"{mantissa}\\times"
        return f"${times}10^{{{int(exponent)}}}$"
    return f"{value:g}"


# --------------------------------------------------------------------------- macros


def macros(
    config: PaperConfig,
    summaries: Mapping[str, dict],
    published: Mapping[str, dict] | None,
    data_info: dict,
    *,
    provenance: Mapping[str, dict] | None = None,
    metrics: Mapping[str, list[dict]] | None = None,
    fidelity: dict | None = None,
) -> dict[str, str]:
    """Every number and fact the paper prints, as LaTeX-ready strings keyed by macro name.

    Args:
        config: the config values the text cites.
        summaries: experiment → its `summary.json`.
        published: run → figures recomputed from the published predictions (the published
            summary), or None when they were not used: those values then read `n/a` and
            `PublishedAvailable` is `false`.
        data_info: the data store's summary (`data.json`).
        provenance: experiment → its `provenance.json` (device, versions, precision used).
        metrics: experiment → its `metrics.jsonl` rows (for the training time).
        fidelity: the input pipeline measured against PIL's (`input_pipeline.json`).

    Returns:
        Macro name (letters only) → value, already formatted and LaTeX-escaped.
    """
    values = _data_macros(config, data_info)
    for name in config.experiments:
        prefix = camel(name)
        summary = summaries[name]
        values |= _prefixed(prefix, _rerun_macros(summary))
        values |= _prefixed(prefix, _recipe_macros(config.experiments[name], data_info))
        run = config.published_runs.get(name)
        found = (published or {}).get(name)
        values |= _prefixed(prefix, _published_macros(run, found, summary))
        values |= _prefixed(prefix, _provenance_macros((provenance or {}).get(name)))
        values |= _prefixed(prefix, _time_macros((metrics or {}).get(name)))
    values |= _comparison_macros(config, summaries, published)
    values |= _figure_macros(config.figures)
    values |= _fidelity_macros(fidelity)
    values |= _environment_macros(provenance)
    for key in values:
        if not _MACRO_NAME.match(key):
            raise ValueError(f"macro name {key!r} is not letters only")
    return values


def _prefixed(prefix: str, values: Mapping[str, str]) -> dict[str, str]:
    return {prefix + key: value for key, value in values.items()}


def describe_data(data_info: dict) -> tuple[str, str]:
    """(what data, which config) in words; synthetic data is what config/smoke.yaml selects."""
    source = data_info["source"]
    if source == "synthetic":
        return "synthetic images (smoke config), not TinyImageNet", "smoke"
    if source == "hf":
        return f"TinyImageNet ({data_info['id']})", "paper"
    if source == "folder":
        return "TinyImageNet (the original tiny-imagenet-200.zip, unpacked)", "paper"
    return f"{source} data", "custom"


def _data_macros(config: PaperConfig, data_info: dict) -> dict[str, str]:
    description, config_name = describe_data(data_info)
    num_train, num_val = data_info["num_train"], data_info["num_val"]
    num_classes = data_info["num_classes"]
    return {
        "DataDescription": tex_escape(description),
        "ConfigName": tex_escape(config_name),
        "IsSynthetic": "true" if data_info["source"] == "synthetic" else "false",
        "DataSource": tex_escape(data_info["source"]),
        "DataFingerprint": tex_escape(str(data_info.get("fingerprint", NA))[:12]),
        "TrainImages": count(num_train),
        "ValImages": count(num_val),
        "NumClasses": count(num_classes),
        "TrainPerClass": count(num_train // num_classes) if num_classes else NA,
        "ValPerClass": count(num_val // num_classes) if num_classes else NA,
        "ImageSize": count(data_info["image_size"]),
        "InputSize": count(config.input_size),
        "Seed": count(config.seed),
        "OutputDir": tex_escape(config.output_dir),
        "PublishedCommit": tex_escape(str(config.published_commit)[:7]),
        "PublishedRepository": tex_escape(config.published_repository),
    }


def _rerun_macros(summary: dict) -> dict[str, str]:
    low, high = summary["wilson95"]
    return {
        "RerunAcc": pct(summary["accuracy"]),
        "RerunLow": pct(low),
        "RerunHigh": pct(high),
        "RerunTopFive": pct(summary["top5"]),
        "RerunBatchMean": pct(summary.get("accuracy_batch_mean")),
        "RerunCorrect": count(summary["correct"]),
        "RerunN": count(summary["n"]),
        "Epochs": count(summary["epochs"]),
        "BestEpoch": count(summary["best_epoch"]),
        "Title": tex_escape(summary.get("title", "")),
    }


def _recipe_macros(exp: dict, data_info: dict) -> dict[str, str]:
    """Hyperparameters of one experiment, so the text can name them without typing them."""
    model, train, augment = exp["model"], exp["train"], exp["augment"]
    stopping = train["early_stopping"]
    scheduler = train["scheduler"]
    values = {
        "Tag": tex_escape(model["tag"]),
        "Head": tex_escape(model["head"].replace("_", " ")),
        "BatchSize": count(train["batch_size"]),
        "StepsPerEpoch": count(math.ceil(data_info["num_train"] / train["batch_size"])),
        "ValBatches": count(math.ceil(data_info["num_val"] / train["eval_batch_size"])),
        "Precision": tex_escape(train["precision"]),
        "LabelSmoothing": number(train["label_smoothing"]),
        "Monitor": tex_escape(stopping["monitor"]),
        "Patience": count(stopping["patience"]),
        "MaxEpochs": "none" if stopping["max_epochs"] is None else count(stopping["max_epochs"]),
        "Scheduler": "constant" if scheduler is None else tex_escape(scheduler["name"]),
        "SchedulerTmax": NA if scheduler is None else count(scheduler.get("t_max")),
        "TrainableGroups": count(len(exp["trainable"])),
    }
    for group in exp["trainable"]:
        values[camel(group["name"]) + "Lr"] = number(group["lr"])
        values[camel(group["name"]) + "WeightDecay"] = number(group["weight_decay"])
    for key in ("attention_dropout", "output_dropout"):
        if model.get(key) is not None:
            values[camel(key)] = number(model[key])
    if augment.get("randaugment"):
        values["RandAugmentOps"] = count(augment["randaugment"]["num_ops"])
        values["RandAugmentMagnitude"] = count(augment["randaugment"]["magnitude"])
    if augment.get("random_erasing"):
        values["RandomErasingP"] = number(augment["random_erasing"]["p"])
    return values


def _published_macros(run: dict | None, found: dict | None, summary: dict) -> dict[str, str]:
    """The README's claim (config) and what the published predictions give (when used)."""
    claim = None if run is None else run["claim"]
    exact = None if found is None else found["accuracy"]
    values = {
        "PublishedClaim": pct(claim),
        "PublishedExact": pct(exact),
        "PublishedBatchMean": pct(None if found is None else found.get("accuracy_batch_mean")),
        "PublishedBatchMeanFine": pct(
            None if found is None else found.get("accuracy_batch_mean"), digits=4
        ),
        "PublishedCorrect": count(None if found is None else found["correct"]),
        "PublishedN": count(None if found is None else found["n"]),
        "PublishedBestEpoch": count(None if run is None else run.get("best_epoch")),
        "PublishedEpochs": count(None if run is None else len(run.get("epochs") or [])),
        "PublishedMinutes": pct(None if run is None else run.get("minutes")),
        "RerunMinusClaim": tex_signed(None if claim is None else summary["accuracy"] - claim),
        "RerunMinusExact": tex_signed(None if exact is None else summary["accuracy"] - exact),
    }
    if found is not None and summary.get("batch_size_for_mean"):
        # e.g. 10,000 images at batch 32 -> 313 batches, the last one of 16 images
        size, n = summary["batch_size_for_mean"], found["n"]
        values["PublishedBatches"] = count(math.ceil(n / size))
        values["PublishedLastBatch"] = count(n - (math.ceil(n / size) - 1) * size)
    else:
        values["PublishedBatches"] = values["PublishedLastBatch"] = NA
    return values


def _provenance_macros(record: dict | None) -> dict[str, str]:
    train = (record or {}).get("train") or {}
    device = train.get("device") or {}
    name = device.get("name")
    where = device.get("device")
    text = NA if where is None else (f"{where} ({name})" if name else where)
    return {
        "Device": tex_escape(text),
        "PrecisionUsed": tex_escape(train.get("precision", NA)),
    }


def _time_macros(rows: list[dict] | None) -> dict[str, str]:
    if not rows:
        return {"RerunMinutes": NA, "RerunMinutesPerEpoch": NA}
    minutes = sum(float(row.get("seconds", 0.0)) for row in rows) / 60
    return {"RerunMinutes": pct(minutes), "RerunMinutesPerEpoch": pct(minutes / len(rows))}


def _comparison_macros(
    config: PaperConfig, summaries: Mapping[str, dict], published: Mapping[str, dict] | None
) -> dict[str, str]:
    """Improved minus baseline: rerun (with an interval), README claims, published exact."""
    names = list(config.experiments)
    values = {
        "NumExperiments": count(len(names)),
        "PublishedAvailable": "true" if published else "false",
        "ConfidenceLevel": "95",  # summary.json's wilson95 and the difference interval below
    }
    first, last = names[0], names[-1]
    values |= _class_changes(summaries[first]["per_class"], summaries[last]["per_class"])
    low, high = newcombe_difference(summaries[last], summaries[first])
    values |= {
        "RerunDifference": tex_signed(summaries[last]["accuracy"] - summaries[first]["accuracy"]),
        "RerunDifferenceLow": tex_signed(low),
        "RerunDifferenceHigh": tex_signed(high),
    }
    runs = config.published_runs
    claims = [runs.get(n, {}).get("claim") for n in (last, first)]
    values["PublishedDifference"] = tex_signed(
        None if None in claims else claims[0] - claims[1]  # type: ignore[operator]
    )
    exact = [((published or {}).get(n) or {}).get("accuracy") for n in (last, first)]
    values["PublishedExactDifference"] = tex_signed(
        None if None in exact else exact[0] - exact[1]  # type: ignore[operator]
    )
    return values


def _class_changes(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, str]:
    """How many classes the last experiment scores higher, lower or equal than the first."""
    shared = before.keys() & after.keys()
    return {
        "ClassesBetter": count(sum(after[c] > before[c] for c in shared)),
        "ClassesWorse": count(sum(after[c] < before[c] for c in shared)),
        "ClassesTied": count(sum(after[c] == before[c] for c in shared)),
    }


def _figure_macros(figures: Mapping[str, Any]) -> dict[str, str]:
    return {
        "SampleCount": count(figures["samples"]),
        "SampleSeed": count(figures["sample_seed"]),
        "GridClasses": count(figures["grid_classes"]),
        "GridSeed": count(figures["grid_seed"]),
        "FigureExperiment": tex_escape(FIGURE_EXPERIMENT),
    }


def _fidelity_macros(fidelity: dict | None) -> dict[str, str]:
    """The input pipeline against PIL's kernels (fidelity.py): resize and RandAugment."""
    fidelity = fidelity or {}
    summary, resize = fidelity.get("summary", {}), fidelity.get("resize", {})
    larger = ", ".join(tex_escape(op) for op in summary.get("larger_ops", []))
    if not summary:
        clause = NA
    elif larger:
        clause = (f"and in {larger} at most {pct(summary['larger_max_pct'], 2)}\\pct{{}} of "
                  "values differ by more (another neighbour is sampled)")  # fmt: skip
    else:
        clause = "and no value differs by more"
    return {
        "FidelityLargerClause": clause,
        "ResizeDifferingPct": pct(resize.get("pixels_differing_pct"), 1),
        "ResizeMaxDiff": count(resize.get("max_abs_diff")),
        "FidelityOps": count(summary.get("ops")),
        "FidelityExactOps": count(summary.get("exact_ops")),
        "FidelityRoundingPct": pct(summary.get("rounding_max_pct"), 1),
        "FidelityLargerPct": pct(summary.get("larger_max_pct"), 2),
        "FidelityImages": count(fidelity.get("images")),
    }


def _environment_macros(provenance: Mapping[str, dict] | None) -> dict[str, str]:
    """Versions and commit of the first run that recorded them."""
    train = next((r["train"] for r in (provenance or {}).values() if r.get("train")), {})
    versions = train.get("versions") or {}
    git = train.get("git") or {}
    commit, dirty = git.get("commit"), git.get("dirty")
    state = NA if dirty is None else ("with uncommitted changes" if dirty else "clean")
    return {
        "PythonVersion": tex_escape(versions.get("python") or NA),
        "TorchVersion": tex_escape(versions.get("torch") or NA),
        "TimmVersion": tex_escape(versions.get("timm") or NA),
        "GitCommit": tex_escape(commit[:7] if commit else NA),
        "GitState": state,
    }


def write_macros(values: Mapping[str, str], path: str | Path) -> Path:
    """Write `\\newcommand{\\Name}{value}` lines (atomically) and return the path."""
    lines = ["% Generated by convnext_tinyimagenet.report.paper.make_paper_inputs: do not edit."]
    for name, value in values.items():
        if not _MACRO_NAME.match(name):
            raise ValueError(f"macro name {name!r} is not letters only")
        lines.append(f"\\newcommand{{\\{name}}}{{{value}}}")
    return atomic.write_text(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- inputs


def make_paper_inputs(
    numbers: str | Path,
    config: PaperConfig,
    *,
    summaries: Sequence[str | Path],
    metrics: Sequence[str | Path],
    provenance: Sequence[str | Path],
    data: str | Path,
    fidelity: str | Path,
    published: str | Path | None = None,
) -> Path:
    """Write the paper's macros to `numbers` from the result files and the cited config values.

    Args:
        numbers: the macros file to write.
        config: the config values the text cites.
        summaries: each experiment's `summary.json`, in the order of `config.experiments`.
        metrics: each experiment's `metrics.jsonl`, in the same order.
        provenance: each experiment's `provenance.json`, in the same order.
        data: the data store's summary (`data.json`).
        fidelity: the input pipeline measured against PIL's (`input_pipeline.json`).
        published: the figures recomputed from the published predictions, or None when the
            config does not read them (their macros then read `n/a`).

    Returns:
        The path written.

    Raises:
        MissingInputError: a file handed in does not exist (one line naming each).
    """
    names = list(config.experiments)
    runs = {"summary": summaries, "metrics": metrics, "provenance": provenance}
    for kind, files in runs.items():
        if len(files) != len(names):
            raise ValueError(f"{len(files)} {kind} files for the {len(names)} experiments {names}")
    files = [*summaries, *metrics, *provenance, data, fidelity]
    _check_exist(files if published is None else [*files, published])
    values = macros(
        config,
        dict(zip(names, map(_read_json, summaries), strict=True)),
        None if published is None else _read_json(published),
        _read_json(data),
        provenance=dict(zip(names, map(_read_json, provenance), strict=True)),
        metrics=dict(zip(names, map(_read_jsonl, metrics), strict=True)),
        fidelity=_read_json(fidelity),
    )
    return write_macros(values, numbers)


def _check_exist(files: Sequence[str | Path]) -> None:
    missing = [str(path) for path in files if not Path(path).is_file()]
    if missing:
        raise MissingInputError(f"the paper's numbers need missing file(s): {', '.join(missing)}")


def _read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _read_jsonl(path: str | Path) -> list[dict]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
