"""The paper's tables, built from result files and the config, written as Markdown and LaTeX.

Each table is a small ``pd.DataFrame`` of strings; :func:`save_table` writes it as a GitHub pipe
table and a bare booktabs ``tabular`` (the paper wraps it in its own float).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.numbers import NA, or_na, pct
from convnext_tinyimagenet.run_folder import read_summary, require

PUBLISHED_MADE_BY = "`snakemake summarize_published`; or set published.use_predictions=false"

# The one LaTeX escape, of table cells (the Styler's formatter) and of the paper's macros: one
# replacement per character, in a single pass, so that the backslashes a replacement introduces
# are not escaped again. Unlike pandas' escape="latex" it also replaces "<", ">" and "|", which
# the paper's OT1 fonts print as other glyphs (">" as "¿"), and the minus sign U+2212, which
# pdfLaTeX's UTF-8 input does not know.
_TEXT_NAMES = ["asciitilde", "asciicircum", "backslash", "less", "greater", "bar"]
_LATEX_SPECIALS = {c: "\\" + c for c in "&%$#_{}"}
_LATEX_SPECIALS |= {c: rf"\text{name}{{}}" for c, name in zip("~^\\<>|", _TEXT_NAMES, strict=True)}
_LATEX_SPECIALS["−"] = r"\ensuremath{-}"
_LATEX_PATTERN = re.compile("|".join(map(re.escape, _LATEX_SPECIALS)))
# One column of a tabular spec: l, c, r, or a paragraph column such as p{3cm}.
_COLUMN_SPEC = re.compile(r"[lcr]|[pmb]\{[^{}]*\}")
_MARKDOWN_ALIGN = {"l": "left", "c": "center", "r": "right"}  # p{..} columns read left


def latex_escape(text: str) -> str:
    """`text` as LaTeX source that prints it literally: ``a_b`` -> ``a\\_b``."""
    return _LATEX_PATTERN.sub(lambda m: _LATEX_SPECIALS[m.group()], text)


def _latex_cell(text: str) -> str:
    text = latex_escape(text)
    # After \toprule or a row's \\, a leading "[" would be read as their optional argument.
    return "{}" + text if text.startswith("[") else text


def _columns(frame: pd.DataFrame, align: str | None) -> list[str]:
    """One spec per column of `align` (default: numbers right, the rest left), checked."""
    if align is None:
        align = "".join("r" if frame[c].dtype.kind in "iuf" else "l" for c in frame.columns)
    columns = _COLUMN_SPEC.findall(align)
    if "".join(columns) != align or len(columns) != len(frame.columns):
        raise ValueError(
            f"column spec {align!r} for {len(frame.columns)} columns: use one l, c, r or "
            "p{width} per column"
        )
    return columns


def markdown(frame: pd.DataFrame, align: str | None = None) -> str:
    """`frame` as a GitHub pipe table; `align` as in :func:`save_table`."""
    columns = _columns(frame, align)
    # A pipe inside a cell would end it; GitHub reads \| as a literal pipe.
    cells = frame.fillna("").astype(str).map(lambda cell: cell.replace("|", r"\|"))
    colalign = [_MARKDOWN_ALIGN.get(c[0], "left") for c in columns]
    # disable_numparse: "86.30" stays "86.30"
    return cells.to_markdown(index=False, colalign=colalign, disable_numparse=True) + "\n"


def latex(frame: pd.DataFrame, align: str | None = None) -> str:
    """`frame` as a booktabs ``tabular`` (no float around it); `align` as in :func:`save_table`."""
    ragged = r">{\raggedright\arraybackslash}"
    spec = "".join(c if c in "lcr" else ragged + c for c in _columns(frame, align))
    styler = frame.fillna("").astype(str).style.hide(axis="index")
    styler = styler.format(_latex_cell).format_index(_latex_cell, axis="columns")
    return styler.to_latex(column_format=spec, hrules=True)


def save_table(frame: pd.DataFrame, md: Path, tex: Path, *, align: str | None = None) -> list[Path]:
    """Write `frame` as Markdown to `md` and as LaTeX to `tex`, each atomically; missing cells
    are empty. `align`: one l/c/r/p{width} per column (default: numeric columns right, others
    left); paragraph columns are set ragged right, and Markdown reads them as left."""
    return [
        atomic.write_text(md, markdown(frame, align)),
        atomic.write_text(tex, latex(frame, align)),
    ]


# --------------------------------------------------------------------------- results
def read_published_summary(path: Path | None) -> dict | None:
    """The published summary JSON at `path`; None without one (published predictions unused)."""
    return None if path is None else read_summary(require(path, made_by=PUBLISHED_MADE_BY))


def _published_cell(published: Mapping | None, name: str) -> str:
    run = (published or {}).get(name)
    return NA if run is None else f"{pct(run['accuracy'])} ({pct(run['accuracy_batch_mean'])})"


def results_frame(
    summaries: Mapping[str, Mapping],
    published: Mapping | None,
    claims: Mapping[str, float],
    titles: Mapping[str, str],
    seeds: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """One row per experiment: the published claim, the published predictions (None: not used),
    this rerun (its run of `seeds[name]`); an experiment without a claim reads n/a, without a
    title its name."""
    rows = []
    for name, summary in summaries.items():
        claim, (low, high) = claims.get(name), summary["wilson95"]
        row = {
            "Run": titles.get(name, name),
            "Seed": or_na((seeds or {}).get(name)),
            "Claim (%)": NA if claim is None else pct(claim),
            "Published CSV (%): exact (batch mean)": _published_cell(published, name),
            "Rerun (%) [Wilson 95 %]": f"{pct(summary['accuracy'])} [{pct(low)}, {pct(high)}]",
            "n": str(summary["n"]),
            "Epochs": or_na(summary.get("epochs")),
            "Best epoch": or_na(summary.get("best_epoch")),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def make_results_table(
    summaries: Mapping[str, Path],
    published: Path | None,
    md: Path,
    tex: Path,
    *,
    claims: Mapping[str, float],
    titles: Mapping[str, str],
    seeds: Mapping[str, int] | None = None,
) -> list[Path]:
    """The results table from each experiment's summary.json (in row order) and the published
    summary (None: `published.use_predictions` is false); see :func:`results_frame`."""
    read = {name: read_summary(path) for name, path in summaries.items()}
    frame = results_frame(read, read_published_summary(published), claims, titles, seeds)
    # The run titles are long: a paragraph column lets them wrap in the paper.
    return save_table(frame, md, tex, align=r"p{0.25\linewidth}rrrrrrr")


# --------------------------------------------------------------------------- classes
def class_frame(summary: Mapping, k: int = 5) -> pd.DataFrame:
    """The `k` best and `k` worst classes of a summary.json's `per_class` accuracy, ties by class
    name; the bottom rows hold only classes below the best accuracy and not in the top rows."""
    ranked = sorted(summary["per_class"].items(), key=lambda item: (-item[1], item[0]))
    top = range(min(k, len(ranked)))
    last = range(max(len(top), len(ranked) - k), len(ranked))
    bottom = [i for i in last if ranked[i][1] < ranked[0][1]]
    rows = [("top", i) for i in top] + [("bottom", i) for i in bottom]
    return pd.DataFrame(
        [[group, str(i + 1), ranked[i][0], pct(ranked[i][1])] for group, i in rows],
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


def _group_cell(exp: Mapping, group: str) -> str:
    for g in exp["trainable"]:
        if g["name"] == group:
            return f"{_value(g['lr'])} / {_value(g['weight_decay'])} ({_value(g['modules'])})"
    return "frozen"


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


def monitored(train: Mapping) -> str:
    """The metric early stopping watches, and on which images: the validation images, as the
    notebooks did, or training images held out (`train.selection: holdout`)."""
    monitor = train["early_stopping"]["monitor"]
    if train["selection"] == "holdout":
        per_class = train["holdout_per_class"]
        return f"{monitor} on {per_class} held-out training images per class"
    return f"{monitor} on the validation images"


def _recipe_column(exp: Mapping, groups: list[str]) -> dict[str, str]:
    """Setting -> value for one experiment's own config section."""
    model, train, augment = exp["model"], exp["train"], exp["augment"]
    stopping = train["early_stopping"]
    column = {
        "Variant of": _value(exp.get("from")),
        "Pretrained weights (timm tag)": model["tag"],
        "Pretrained": _value(model["pretrained"]),
        "Head": model["head"],
        "Attention dropout": _value(model.get("attention_dropout", NA)),
        "Output dropout": _value(model.get("output_dropout", NA)),
    }
    column |= {f"AdamW lr / weight decay: {group}": _group_cell(exp, group) for group in groups}
    return column | {
        "LR scheduler (per epoch)": _scheduler(train["scheduler"]),
        "Label smoothing": _value(train["label_smoothing"]),
        "Precision": train["precision"],
        "Batch size (train / eval)": f"{train['batch_size']} / {train['eval_batch_size']}",
        "Early stopping: monitor": monitored(train),
        "Early stopping: patience": _value(stopping["patience"]),
        "Early stopping: min_delta": _value(stopping["min_delta"]),
        "Early stopping: max epochs": _value(stopping["max_epochs"]),
        "RandAugment": _value(augment["randaugment"]),
        "RandomErasing": _value(augment["random_erasing"]),
        "Augmented at": _augment_at(augment),
    }


def _recipe_columns(
    experiments: Mapping[str, Mapping],
    data: Mapping,
    normalize: Mapping,
    seeds: Mapping[str, Sequence[int]],
) -> dict[str, dict[str, str]]:
    """Experiment -> setting -> cell: :func:`recipe_frame`'s columns."""
    names = (g["name"] for exp in experiments.values() for g in exp["trainable"])
    groups = list(dict.fromkeys(names))  # trainable group names, in order of first appearance
    shared = {
        "Image size / input size": f"{data['image_size']} / {data['input_size']}",
        "Normalize mean": _value(normalize["mean"]),
        "Normalize std": _value(normalize["std"]),
    }
    return {
        name: _recipe_column(exp, groups)
        | shared
        | {
            "Data source": _data_source(data | exp.get("data", {})),
            "Seeds": ", ".join(map(str, seeds.get(name, []))) or "not run",
        }
        for name, exp in experiments.items()
    }


def recipe_frame(
    experiments: Mapping[str, Mapping],
    data: Mapping,
    normalize: Mapping,
    seeds: Mapping[str, Sequence[int]],
) -> pd.DataFrame:
    """Every hyperparameter of every experiment given (the rule gives those that run) side by
    side, a column each in config order, all read from the resolved config: a variant's column
    holds its full settings and, in "Variant of", its parent (`from`; "none" for the others).
    Each column ends with its data source (its own `data.source`, else `data`'s) and `seeds`;
    the shared sizes and normalisation repeat in each."""
    columns = _recipe_columns(experiments, data, normalize, seeds)
    return pd.DataFrame(columns).rename_axis("Setting").reset_index()


VARIANT_COLUMNS = ["Variant", "Variant of", "Setting", "Recipe's value", "Variant's value"]


def variants_frame(
    experiments: Mapping[str, Mapping],
    parents: Mapping[str, Mapping],
    data: Mapping,
    normalize: Mapping,
    seeds: Mapping[str, Sequence[int]],
) -> pd.DataFrame:
    """One row per setting in which a variant among `experiments` differs from the recipe it
    varies (its `from`, whose section `parents` holds, run or not): everything else it
    inherits. A variant that changes nothing reads one row "nothing"."""
    rows = []
    for name, exp in experiments.items():
        if not exp.get("from"):
            continue
        parent = exp["from"]
        both = _recipe_columns({parent: parents[parent], name: exp}, data, normalize, seeds)
        changed = [
            [name, parent, setting, both[parent][setting], value]
            for setting, value in both[name].items()
            if setting != "Variant of" and value != both[parent][setting]
        ]
        rows += changed or [[name, parent, "nothing", NA, NA]]
    return pd.DataFrame(rows, columns=VARIANT_COLUMNS)


def make_recipe_table(
    md: Path,
    tex: Path,
    variants_md: Path,
    variants_tex: Path,
    *,
    experiments: Mapping[str, Mapping],
    parents: Mapping[str, Mapping],
    data: Mapping,
    normalize: Mapping,
    seeds: Mapping[str, Sequence[int]],
) -> list[Path]:
    """Two tables: every hyperparameter of each recipe that is no variant, side by side (the
    config sections of :func:`recipe_frame`), and each variant's changes to the recipe it
    varies (:func:`variants_frame`)."""
    recipes = {name: exp for name, exp in experiments.items() if not exp.get("from")}
    frame = recipe_frame(recipes, data, normalize, seeds)
    frame = frame.loc[frame["Setting"] != "Variant of"]  # "none" in every column
    variants = variants_frame(experiments, parents, data, normalize, seeds)
    return [
        *save_table(frame, md, tex, align="l" * len(frame.columns)),
        *save_table(variants, variants_md, variants_tex, align="l" * len(VARIANT_COLUMNS)),
    ]


# --------------------------------------------------------------------------- discrepancies
def discrepancies_frame(discrepancies: Sequence[Mapping]) -> pd.DataFrame:
    """README vs notebooks, one row per entry of the config's `discrepancies`, numbered D1, D2,
    ... (the verification table's "Affected by" names them so)."""
    rows = [
        [f"D{i}", d["topic"], d["readme"], d["ran"], ", ".join(d["affects"])]
        for i, d in enumerate(discrepancies, 1)
    ]
    return pd.DataFrame(rows, columns=["", "Topic", "README says", "Notebooks ran", "Affects"])


def make_discrepancies_table(
    md: Path, tex: Path, *, discrepancies: Sequence[Mapping]
) -> list[Path]:
    """The discrepancies table; paragraph columns so long sentences wrap in the paper."""
    # Widths sum to 0.82 of the line; the column padding (10 x 6 pt) takes most of the rest.
    align = r"lp{0.12\linewidth}p{0.26\linewidth}p{0.34\linewidth}p{0.10\linewidth}"
    return save_table(discrepancies_frame(discrepancies), md, tex, align=align)
