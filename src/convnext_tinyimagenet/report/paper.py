"""The paper's macros: every value `paper/paper.tex` prints (`numbers.tex`) and the path of every
file it includes (`inputs.tex`), as `\\newcommand` macros.

Macro names are letters only (TeX control words hold no digits): the experiment in CamelCase,
then what it is, e.g. `BaselineRerunAcc`, `ImprovedStagesThreeLr`; an included file's name in
CamelCase, then its kind, e.g. `ResultsTable`, `ClassGridFigure`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convnext_tinyimagenet import atomic, stats
from convnext_tinyimagenet.errors import ArtifactError
from convnext_tinyimagenet.numbers import NA, count, pct, signed
from convnext_tinyimagenet.report.tables import latex_escape
from convnext_tinyimagenet.run_folder import read_json, read_predictions

DIGIT_WORDS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
_MACRO_NAME = re.compile(r"^[A-Za-z]+$")
# what an included file's path may hold: TeX reads it as a file name, with no escaping
_TEX_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")
# the kind of an included file, by extension: the last word of its macro's name
INCLUDED_KINDS = {".tex": "Table", ".pdf": "Figure"}


class PaperError(ArtifactError):
    """The paper's numbers cannot be written; the message says why."""


class MissingInputError(PaperError, FileNotFoundError):
    """A result file handed to the paper does not exist; the message names it."""


@dataclass(frozen=True)
class PaperConfig:
    """The config values the paper's text cites (rule make_paper_inputs' params): `experiments`
    in order (the last is compared with the first), `published.runs`, `published.repository`,
    `published.commit`, `figures`, the experiment whose sample figures the paper shows
    (`figure_experiment`, chosen by the rule), `data.input_size`, `seeds` and `output_dir`."""

    experiments: Mapping[str, dict]
    published_runs: Mapping[str, dict]
    published_repository: str
    published_commit: str
    figures: Mapping[str, Any]
    figure_experiment: str
    input_size: int
    seeds: Sequence[int]
    output_dir: str


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


def macros(
    config: PaperConfig,
    summaries: Mapping[str, dict],
    published: Mapping[str, dict] | None,
    data_info: dict,
    *,
    provenance: Mapping[str, dict] | None = None,
    metrics: Mapping[str, list[dict]] | None = None,
    fidelity: dict | None = None,
    paired: dict | None = None,
) -> dict[str, str]:
    """Every number and fact the paper prints, formatted and LaTeX-escaped, by macro name.

    The arguments are the parsed result files; `published` (the published summary) is None when
    the config does not read the published predictions: its macros then read `n/a`. `paired`:
    the last run's and the first's per-image counts (stats.paired_counts) where both scored the
    same images, which the difference's interval then pairs, as the verification table does.
    """
    values = _data_macros(config, data_info)
    for name, exp in config.experiments.items():
        summary, run = summaries[name], config.published_runs.get(name)
        groups = (
            _rerun_macros(summary),
            _recipe_macros(exp, data_info),
            _published_macros(run, (published or {}).get(name), summary),
            _provenance_macros((provenance or {}).get(name)),
            _time_macros((metrics or {}).get(name)),
        )
        values |= {camel(name) + key: value for group in groups for key, value in group.items()}
    values |= _comparison_macros(config, summaries, published, paired) | _figure_macros(config)
    return values | _fidelity_macros(fidelity) | _environment_macros(provenance)


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
    num_train, num_val, num_classes = (data_info[f"num_{k}"] for k in ("train", "val", "classes"))
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
        "Seeds": tex_escape(", ".join(map(str, config.seeds))),
        "SeedCount": count(len(config.seeds)),
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
    stopping, scheduler = train["early_stopping"], train["scheduler"]
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
    exact = correct = n = batch_mean = batches = last_batch = None
    if found is not None:
        exact, correct, n = found["accuracy"], found["correct"], found["n"]
        batch_mean = found.get("accuracy_batch_mean")
        if size := summary.get("batch_size_for_mean"):
            # e.g. 10,000 images at batch 32 -> 313 batches, the last one of 16 images
            batches = math.ceil(n / size)
            last_batch = n - (batches - 1) * size
    return {
        "PublishedClaim": pct(claim),
        "PublishedExact": pct(exact),
        "PublishedBatchMean": pct(batch_mean),
        "PublishedBatchMeanFine": pct(batch_mean, digits=4),
        "PublishedCorrect": count(correct),
        "PublishedN": count(n),
        "PublishedBestEpoch": count(None if run is None else run.get("best_epoch")),
        "PublishedEpochs": count(None if run is None else len(run.get("epochs") or [])),
        "PublishedMinutes": pct(None if run is None else run.get("minutes")),
        "RerunMinusClaim": _difference(summary["accuracy"], claim),
        "RerunMinusExact": _difference(summary["accuracy"], exact),
        "PublishedBatches": count(batches),
        "PublishedLastBatch": count(last_batch),
    }


def _provenance_macros(record: dict | None) -> dict[str, str]:
    train = (record or {}).get("train") or {}
    device = train.get("device") or {}
    where, name = device.get("device"), device.get("name")
    text = NA if where is None else (f"{where} ({name})" if name else where)
    return {"Device": tex_escape(text), "PrecisionUsed": tex_escape(train.get("precision", NA))}


def _time_macros(rows: list[dict] | None) -> dict[str, str]:
    if not rows:
        return {"RerunMinutes": NA, "RerunMinutesPerEpoch": NA}
    minutes = sum(float(row.get("seconds", 0.0)) for row in rows) / 60
    return {"RerunMinutes": pct(minutes), "RerunMinutesPerEpoch": pct(minutes / len(rows))}


def _comparison_macros(
    config: PaperConfig,
    summaries: Mapping[str, dict],
    published: Mapping[str, dict] | None,
    paired: dict | None,
) -> dict[str, str]:
    """Improved minus baseline: rerun (with an interval), README claims, published exact."""
    names = list(config.experiments)
    first, last = names[0], names[-1]
    if paired is None:
        low, high = stats.newcombe_difference(summaries[last], summaries[first])
        method = "Newcombe's score interval for two independent proportions"
    else:
        low, high = stats.newcombe_paired_difference(paired)
        method = "Newcombe's score interval for paired proportions (the same images)"
    before, after = summaries[first]["per_class"], summaries[last]["per_class"]
    shared = before.keys() & after.keys()
    claim = {n: config.published_runs.get(n, {}).get("claim") for n in (first, last)}
    exact = {n: ((published or {}).get(n) or {}).get("accuracy") for n in (first, last)}
    return {
        "NumExperiments": count(len(names)),
        "PublishedAvailable": "true" if published else "false",
        "ConfidenceLevel": "95",  # summary.json's wilson95 and the difference interval below
        "ClassesBetter": count(sum(after[c] > before[c] for c in shared)),
        "ClassesWorse": count(sum(after[c] < before[c] for c in shared)),
        "ClassesTied": count(sum(after[c] == before[c] for c in shared)),
        "RerunDifference": _difference(summaries[last]["accuracy"], summaries[first]["accuracy"]),
        "RerunDifferenceLow": tex_signed(low),
        "RerunDifferenceHigh": tex_signed(high),
        "RerunIntervalMethod": tex_escape(method),
        "PublishedDifference": _difference(claim[last], claim[first]),
        "PublishedExactDifference": _difference(exact[last], exact[first]),
    }


def _difference(value: float | None, reference: float | None) -> str:
    """`value - reference` with its sign for TeX; n/a when either is missing."""
    return tex_signed(None if value is None or reference is None else value - reference)


def _figure_macros(config: PaperConfig) -> dict[str, str]:
    figures = config.figures
    return {
        "SampleCount": count(figures["samples"]),
        "SampleSeed": count(figures["sample_seed"]),
        "GridClasses": count(figures["grid_classes"]),
        "GridSeed": count(figures["grid_seed"]),
        "FigureExperiment": tex_escape(config.figure_experiment),
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
    versions, git = train.get("versions") or {}, train.get("git") or {}
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
    predictions: Sequence[str | Path] = (),
) -> Path:
    """Write the paper's macros to `numbers` from the result files and the cited config values.

    `summaries`, `metrics` and `provenance` hold one file per experiment, in the order of
    `config.experiments`. Raises MissingInputError naming, in one line, each file that does not
    exist (`published` is None when the config does not read the published predictions).
    """
    names = list(config.experiments)
    for kind, files in (("summary", summaries), ("metrics", metrics), ("provenance", provenance)):
        if len(files) != len(names):
            raise ValueError(f"{len(files)} {kind} files for the {len(names)} experiments {names}")
    optional = [] if published is None else [published]
    files = [*summaries, *metrics, *provenance, *predictions, data, fidelity, *optional]
    if missing := [str(path) for path in files if not Path(path).is_file()]:
        raise MissingInputError(f"the paper's numbers need missing file(s): {', '.join(missing)}")

    def per_run(files: Sequence[str | Path], read: Callable = read_json) -> dict[str, Any]:
        return dict(zip(names, map(read, files), strict=True))

    values = macros(
        config,
        per_run(summaries),
        None if published is None else read_json(published),
        read_json(data),
        provenance=per_run(provenance),
        metrics=per_run(metrics, _read_jsonl),
        fidelity=read_json(fidelity),
        paired=_paired([read_predictions(Path(p)) for p in predictions]) if predictions else None,
    )
    return write_macros(values, numbers)


def _paired(frames: Sequence[Any]) -> dict | None:
    """stats.paired_counts of the last run against the first, image by image (rows matched on
    `image_id`), when both scored the same images; else None."""
    first, last = (frame.set_index("image_id")["correct"] for frame in (frames[0], frames[-1]))
    if len(first) != len(last) or set(first.index) != set(last.index):
        return None
    return stats.paired_counts(last.to_numpy(bool), first.loc[last.index].to_numpy(bool))


def input_macros(
    output_dir: str | Path, numbers: str | Path, included: Sequence[str | Path]
) -> dict[str, str]:
    """The path of each file `paper/paper.tex` reads, relative to `output_dir` (where TeX finds
    it through TEXINPUTS), by macro name: `PaperNumbers` for the macros file `numbers`, and for
    each file in `included` its name in CamelCase, then `Table` (.tex) or `Figure` (.pdf); its
    folders are not in the name: `tables/results.tex` → `ResultsTable`,
    `figures/improved/class_grid.pdf` → `ClassGridFigure`. Raises ValueError for two files with
    one name, another extension, or a path TeX cannot read as written."""
    values = {"PaperNumbers": _tex_path(numbers, output_dir)}
    for path in map(Path, included):
        if path.suffix not in INCLUDED_KINDS:
            raise ValueError(f"{path}: the paper includes only {', '.join(INCLUDED_KINDS)} files")
        name = camel(path.stem) + INCLUDED_KINDS[path.suffix]
        if name in values:
            raise ValueError(f"{path} and {values[name]} would both be the paper's \\{name}")
        values[name] = _tex_path(path, output_dir)
    return values


def _tex_path(path: str | Path, output_dir: str | Path) -> str:
    relative = Path(os.path.relpath(path, output_dir)).as_posix()
    if not _TEX_PATH.match(relative):
        raise ValueError(f"{relative!r}: TeX reads a path of letters, digits and _ . / - only")
    return relative


def write_paper_inputs(
    inputs: str | Path,
    output_dir: str | Path,
    *,
    numbers: str | Path,
    included: Sequence[str | Path],
) -> Path:
    """Write `inputs`: the macros naming, relative to `output_dir`, the macros file `numbers`
    and each file in `included` (:func:`input_macros`); returns the path written."""
    return write_macros(input_macros(output_dir, numbers, included), inputs)


def _read_jsonl(path: str | Path) -> list[dict]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [read_json(path, line) for line in lines if line.strip()]
