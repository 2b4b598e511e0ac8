"""The paper's generated inputs (`<output_dir>/paper/generated/`) and its PDF build.

The TeX source (`paper/paper.tex`) types no number: every accuracy, interval, count, size and
hyperparameter it prints is a `\\newcommand` macro written here from the result files
(`summary.json`, `metrics.jsonl`, `provenance.json`, `data.json`, the published summary) and the
config, or sits in a table written by the tables step. `make_paper_inputs` gathers all of it into
`<output_dir>/paper/generated/`; `build_paper_pdf` runs latexmk there on `paper/paper.tex` and
puts the PDF at `<output_dir>/paper.pdf`.

Macro names are letters only (TeX control words cannot hold digits): the experiment name in
CamelCase, then what it is, e.g. `BaselineRerunAcc`, `ImprovedStagesThreeLr`.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import atomic, paths
from .stats import newcombe_difference
from .tables import latex_escape

NA = "n/a"
FIGURE_EXPERIMENT = "improved"  # the run whose sample grids the paper shows
# verification: published claims and reruns checked, written before the checksums (verification.py)
TABLES = ("results", "recipe", "discrepancies", "verification", "input_fidelity")
LATEXMK_COMMAND = ("latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-outdir=build")
TEX_PACKAGES = "latexmk texlive-latex-recommended texlive-latex-extra"
DIGIT_WORDS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
_MACRO_NAME = re.compile(r"^[A-Za-z]+$")


class PaperError(Exception):
    """The paper cannot be prepared or built; the message says why and what to do."""


class MissingInputError(PaperError, FileNotFoundError):
    """A result file the paper needs does not exist; the message names it and its maker."""


class PaperToolError(PaperError):
    """The TeX tools that build the PDF are not installed."""


class LatexError(PaperError):
    """LaTeX stopped on an error; the message quotes it and names the log."""


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


def pct(value: float | None, digits: int = 2) -> str:
    """A percentage without the sign, `97.5` → `97.50`; None → `n/a`."""
    return NA if value is None else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 2) -> str:
    """A difference with its sign: `+3.69`, `$-$0.42` (a true minus sign)."""
    if value is None:
        return NA
    text = f"{abs(value):.{digits}f}"
    return f"$-${text}" if value < 0 and text.strip("0.") else f"+{text}"


def count(value: int | None) -> str:
    """An integer with thousands separators, `10000` → `10,000`."""
    return NA if value is None else f"{int(value):,}"


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
    cfg: dict,
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
        cfg: the validated configuration the results were made with.
        summaries: experiment → its `summary.json`.
        published: run → figures recomputed from the published predictions
            (`paths.published_summary`), or None when they were not used: those values
            then read `n/a` and `PublishedAvailable` is `false`.
        data_info: the data store's summary (`paths.data_summary`).
        provenance: experiment → its `provenance.json` (device, versions, precision used).
        metrics: experiment → its `metrics.jsonl` rows (for the training time).
        fidelity: the input pipeline measured against PIL's (`paths.fidelity_summary`).

    Returns:
        Macro name (letters only) → value, already formatted and LaTeX-escaped.
    """
    values = _data_macros(cfg, data_info)
    for name in paths.experiments(cfg):
        prefix = camel(name)
        summary = summaries[name]
        values |= _prefixed(prefix, _rerun_macros(summary))
        values |= _prefixed(prefix, _recipe_macros(cfg["experiments"][name], data_info))
        run = cfg["published"]["runs"].get(name)
        found = (published or {}).get(name)
        values |= _prefixed(prefix, _published_macros(run, found, summary))
        values |= _prefixed(prefix, _provenance_macros((provenance or {}).get(name)))
        values |= _prefixed(prefix, _time_macros((metrics or {}).get(name)))
    values |= _comparison_macros(cfg, summaries, published)
    values |= _figure_macros(cfg)
    values |= _fidelity_macros(fidelity)
    values |= _environment_macros(provenance)
    for key in values:
        if not _MACRO_NAME.match(key):
            raise ValueError(f"macro name {key!r} is not letters only")
    return values


def _prefixed(prefix: str, values: Mapping[str, str]) -> dict[str, str]:
    return {prefix + key: value for key, value in values.items()}


def describe_data(cfg: dict, data_info: dict) -> tuple[str, str]:
    """(what data, which config) in words; synthetic data is what config/smoke.yaml selects."""
    source = data_info.get("source", cfg["data"]["source"])
    if source == "synthetic":
        return "synthetic images (smoke config), not TinyImageNet", "smoke"
    if source == "hf":
        return f"TinyImageNet ({cfg['data']['hf']['id']})", "paper"
    if source == "folder":
        return "TinyImageNet (the original tiny-imagenet-200.zip, unpacked)", "paper"
    return f"{source} data", "custom"


def _data_macros(cfg: dict, data_info: dict) -> dict[str, str]:
    description, config_name = describe_data(cfg, data_info)
    synthetic = data_info.get("source", cfg["data"]["source"]) == "synthetic"
    num_train, num_val = data_info["num_train"], data_info["num_val"]
    num_classes = data_info["num_classes"]
    return {
        "DataDescription": tex_escape(description),
        "ConfigName": tex_escape(config_name),
        "IsSynthetic": "true" if synthetic else "false",
        "DataSource": tex_escape(data_info.get("source", cfg["data"]["source"])),
        "DataFingerprint": tex_escape(str(data_info.get("fingerprint", NA))[:12]),
        "TrainImages": count(num_train),
        "ValImages": count(num_val),
        "NumClasses": count(num_classes),
        "TrainPerClass": count(num_train // num_classes) if num_classes else NA,
        "ValPerClass": count(num_val // num_classes) if num_classes else NA,
        "ImageSize": count(data_info.get("image_size", cfg["data"]["image_size"])),
        "InputSize": count(cfg["data"]["input_size"]),
        "Seed": count(cfg["seed"]),
        "OutputDir": tex_escape(cfg["output_dir"]),
        "PublishedCommit": tex_escape(str(cfg["published"]["commit"])[:7]),
        "PublishedRepository": tex_escape(cfg["published"]["repository"]),
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
        "RerunMinusClaim": signed(None if claim is None else summary["accuracy"] - claim),
        "RerunMinusExact": signed(None if exact is None else summary["accuracy"] - exact),
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
    cfg: dict, summaries: Mapping[str, dict], published: Mapping[str, dict] | None
) -> dict[str, str]:
    """Improved minus baseline: rerun (with an interval), README claims, published exact."""
    names = paths.experiments(cfg)
    values = {
        "NumExperiments": count(len(names)),
        "PublishedAvailable": "true" if published else "false",
        "ConfidenceLevel": "95",  # summary.json's wilson95 and the difference interval below
    }
    first, last = names[0], names[-1]
    values |= _class_changes(summaries[first]["per_class"], summaries[last]["per_class"])
    low, high = newcombe_difference(summaries[last], summaries[first])
    values |= {
        "RerunDifference": signed(summaries[last]["accuracy"] - summaries[first]["accuracy"]),
        "RerunDifferenceLow": signed(low),
        "RerunDifferenceHigh": signed(high),
    }
    runs = cfg["published"]["runs"]
    claims = [runs.get(n, {}).get("claim") for n in (last, first)]
    values["PublishedDifference"] = signed(
        None if None in claims else claims[0] - claims[1]  # type: ignore[operator]
    )
    exact = [((published or {}).get(n) or {}).get("accuracy") for n in (last, first)]
    values["PublishedExactDifference"] = signed(
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


def _figure_macros(cfg: dict) -> dict[str, str]:
    figures = cfg["figures"]
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
    lines = ["% Generated by convnext_tinyimagenet.paper.make_paper_inputs: do not edit."]
    for name, value in values.items():
        if not _MACRO_NAME.match(name):
            raise ValueError(f"macro name {name!r} is not letters only")
        lines.append(f"\\newcommand{{\\{name}}}{{{value}}}")
    return atomic.write_text(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- inputs


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _read_jsonl(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def result_inputs(cfg: dict) -> dict[Path, str]:
    """Result files the macros read → what makes each one (for error messages)."""
    found: dict[Path, str] = {
        paths.data_summary(cfg): "`python -m convnext_tinyimagenet prepare-data --out <it>`",
    }
    for name in paths.experiments(cfg):
        run = paths.run_dir(cfg, name)
        train = f"`python -m convnext_tinyimagenet train --experiment {name}`"
        found[run / "metrics.jsonl"] = train
        found[run / "provenance.json"] = train
        found[run / "summary.json"] = (
            f"`python -m convnext_tinyimagenet evaluate --experiment {name}`"
        )
    found[paths.fidelity_summary(cfg)] = "the step that measures the input pipeline against PIL"
    if cfg["published"]["use_predictions"]:
        found[paths.published_summary(cfg)] = (
            "the step that recomputes the published predictions (set "
            "published.use_predictions: false to build without them)"
        )
    return found


def copied_inputs(cfg: dict) -> dict[str, tuple[Path, str]]:
    """File name in the generated folder → (source file, what makes it)."""
    tables, figures = paths.tables_dir(cfg), paths.figures_dir(cfg)
    table_maker = "the tables step (convnext_tinyimagenet.tables)"
    figure_maker = "the figures step (convnext_tinyimagenet.figures)"
    names = [*TABLES, *(f"classes_{name}" for name in paths.experiments(cfg))]
    found = {f"{name}.tex": (tables / f"{name}.tex", table_maker) for name in names}
    for name in ("learning_curves", "per_class_accuracy"):
        found[f"{name}.pdf"] = (figures / f"{name}.pdf", figure_maker)
    for name in ("correct_wrong", "class_grid"):
        source = figures / FIGURE_EXPERIMENT / f"{name}.pdf"
        found[f"{name}_{FIGURE_EXPERIMENT}.pdf"] = (source, figure_maker)
    return found


def paper_sources(cfg: dict) -> list[Path]:
    """Every file `make_paper_inputs` reads (a Snakemake rule's `input:`)."""
    return [*result_inputs(cfg), *(source for source, _ in copied_inputs(cfg).values())]


def _check_exist(needed: Iterable[tuple[Path, str]]) -> None:
    missing = [f"  {path} (made by {maker})" for path, maker in needed if not path.is_file()]
    if missing:
        lines = "\n".join(missing)
        raise MissingInputError(f"the paper needs {len(missing)} missing file(s):\n{lines}")


def make_paper_inputs(cfg: dict, generated_dir: str | Path | None = None) -> list[Path]:
    """Write `numbers.tex` and copy the tables and figures the paper includes.

    Args:
        cfg: the validated configuration whose `output_dir` holds the results.
        generated_dir: where to write; default `<output_dir>/paper/generated/`.

    Returns:
        The files written, `numbers.tex` first.

    Raises:
        MissingInputError: a needed file does not exist; names every missing one and its maker.
    """
    out = Path(generated_dir) if generated_dir is not None else paths.paper_generated(cfg)
    results = result_inputs(cfg)
    copies = copied_inputs(cfg)
    _check_exist([*results.items(), *copies.values()])
    names = paths.experiments(cfg)
    runs = {name: paths.run_dir(cfg, name) for name in names}
    published_path = paths.published_summary(cfg)
    values = macros(
        cfg,
        {name: _read_json(run / "summary.json") for name, run in runs.items()},
        _read_json(published_path) if published_path in results else None,
        _read_json(paths.data_summary(cfg)),
        provenance={name: _read_json(run / "provenance.json") for name, run in runs.items()},
        metrics={name: _read_jsonl(run / "metrics.jsonl") for name, run in runs.items()},
        fidelity=_read_json(paths.fidelity_summary(cfg)),
    )
    written = [write_macros(values, out / "numbers.tex")]
    for target, (source, _) in copies.items():
        written.append(_copy(source, out / target))
    return written


def _copy(source: Path, target: Path) -> Path:
    return atomic.write_with(target, lambda tmp: shutil.copyfile(source, tmp))


# --------------------------------------------------------------------------- build


def build_paper(
    work_dir: str | Path, source: str | Path | None = None, timeout: float = 600
) -> Path:
    """Run latexmk on `source` (default `paper/paper.tex`) in `work_dir`; return the PDF.

    The paper reads its inputs as `generated/...`, relative to `work_dir`; latexmk writes into
    `work_dir/build/`.

    Raises:
        PaperToolError: latexmk or pdflatex is not installed (the PDF is skipped).
        LatexError: LaTeX stopped; the message quotes the first error and names the log.
    """
    work_dir = Path(work_dir)
    source = Path(source) if source is not None else paths.PAPER_SOURCE / "paper.tex"
    missing = [tool for tool in ("latexmk", "pdflatex") if shutil.which(tool) is None]
    if missing:
        raise PaperToolError(
            f"{' and '.join(missing)} not found: the paper PDF was skipped. Install the TeX "
            f"tools that build it: apt-get install {TEX_PACKAGES}"
        )
    try:
        result = subprocess.run(
            (*LATEXMK_COMMAND, str(source.resolve())),
            cwd=work_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LatexError(f"latexmk ran past {timeout:.0f} s in {work_dir}") from exc
    pdf = work_dir / "build" / f"{source.stem}.pdf"
    if result.returncode != 0 or not pdf.is_file():
        raise LatexError(_failure_message(work_dir / "build" / f"{source.stem}.log", result))
    return pdf


def build_paper_pdf(cfg: dict, timeout: float = 600) -> Path:
    """Build the paper from `<output_dir>/paper/generated/` into `<output_dir>/paper.pdf`."""
    pdf = build_paper(paths.paper_dir(cfg), timeout=timeout)
    return _copy(pdf, paths.paper_pdf(cfg))


def first_tex_error(log: str, context: int = 3) -> str | None:
    """The first `! ...` error of a LaTeX log and up to `context` lines after it (where it is)."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("!"):
            quoted = [line]
            for following in lines[i + 1 : i + 1 + context]:
                if not following.strip():
                    break
                quoted.append(following)
            return "\n".join(quoted)
    return None


def _failure_message(log_path: Path, result: subprocess.CompletedProcess) -> str:
    log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.is_file() else ""
    error = first_tex_error(log)
    if error is None:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        return f"latexmk failed (exit {result.returncode}); its last output:\n{tail}"
    return f"LaTeX failed (exit {result.returncode}):\n{error}\nfull log: {log_path}"
