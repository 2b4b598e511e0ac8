"""Figures from result files, never a notebook's memory: `*_figure` builders return a Figure
(no pyplot state) for a notebook; `plot_*` read their rule's files and write its PNG and PDF."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.run_folder import read_metrics, read_predictions, read_summary

if TYPE_CHECKING:
    from convnext_tinyimagenet.data.store import Store

# Colours: train / validation curves, the two best-epoch markers, right / wrong predictions.
TRAIN_COLOUR = "tab:blue"
VAL_COLOUR = "tab:orange"
BEST_RERUN_COLOUR = "tab:green"
BEST_PUBLISHED_COLOUR = "tab:purple"
CORRECT_COLOUR = "tab:green"
WRONG_COLOUR = "tab:red"

# Columns of one published `epochs` row in config/study.yaml.
PUBLISHED_EPOCH_COLUMNS = ("train_loss", "val_loss", "train_acc", "val_acc")
_SPLITS = (("train", TRAIN_COLOUR, "train"), ("val", VAL_COLOUR, "validation"))  # column, legend
# quantity -> (panel title, y label)
_CURVE_LABELS = {"acc": ("accuracy", "accuracy (%)"), "loss": ("loss", "loss")}
_DASHED = {"linestyle": "--", "marker": "o", "markersize": 3}  # a published curve
_BEST_COLOURS = (BEST_RERUN_COLOUR, BEST_PUBLISHED_COLOUR)


def save_figure(fig: Figure, png: Path, pdf: Path, dpi: int) -> list[Path]:
    """Write `fig` to `png` (at `dpi`) and to `pdf`, each atomically; returns [png, pdf]."""
    png, pdf = Path(png), Path(pdf)
    # The temporary file ends in .tmp, so the format is given explicitly; no creation date in
    # the PDF, so rebuilding from the same files gives the same bytes.
    atomic.write_with(png, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    atomic.write_with(
        pdf, lambda tmp: fig.savefig(tmp, format="pdf", metadata={"CreationDate": None})
    )
    return [png, pdf]


# --------------------------------------------------------------------------- learning curves
def published_epochs(run: Mapping) -> pd.DataFrame:
    """The published per-epoch values of one run as a frame with an `epoch` column (1-based)."""
    frame = pd.DataFrame(list(run["epochs"]), columns=list(PUBLISHED_EPOCH_COLUMNS))
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    return frame


def best_epoch(metrics: pd.DataFrame) -> int | None:
    """The rerun's best epoch: the last row flagged `best` (the checkpoint that was kept)."""
    if "best" not in metrics:
        return None
    best = metrics.loc[metrics["best"].astype(bool), "epoch"]
    return int(best.iloc[-1]) if len(best) else None


def logged_as(run: Mapping | None, quantity: str) -> str:
    """How a published run logged its per-epoch `quantity` (published-recipe.md): losses as means
    of per-batch losses in both notebooks, accuracies as its claim was computed (`claim_metric`).
    Without a published run: exact."""
    if run is None:
        return "exact"
    return "batch_mean" if quantity == "loss" else run.get("claim_metric", "exact")


def _curve_panel(ax: Axes, metrics: pd.DataFrame, run: Mapping | None, quantity: str) -> None:
    """Train vs validation `quantity` and the best epochs: the rerun solid, the published `run`
    (if any) dashed. The rerun's curve is the kind the published run logged (:func:`logged_as`),
    so that the two compare like for like."""
    suffix = "_batch_mean" if logged_as(run, quantity) == "batch_mean" else ""
    published = None if run is None else published_epochs(run)
    for split, colour, name in _SPLITS:
        column = f"{split}_{quantity}"
        ax.plot(metrics["epoch"], metrics[column + suffix], color=colour, label=f"{name} (rerun)")
        if published is not None:
            label = f"{name} (published)"
            ax.plot(published["epoch"], published[column], color=colour, label=label, **_DASHED)
    best = (best_epoch(metrics), None if run is None else run.get("best_epoch"))
    for epoch, colour, who in zip(best, _BEST_COLOURS, ("rerun", "published"), strict=True):
        if epoch is not None:
            label = f"best epoch ({who}): {epoch}"
            ax.axvline(epoch, color=colour, linestyle="--", linewidth=1, label=label)
    title, ylabel = _CURVE_LABELS[quantity]
    ylabel = f"{ylabel}, mean of per-batch values" if suffix else ylabel
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    # Epochs are whole numbers; a run of 3 epochs should not get ticks at 1.5 and 2.5.
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def learning_curves_figure(
    metrics: Mapping[str, pd.DataFrame],
    published: Mapping[str, Mapping] | None = None,
    titles: Mapping[str, str] | None = None,
) -> Figure:
    """Accuracy and loss per epoch, train vs validation, one row (subfigure) per experiment.

    `metrics` maps experiment name -> its metrics.jsonl (:func:`read_metrics`), `published` ->
    its config `published.runs` entry (overlaid where present), `titles` -> row title (default:
    the name).
    """
    published, titles = published or {}, titles or {}
    fig = Figure(figsize=(11, 3.9 * len(metrics)), layout="constrained")
    rows = np.atleast_1d(fig.subfigures(len(metrics), 1))
    for row, (name, frame) in zip(rows, metrics.items(), strict=True):
        axes = row.subplots(1, 2)
        for ax, quantity in zip(axes, ("acc", "loss"), strict=True):
            _curve_panel(ax, frame, published.get(name), quantity)
        axes[0].legend(fontsize="small")
        row.suptitle(titles.get(name, name), fontweight="bold")
    return fig


def plot_learning_curves(
    metrics: Mapping[str, Path],
    png: Path,
    pdf: Path,
    *,
    published: Mapping[str, Mapping],
    titles: Mapping[str, str],
    dpi: int,
) -> list[Path]:
    """The learning curves of every run (experiment name -> metrics.jsonl, in row order), each
    with the `published` run of the same name overlaid."""
    frames = {name: read_metrics(path) for name, path in metrics.items()}
    return save_figure(learning_curves_figure(frames, published, titles), png, pdf, dpi)


# --------------------------------------------------------------------------- image grids
def pick_correct_wrong(
    predictions: pd.DataFrame, n: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The notebooks' draw: ``sample(n, random_state=seed)`` on the correct and the wrong rows;
    a subset with fewer than `n` rows is taken whole, in file order."""
    correct = predictions["correct"].astype(bool)
    right, wrong = predictions[correct], predictions[~correct]
    return tuple(s.sample(n, random_state=seed) if len(s) >= n else s for s in (right, wrong))


def _blank_grid(fig: Figure, nrows: int, ncols: int) -> np.ndarray:
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    return axes


def _draw_prediction(
    ax: Axes, row: pd.Series, images: np.ndarray, classes: Sequence[str], colour: str = "black"
) -> None:
    """The image of one predictions.csv row (its `index` in `images`), titled true / predicted
    class, without ticks or spines."""
    ax.set_axis_on()
    ax.imshow(images[int(row["index"])], interpolation="nearest")
    title = f"true: {classes[int(row['label'])]}\npred: {classes[int(row['prediction'])]}"
    ax.set_title(title, fontsize=7, color=colour)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def correct_wrong_figure(
    predictions: pd.DataFrame, images: np.ndarray, classes: Sequence[str], n: int, seed: int
) -> Figure:
    """A 2 x n grid: `n` correctly (top) and `n` wrongly classified validation images.

    `images` are the store's uint8 validation images, label i is `classes[i]`, and `seed` is the
    :func:`pick_correct_wrong` draw's (the notebooks' 42).
    """
    fig = Figure(figsize=(1.45 * n + 0.6, 4.2), layout="constrained")
    axes = _blank_grid(fig, 2, n)
    picks = pick_correct_wrong(predictions, n, seed)
    for ax_row, subset, label in zip(axes, picks, ("correct", "wrong"), strict=True):
        if subset.empty:
            ax_row[0].text(0, 0.5, f"no {label} predictions", transform=ax_row[0].transAxes)
            continue
        for ax, (_, row) in zip(ax_row, subset.iterrows(), strict=False):
            _draw_prediction(ax, row, images, classes)
        ax_row[0].set_ylabel(f"{label} ({len(subset)})", fontsize=10, fontweight="bold")
    return fig


def plot_correct_wrong(
    predictions: Path, store: Store, png: Path, pdf: Path, *, samples: int, seed: int, dpi: int
) -> list[Path]:
    """`samples` correctly and wrongly classified validation images of one run (config
    `figures.samples`, `figures.sample_seed`); `store` is the data the predictions were made on."""
    frame = read_predictions(predictions)
    fig = correct_wrong_figure(frame, store.val.images, store.classes, int(samples), int(seed))
    return save_figure(fig, png, pdf, dpi)


def pick_class_examples(predictions: pd.DataFrame, n_classes: int, seed: int) -> pd.DataFrame:
    """One prediction row for each class 0..n_classes-1 that has one: one ``default_rng(seed)``
    draws, in label order, an integer position among that class's rows (file order)."""
    rng = np.random.default_rng(seed)
    picks = []
    for label in range(n_classes):
        rows = predictions[predictions["label"] == label]
        if len(rows):
            picks.append(rows.iloc[int(rng.integers(len(rows)))])
    return pd.DataFrame(picks)


def class_grid_figure(
    predictions: pd.DataFrame,
    images: np.ndarray,
    classes: Sequence[str],
    n_classes: int,
    seed: int,
) -> Figure:
    """One validation image for each class 0..n_classes-1, in at most 8 columns, titled true /
    predicted class in green (correct) or red (wrong). The notebooks drew the images unseeded;
    here the draw is :func:`pick_class_examples` with `seed`."""
    ncols = max(1, min(8, n_classes))
    nrows = max(1, -(-n_classes // ncols))
    fig = Figure(figsize=(1.45 * ncols + 0.4, 1.9 * nrows + 0.2), layout="constrained")
    axes = _blank_grid(fig, nrows, ncols).ravel()
    picks = pick_class_examples(predictions, n_classes, seed)
    for ax, (_, row) in zip(axes, picks.iterrows(), strict=False):
        colour = CORRECT_COLOUR if bool(row["correct"]) else WRONG_COLOUR
        _draw_prediction(ax, row, images, classes, colour)
    return fig


def plot_class_grid(
    predictions: Path, store: Store, png: Path, pdf: Path, *, classes: int, seed: int, dpi: int
) -> list[Path]:
    """One validation image per class of one run: the first `classes` (`figures.grid_classes`,
    at most the store's), drawn with `seed` (`figures.grid_seed`)."""
    frame = read_predictions(predictions)
    n_classes = min(int(classes), len(store.classes))
    fig = class_grid_figure(frame, store.val.images, store.classes, n_classes, int(seed))
    return save_figure(fig, png, pdf, dpi)


# --------------------------------------------------------------------------- per-class accuracy
def per_class_difference(first: Mapping[str, float], second: Mapping[str, float]) -> pd.DataFrame:
    """Per-class accuracy of two runs over their common classes, `difference` = second - first,
    sorted by difference, then class name."""
    common = sorted(set(first) & set(second))
    rows = [(c, float(first[c]), float(second[c])) for c in common]
    frame = pd.DataFrame(rows, columns=["class", "first", "second"])
    frame["difference"] = frame["second"] - frame["first"]
    return frame.sort_values(["difference", "class"], kind="stable").reset_index(drop=True)


def per_class_accuracy_figure(
    per_class: Mapping[str, Mapping[str, float]], titles: Mapping[str, str] | None = None
) -> Figure:
    """Per-class validation accuracy of the second run against the first: a scatter against the
    diagonal and the sorted differences, with how many classes improved, worsened or tied.

    `per_class` maps run name -> summary.json `per_class`, `titles` -> axis label (default: the
    name). Raises ValueError with fewer than two runs, or none of their classes in common.
    """
    if len(per_class) < 2:
        raise ValueError("the per-class comparison needs two runs")
    (first_name, first), (second_name, second) = list(per_class.items())[:2]
    frame = per_class_difference(first, second)
    if frame.empty:
        raise ValueError(f"{first_name} and {second_name} have no class in common")
    labels = tuple((titles or {}).get(n, n) for n in (first_name, second_name))
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    scatter_ax, diff_ax = fig.subplots(1, 2, width_ratios=[1, 1.4])
    _scatter_panel(scatter_ax, frame, *labels)
    _difference_panel(diff_ax, frame["difference"], *labels)
    return fig


def _scatter_panel(ax: Axes, frame: pd.DataFrame, first: str, second: str) -> None:
    # Per-class accuracies take few values (50 images a class: steps of 2 %), so points overlap;
    # transparency shows where they pile up.
    ax.scatter(frame["first"], frame["second"], s=14, alpha=0.5, color=TRAIN_COLOUR)
    ax.plot([0, 100], [0, 100], color="grey", linestyle="--", linewidth=1, label="y = x")
    ax.set(xlim=(-2, 102), ylim=(-2, 102), aspect="equal")
    ax.set_xlabel(f"{first}: accuracy (%)")
    ax.set_ylabel(f"{second}: accuracy (%)")
    ax.set_title(f"per-class accuracy, {len(frame)} classes")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)


def _difference_panel(ax: Axes, difference: pd.Series, first: str, second: str) -> None:
    better, worse = int((difference > 0).sum()), int((difference < 0).sum())
    colours = np.where(
        difference > 0, CORRECT_COLOUR, np.where(difference < 0, WRONG_COLOUR, "grey")
    )
    ax.bar(np.arange(len(difference)), difference, width=1.0, color=colours)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("class (sorted by difference)")
    ax.set_ylabel(f"{second} − {first} (points)")
    ax.set_title(f"improved {better}, worsened {worse}, tied {len(difference) - better - worse}")
    ax.set_xlim(-0.5, len(difference) - 0.5)
    ax.grid(axis="y", alpha=0.3)


def plot_per_class_accuracy(
    summaries: Mapping[str, Path], png: Path, pdf: Path, *, dpi: int
) -> list[Path]:
    """The per-class accuracy of the second run against the first (run name -> summary.json)."""
    per_class = {name: read_summary(path)["per_class"] for name, path in summaries.items()}
    return save_figure(per_class_accuracy_figure(per_class), png, pdf, dpi)
