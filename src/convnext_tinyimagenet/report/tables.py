"""Tables built from result files and the config, written as Markdown and LaTeX (booktabs).

Each table is a small ``pd.DataFrame`` of strings, written by :func:`save_table` to a Markdown
file (a GitHub pipe table) and a LaTeX file (a bare ``tabular`` with
``\\toprule``/``\\midrule``/``\\bottomrule``; the paper wraps it in its own float). Both writers
are hand-made so that nothing depends on ``tabulate`` or pandas' LaTeX styler. The ``make_*``
functions take the files they read and write (the workflow's rules name them) and the config
values they use.

Tables: ``results`` (published claim, published predictions, this rerun), ``classes_<run>``
(top and bottom classes), ``recipe`` (every hyperparameter, from the config) and
``discrepancies`` (README vs notebooks, from the config).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.numbers import NA, or_na, pct
from convnext_tinyimagenet.run_folder import read_summary, require

PUBLISHED_MADE_BY = "`snakemake summarize_published`; or set published.use_predictions=false"

# One LaTeX replacement per special character, applied in a single pass so that the backslashes
# a replacement introduces are not escaped again.
_LATEX_SPECIALS = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    # Not special to LaTeX, but OT1-encoded fonts print them as other glyphs (">" as "¿").
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIALS))
# One column of a tabular spec: l, c, r, or a paragraph column such as p{3cm}.
_COLUMN_SPEC = re.compile(r"[lcr]|[pmb]\{[^{}]*\}")
_MARKDOWN_RULE = {"l": ":---", "c": ":---:", "r": "---:"}


# --------------------------------------------------------------------------- writers


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters ``& % $ # _ { } ~ ^ \\`` (and ``< > |``) in `text`."""
    return _LATEX_PATTERN.sub(lambda m: _LATEX_SPECIALS[m.group()], text)


def parse_align(align: str) -> list[str]:
    """Split a tabular column spec ("lrr", "lp{4cm}r") into one entry per column.

    Raises:
        ValueError: if `align` holds anything but l, c, r and p/m/b{width} columns.
    """
    columns = _COLUMN_SPEC.findall(align)
    if "".join(columns) != align:
        raise ValueError(f"unsupported column spec {align!r}: use l, c, r or p{{width}}")
    return columns


def default_align(frame: pd.DataFrame) -> str:
    """Numbers right-aligned, everything else left-aligned."""
    return "".join(
        "r"
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        else "l"
        for c in frame.columns
    )


def format_cell(value: object) -> str:
    """A cell as text: None/NaN empty, booleans yes/no, everything else ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _rows(frame: pd.DataFrame) -> list[list[str]]:
    return [[format_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]


def markdown_table(frame: pd.DataFrame, align: str | None = None) -> str:
    """`frame` as a GitHub pipe table (header, alignment rule, one line per row)."""
    columns = parse_align(align or default_align(frame))
    _check_width(frame, columns)

    def line(cells: Iterable[str]) -> str:
        # A pipe inside a cell would end it; GitHub reads \| as a literal pipe.
        return "| " + " | ".join(c.replace("|", r"\|").replace("\n", " ") for c in cells) + " |"

    rules = [_MARKDOWN_RULE.get(c[0], ":---") for c in columns]  # p{..} columns read left
    lines = [line(map(str, frame.columns)), "|" + "|".join(rules) + "|"]
    lines += [line(row) for row in _rows(frame)]
    return "\n".join(lines) + "\n"


def latex_table(frame: pd.DataFrame, align: str | None = None) -> str:
    """`frame` as a booktabs ``tabular`` (no float around it), every cell LaTeX-escaped.

    Cells of paragraph columns (p/m/b{width}) are set ragged right: justified narrow columns
    stretch the spaces between words. Without the array package that takes a ``\\raggedright``
    in each such cell, and rows then end in ``\\tabularnewline``, since ``\\raggedright``
    redefines ``\\\\`` inside the cell that ends the row.
    """
    spec = align or default_align(frame)
    columns = parse_align(spec)
    _check_width(frame, columns)
    ragged = [c[0] in "pmb" for c in columns]
    end = r" \tabularnewline" if any(ragged) else r" \\"

    def line(cells: Iterable[str]) -> str:
        escaped = [latex_escape(c).replace("\n", " ") for c in cells]
        text = " & ".join(
            rf"\raggedright {c}" if r and c else c for c, r in zip(escaped, ragged, strict=True)
        )
        # After the previous row's \\, a leading "[" would be read as its optional argument.
        return ("{}" + text if text.startswith("[") else text) + end

    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", line(map(str, frame.columns))]
    lines += [r"\midrule", *(line(row) for row in _rows(frame)), r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _check_width(frame: pd.DataFrame, columns: list[str]) -> None:
    if len(columns) != len(frame.columns):
        raise ValueError(f"{len(columns)} column specs for {len(frame.columns)} columns")


def save_table(frame: pd.DataFrame, md: Path, tex: Path, *, align: str | None = None) -> list[Path]:
    """Write `frame` as Markdown to `md` and as LaTeX to `tex`, each atomically.

    Args:
        frame: the table; column names are the header, cells are written with ``str``.
        md, tex: the files to write.
        align: a tabular column spec, one of l/c/r/p{width} per column; default: numeric
            columns right, others left. Markdown reads p{width} as left.

    Returns:
        The Markdown and the LaTeX path.
    """
    md, tex = Path(md), Path(tex)
    atomic.write_text(md, markdown_table(frame, align))
    atomic.write_text(tex, latex_table(frame, align))
    return [md, tex]


def write_table(frame: pd.DataFrame, stem: Path, *, align: str | None = None) -> list[Path]:
    """:func:`save_table` to `<stem>.md` and `<stem>.tex`."""
    stem = Path(stem)
    return save_table(frame, stem.with_suffix(".md"), stem.with_suffix(".tex"), align=align)


# --------------------------------------------------------------------------- results


def read_published_summary(path: Path | None) -> dict | None:
    """The published summary JSON at `path`; None without one (published predictions unused).

    Raises:
        ResultFileError: if `path` is given but missing.
    """
    if path is None:
        return None
    return read_summary(require(path, made_by=PUBLISHED_MADE_BY))


def _published_cell(published: Mapping | None, name: str) -> str:
    run = (published or {}).get(name)
    if run is None:
        return NA
    return f"{pct(run['accuracy'])} ({pct(run['accuracy_batch_mean'])})"


def _rerun_cell(summary: Mapping) -> str:
    low, high = summary["wilson95"]
    return f"{pct(summary['accuracy'])} [{pct(low)}, {pct(high)}]"


def results_frame(
    summaries: Mapping[str, Mapping],
    published: Mapping | None,
    claims: Mapping[str, float],
    titles: Mapping[str, str],
) -> pd.DataFrame:
    """One row per experiment: published claim, published predictions, this rerun.

    Args:
        summaries: experiment name -> its summary.json.
        published: the published summary JSON (run -> `accuracy`, `accuracy_batch_mean`), or None
            when the published predictions are not used.
        claims: published run name -> its claim (%); an experiment without one reads n/a.
        titles: experiment name -> its title, the row's label.

    Returns:
        Columns: run, claim (%), exact (batch-mean) accuracy of the published predictions (%),
        this rerun's accuracy with its Wilson 95 % interval (%), n, epochs, best epoch; "n/a"
        where a value does not exist.
    """
    rows = []
    for name, summary in summaries.items():
        claim = claims.get(name)
        rows.append(
            {
                "Run": titles.get(name, name),
                "Claim (%)": NA if claim is None else pct(claim),
                "Published CSV (%): exact (batch mean)": _published_cell(published, name),
                "Rerun (%) [Wilson 95 %]": _rerun_cell(summary),
                "n": str(summary["n"]),
                "Epochs": or_na(summary.get("epochs")),
                "Best epoch": or_na(summary.get("best_epoch")),
            }
        )
    return pd.DataFrame(rows)


def make_results_table(
    summaries: Mapping[str, Path],
    published: Path | None,
    md: Path,
    tex: Path,
    *,
    claims: Mapping[str, float],
    titles: Mapping[str, str],
) -> list[Path]:
    """The results table: every experiment's summary.json against the published figures.

    Args:
        summaries: experiment name -> its summary.json, in the order of the rows.
        published: the published summary JSON, or None when the published predictions are not
            used (`published.use_predictions`).
        md, tex: the files to write.
        claims, titles: as in :func:`results_frame`.
    """
    read = {name: read_summary(path) for name, path in summaries.items()}
    frame = results_frame(read, read_published_summary(published), claims, titles)
    # The run titles are long: a paragraph column lets them wrap in the paper.
    align = r"p{0.25\linewidth}rrrrrr"
    return save_table(frame, md, tex, align=align)


# --------------------------------------------------------------------------- classes


def class_frame(summary: Mapping, k: int = 5) -> pd.DataFrame:
    """The `k` best and `k` worst classes by per-class validation accuracy.

    Classes are ranked by accuracy, highest first, ties by class name; rank 1 is the best. The
    top rows are ranks 1..k, the bottom rows the last k ranks (worst last); with fewer than 2k
    classes the bottom group holds only the classes not already in the top group.

    Args:
        summary: a summary.json (its `per_class`: class name -> accuracy %).
        k: classes per group.

    Returns:
        Columns: Group ("top"/"bottom"), Rank, Class, Accuracy (%).
    """
    ranked = sorted(summary["per_class"].items(), key=lambda item: (-item[1], item[0]))
    top = range(min(k, len(ranked)))
    bottom = range(max(len(top), len(ranked) - k), len(ranked))
    rows = [("top", i) for i in top] + [("bottom", i) for i in bottom]
    return pd.DataFrame(
        [
            {
                "Group": group,
                "Rank": str(i + 1),
                "Class": ranked[i][0],
                "Accuracy (%)": pct(ranked[i][1]),
            }
            for group, i in rows
        ],
        columns=["Group", "Rank", "Class", "Accuracy (%)"],
    )


def make_class_table(summary: Path, md: Path, tex: Path) -> list[Path]:
    """The top-5 and bottom-5 classes of the run whose summary.json is `summary`."""
    return save_table(class_frame(read_summary(summary)), md, tex, align="lrlr")


# --------------------------------------------------------------------------- recipe


def _value(value: object) -> str:
    """A config value as table text: null -> "none", booleans yes/no, mappings k=v."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value)
    return str(value)


def _scheduler(scheduler: Mapping | None) -> str:
    if not scheduler:
        return "none"
    rest = {k: v for k, v in scheduler.items() if k != "name"}
    return f"{scheduler['name']} ({_value(rest)})"


def _group_names(experiments: Mapping[str, Mapping]) -> list[str]:
    """Trainable group names of all experiments, in order of first appearance."""
    names: list[str] = []
    for exp in experiments.values():
        names += [g["name"] for g in exp["trainable"] if g["name"] not in names]
    return names


def _group_cell(exp: Mapping, group: str) -> str:
    for g in exp["trainable"]:
        if g["name"] == group:
            return f"{_value(g['lr'])} / {_value(g['weight_decay'])} ({_value(g['modules'])})"
    return "frozen"


def _recipe_column(exp: Mapping, groups: list[str]) -> dict[str, str]:
    """Row label -> value for the settings of one experiment's own config section."""
    model, train, augment = exp["model"], exp["train"], exp["augment"]
    stopping = train["early_stopping"]
    column = {
        "Pretrained weights (timm tag)": model["tag"],
        "Pretrained": _value(model["pretrained"]),
        "Head": model["head"],
        "Attention dropout": _value(model.get("attention_dropout", NA)),
        "Output dropout": _value(model.get("output_dropout", NA)),
    }
    column |= {f"AdamW lr / weight decay: {group}": _group_cell(exp, group) for group in groups}
    column |= {
        "LR scheduler (per epoch)": _scheduler(train["scheduler"]),
        "Label smoothing": _value(train["label_smoothing"]),
        "Precision": train["precision"],
        "Batch size (train / eval)": f"{train['batch_size']} / {train['eval_batch_size']}",
        "Early stopping: monitor": stopping["monitor"],
        "Early stopping: patience": _value(stopping["patience"]),
        "Early stopping: min_delta": _value(stopping["min_delta"]),
        "Early stopping: max epochs": _value(stopping["max_epochs"]),
        "RandAugment": _value(augment["randaugment"]),
        "RandomErasing": _value(augment["random_erasing"]),
        "Augmented at": _augment_at(augment),
    }
    return column


def _shared_rows(data: Mapping, normalize: Mapping, seed: int) -> dict[str, str]:
    """Row label -> value for the settings all experiments share."""
    return {
        "Image size / input size": f"{data['image_size']} / {data['input_size']}",
        "Normalize mean": _value(normalize["mean"]),
        "Normalize std": _value(normalize["std"]),
        "Data source": _data_source(data),
        "Seed": _value(seed),
    }


def _augment_at(augment: Mapping) -> str:
    if not (augment.get("randaugment") or augment.get("random_erasing")):
        return NA
    at = augment.get("at", "input")
    return "input size (as published)" if at == "input" else f"{at} size (option)"


def _data_source(data: Mapping) -> str:
    source = data["source"]
    if source == "hf":
        return f"hf: {data['hf']['id']}@{data['hf']['revision']}"
    if source == "folder":
        return f"folder: {data['folder']['root']}"
    return f"{source}: {_value(data.get(source, {}))}"


def recipe_frame(
    experiments: Mapping[str, Mapping], data: Mapping, normalize: Mapping, seed: int
) -> pd.DataFrame:
    """Every hyperparameter of every experiment side by side, all read from the config.

    Rows are settings (only their labels are written here); columns are the experiments in
    config order. Data (`data`), normalisation (`normalize`) and `seed` are shared by all
    experiments and repeated. Frozen groups read "frozen"; settings an experiment lacks read
    "n/a".
    """
    groups = _group_names(experiments)
    shared = _shared_rows(data, normalize, seed)
    columns = {name: _recipe_column(exp, groups) | shared for name, exp in experiments.items()}
    frame = pd.DataFrame(columns)
    frame.index.name = "Setting"
    return frame.reset_index()


def make_recipe_table(
    md: Path,
    tex: Path,
    *,
    experiments: Mapping[str, Mapping],
    data: Mapping,
    normalize: Mapping,
    seed: int,
) -> list[Path]:
    """The hyperparameters of all experiments (the config sections of :func:`recipe_frame`)."""
    frame = recipe_frame(experiments, data, normalize, seed)
    return save_table(frame, md, tex, align="l" * len(frame.columns))


# --------------------------------------------------------------------------- discrepancies


def discrepancies_frame(discrepancies: Sequence[Mapping]) -> pd.DataFrame:
    """README vs notebooks, one row per entry of the config's `discrepancies`."""
    return pd.DataFrame(
        [
            {
                "Topic": d["topic"],
                "README says": d["readme"],
                "Notebooks ran": d["ran"],
                "Affects": ", ".join(d["affects"]),
            }
            for d in discrepancies
        ],
        columns=["Topic", "README says", "Notebooks ran", "Affects"],
    )


def make_discrepancies_table(
    md: Path, tex: Path, *, discrepancies: Sequence[Mapping]
) -> list[Path]:
    """The discrepancies table; paragraph columns so long sentences wrap in the paper."""
    # Widths sum to 0.85 of the line; the column padding (8 x 6 pt) takes most of the rest.
    align = r"p{0.13\linewidth}p{0.27\linewidth}p{0.35\linewidth}p{0.10\linewidth}"
    return save_table(discrepancies_frame(discrepancies), md, tex, align=align)
