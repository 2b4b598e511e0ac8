"""Figures rebuilt from result files, never from a notebook's memory.

Inputs are the files a run writes (``metrics.jsonl``, ``predictions.csv``, ``summary.json``, read
through run_folder.py), the published per-epoch values in the config and, for the image
grids, the decoded data store. Two layers:

- ``*_figure`` builders take plain frames/arrays and return a ``matplotlib.figure.Figure`` (no
  pyplot state), so a notebook can display them;
- ``plot_*`` functions take the paths of the files they read and of the PNG and PDF they write
  (the workflow's rules name them), and the settings they use; they return the written paths.

The published figures these rebuild are listed in ../shared/reference/published-recipe.md
("Published figures").
"""

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

# Colours: train / validation curves, and the two best-epoch markers.
TRAIN_COLOUR = "tab:blue"
VAL_COLOUR = "tab:orange"
BEST_RERUN_COLOUR = "tab:green"
BEST_PUBLISHED_COLOUR = "tab:purple"
CORRECT_COLOUR = "tab:green"
WRONG_COLOUR = "tab:red"

# Columns of one published `epochs` row in config.yaml.
PUBLISHED_EPOCH_COLUMNS = ("train_loss", "val_loss", "train_acc", "val_acc")


def save_figure(fig: Figure, png: Path, pdf: Path, dpi: int) -> list[Path]:
    """Write `fig` to `png` (at `dpi`) and to `pdf`, each atomically.

    Returns:
        The two written paths, PNG first.
    """
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


def _curve_panel(
    ax: Axes,
    metrics: pd.DataFrame,
    published: pd.DataFrame | None,
    quantity: str,
    ylabel: str,
    metric: str = "exact",
) -> None:
    """Train vs validation `quantity` ("acc" or "loss"), rerun solid, published dashed.

    `metric` is how the published run logged it (``exact`` or ``batch_mean``); the rerun's
    curve is the same kind of figure, so that the two compare like for like.
    """
    suffix = "_batch_mean" if metric == "batch_mean" else ""
    for split, colour, name in (
        ("train", TRAIN_COLOUR, "train"),
        ("val", VAL_COLOUR, "validation"),
    ):
        column = f"{split}_{quantity}"
        ax.plot(metrics["epoch"], metrics[column + suffix], color=colour, label=f"{name} (rerun)")
        if published is not None:
            ax.plot(
                published["epoch"],
                published[column],
                color=colour,
                linestyle="--",
                marker="o",
                markersize=3,
                label=f"{name} (published)",
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{ylabel}, mean of per-batch values" if suffix else ylabel)
    # Epochs are whole numbers; a run of 3 epochs should not get ticks at 1.5 and 2.5.
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def logged_as(run: Mapping | None, quantity: str) -> str:
    """How a published run logged its per-epoch `quantity` (published-recipe.md): losses as
    means of per-batch losses in both notebooks; accuracies as its claim was computed (exact in
    the baseline, the mean of per-batch accuracies in the improved run). Without a published
    run: exact."""
    if run is None:
        return "exact"
    return "batch_mean" if quantity == "loss" else run.get("claim_metric", "exact")


def _best_epoch_lines(ax: Axes, rerun_best: int | None, published_best: int | None) -> None:
    """Dashed vertical lines at the rerun's and the published best epoch, in two colours."""
    for epoch, colour, who in (
        (rerun_best, BEST_RERUN_COLOUR, "rerun"),
        (published_best, BEST_PUBLISHED_COLOUR, "published"),
    ):
        if epoch is not None:
            ax.axvline(
                epoch,
                color=colour,
                linestyle="--",
                linewidth=1,
                label=f"best epoch ({who}): {epoch}",
            )


def learning_curves_figure(
    metrics: Mapping[str, pd.DataFrame],
    published: Mapping[str, Mapping] | None = None,
    titles: Mapping[str, str] | None = None,
) -> Figure:
    """Accuracy and loss per epoch, train vs validation, one row per experiment.

    Args:
        metrics: experiment name -> its metrics.jsonl as read by :func:`read_metrics` (columns
            `epoch`, `train_acc`, `val_acc`, `train_loss`, `val_loss`, `best`).
        published: experiment name -> its `published.runs` entry of the config (`epochs` rows of
            [train loss, val loss, train acc %, val acc %], `best_epoch`, `claim_metric`);
            overlaid dashed with markers where present, against the rerun's figures of the same
            kind (:func:`logged_as`).
        titles: experiment name -> row title (default: the name).

    Returns:
        A figure with one subfigure per experiment, each with an accuracy and a loss panel.
    """
    published = published or {}
    titles = titles or {}
    fig = Figure(figsize=(11, 3.9 * len(metrics)), layout="constrained")
    rows = np.atleast_1d(fig.subfigures(len(metrics), 1))
    for row, (name, frame) in zip(rows, metrics.items(), strict=True):
        run = published.get(name)
        pub = published_epochs(run) if run is not None else None
        acc_ax, loss_ax = row.subplots(1, 2)
        _curve_panel(acc_ax, frame, pub, "acc", "accuracy (%)", logged_as(run, "acc"))
        _curve_panel(loss_ax, frame, pub, "loss", "loss", logged_as(run, "loss"))
        for ax in (acc_ax, loss_ax):
            _best_epoch_lines(ax, best_epoch(frame), run.get("best_epoch") if run else None)
        acc_ax.set_title("accuracy")
        loss_ax.set_title("loss")
        acc_ax.legend(fontsize="small")
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
    """The learning curves of every run, published values overlaid, as PNG and PDF.

    Args:
        metrics: experiment name -> its metrics.jsonl, in the order of the figure's rows.
        png, pdf: the files to write.
        published: published run name -> its `published.runs` entry (`epochs`, `best_epoch`,
            `claim_metric`), drawn in the row of the experiment of the same name.
        titles: experiment name -> row title.
        dpi: resolution of the PNG.

    Returns:
        The written PNG and PDF paths.
    """
    frames = {name: read_metrics(path) for name, path in metrics.items()}
    fig = learning_curves_figure(frames, published, titles)
    return save_figure(fig, png, pdf, dpi)


# --------------------------------------------------------------------------- image grids


def pick_correct_wrong(
    predictions: pd.DataFrame, n: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The notebooks' draw: ``sample(n, random_state=seed)`` on the correct and the wrong rows.

    A subset with fewer than `n` rows is taken whole, in file order.
    """
    correct_mask = predictions["correct"].astype(bool)

    def draw(subset: pd.DataFrame) -> pd.DataFrame:
        return subset.sample(n, random_state=seed) if len(subset) >= n else subset

    return draw(predictions[correct_mask]), draw(predictions[~correct_mask])


def _image_axes(ax: Axes, image: np.ndarray, title: str, colour: str = "black") -> None:
    """One image with a small title, no ticks (the spines are hidden too)."""
    ax.imshow(image, interpolation="nearest")
    ax.set_title(title, fontsize=7, color=colour)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _true_pred_title(row: pd.Series, classes: Sequence[str]) -> str:
    return f"true: {classes[int(row['label'])]}\npred: {classes[int(row['prediction'])]}"


def correct_wrong_figure(
    predictions: pd.DataFrame,
    images: np.ndarray,
    classes: Sequence[str],
    n: int,
    seed: int,
) -> Figure:
    """`n` correctly and `n` wrongly classified validation images, titled true / predicted class.

    Args:
        predictions: a predictions.csv frame; its `index` column is the row in `images`.
        images: uint8 validation images (N, H, W, 3), in store order.
        classes: class names; label i is `classes[i]`.
        n: images per row.
        seed: pandas `random_state` of both draws (the notebooks' 42).

    Returns:
        A 2 x n grid: the correct row on top, the wrong row below.
    """
    fig = Figure(figsize=(1.45 * n + 0.6, 4.2), layout="constrained")
    axes = np.asarray(fig.subplots(2, n, squeeze=False))
    for ax_row, subset, label in zip(
        axes, pick_correct_wrong(predictions, n, seed), ("correct", "wrong"), strict=True
    ):
        for ax in ax_row:
            ax.set_axis_off()
        if subset.empty:
            ax_row[0].text(0, 0.5, f"no {label} predictions", transform=ax_row[0].transAxes)
            continue
        for ax, (_, row) in zip(ax_row, subset.iterrows(), strict=False):
            ax.set_axis_on()
            _image_axes(ax, images[int(row["index"])], _true_pred_title(row, classes))
        ax_row[0].set_ylabel(label, fontsize=10, fontweight="bold")
    return fig


def plot_correct_wrong(
    predictions: Path, store: Store, png: Path, pdf: Path, *, samples: int, seed: int, dpi: int
) -> list[Path]:
    """`samples` correctly and wrongly classified validation images of one run, as PNG and PDF.

    Args:
        predictions: the run's predictions.csv.
        store: the decoded data store the predictions were made on (validation images).
        png, pdf: the files to write.
        samples: images per row (`figures.samples`).
        seed: the draw's pandas `random_state` (`figures.sample_seed`).
        dpi: resolution of the PNG.
    """
    frame = read_predictions(predictions)
    fig = correct_wrong_figure(frame, store.val.images, store.classes, int(samples), int(seed))
    return save_figure(fig, png, pdf, dpi)


def pick_class_examples(predictions: pd.DataFrame, n_classes: int, seed: int) -> pd.DataFrame:
    """One prediction row for each class 0..n_classes-1, drawn with ``default_rng(seed)``.

    One generator serves all classes in label order, drawing an integer position among that
    class's rows (file order). Classes without a row are left out.
    """
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
    """One validation image for each class 0..n_classes-1, titled true / predicted class.

    A green title marks a correct prediction, a red one a wrong one. The notebooks drew the
    images unseeded; here the draw is :func:`pick_class_examples` with `seed`.

    Returns:
        A grid of at most 8 columns.
    """
    picks = pick_class_examples(predictions, n_classes, seed)
    ncols = max(1, min(8, n_classes))
    nrows = max(1, -(-n_classes // ncols))
    fig = Figure(figsize=(1.45 * ncols + 0.4, 1.9 * nrows + 0.2), layout="constrained")
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, (_, row) in zip(axes, picks.iterrows(), strict=False):
        ax.set_axis_on()
        colour = CORRECT_COLOUR if bool(row["correct"]) else WRONG_COLOUR
        _image_axes(ax, images[int(row["index"])], _true_pred_title(row, classes), colour)
    return fig


def plot_class_grid(
    predictions: Path, store: Store, png: Path, pdf: Path, *, classes: int, seed: int, dpi: int
) -> list[Path]:
    """One validation image per class 0..classes-1 of one run, as PNG and PDF.

    Args:
        predictions: the run's predictions.csv.
        store: the decoded data store the predictions were made on (validation images).
        png, pdf: the files to write.
        classes: classes drawn (`figures.grid_classes`), at most as many as the store has.
        seed: seed of the draw (`figures.grid_seed`).
        dpi: resolution of the PNG.
    """
    frame = read_predictions(predictions)
    n_classes = min(int(classes), len(store.classes))
    fig = class_grid_figure(frame, store.val.images, store.classes, n_classes, int(seed))
    return save_figure(fig, png, pdf, dpi)


# --------------------------------------------------------------------------- per-class accuracy


def per_class_difference(first: Mapping[str, float], second: Mapping[str, float]) -> pd.DataFrame:
    """Per-class accuracy of two runs over their common classes, with `difference` = second - first.

    Sorted by difference, then class name.
    """
    common = sorted(set(first) & set(second))
    frame = pd.DataFrame(
        {
            "class": common,
            "first": [float(first[c]) for c in common],
            "second": [float(second[c]) for c in common],
        }
    )
    frame["difference"] = frame["second"] - frame["first"]
    return frame.sort_values(["difference", "class"], kind="stable").reset_index(drop=True)


def per_class_accuracy_figure(
    per_class: Mapping[str, Mapping[str, float]], titles: Mapping[str, str] | None = None
) -> Figure:
    """Per-class validation accuracy of two runs: a scatter against the diagonal and the sorted
    differences, annotated with how many classes improved, worsened or tied.

    Args:
        per_class: run name -> {class name: accuracy %} (summary.json `per_class`); the first two
            runs are compared, the second against the first.
        titles: run name -> axis label (default: the name).

    Raises:
        ValueError: with fewer than two runs, or none of their classes in common.
    """
    if len(per_class) < 2:
        raise ValueError("the per-class comparison needs two runs")
    titles = titles or {}
    (first_name, first), (second_name, second) = list(per_class.items())[:2]
    frame = per_class_difference(first, second)
    if frame.empty:
        raise ValueError(f"{first_name} and {second_name} have no class in common")
    first_label, second_label = (
        titles.get(first_name, first_name),
        titles.get(second_name, second_name),
    )
    better = int((frame["difference"] > 0).sum())
    worse = int((frame["difference"] < 0).sum())
    tied = len(frame) - better - worse

    fig = Figure(figsize=(11, 4.6), layout="constrained")
    scatter_ax, diff_ax = fig.subplots(1, 2, width_ratios=[1, 1.4])
    # Per-class accuracies take few values (50 images a class: steps of 2 %), so points overlap;
    # transparency shows where they pile up.
    scatter_ax.scatter(frame["first"], frame["second"], s=14, alpha=0.5, color=TRAIN_COLOUR)
    scatter_ax.plot([0, 100], [0, 100], color="grey", linestyle="--", linewidth=1, label="y = x")
    scatter_ax.set(xlim=(-2, 102), ylim=(-2, 102), aspect="equal")
    scatter_ax.set_xlabel(f"{first_label}: accuracy (%)")
    scatter_ax.set_ylabel(f"{second_label}: accuracy (%)")
    scatter_ax.set_title(f"per-class accuracy, {len(frame)} classes")
    scatter_ax.legend(loc="lower right", fontsize="small")
    scatter_ax.grid(alpha=0.3)

    colours = np.where(
        frame["difference"] > 0,
        CORRECT_COLOUR,
        np.where(frame["difference"] < 0, WRONG_COLOUR, "grey"),
    )
    diff_ax.bar(np.arange(len(frame)), frame["difference"], width=1.0, color=colours)
    diff_ax.axhline(0, color="black", linewidth=0.8)
    diff_ax.set_xlabel("class (sorted by difference)")
    diff_ax.set_ylabel(f"{second_label} − {first_label} (points)")
    diff_ax.set_title(f"improved {better}, worsened {worse}, tied {tied}")
    diff_ax.set_xlim(-0.5, len(frame) - 0.5)
    diff_ax.grid(axis="y", alpha=0.3)
    return fig


def plot_per_class_accuracy(
    summaries: Mapping[str, Path], png: Path, pdf: Path, *, dpi: int
) -> list[Path]:
    """The per-class accuracy of the second run against the first, as PNG and PDF.

    Args:
        summaries: run name -> its summary.json; the first two are compared, labelled by name.
        png, pdf: the files to write.
        dpi: resolution of the PNG.
    """
    per_class = {name: read_summary(path)["per_class"] for name, path in summaries.items()}
    fig = per_class_accuracy_figure(per_class)
    return save_figure(fig, png, pdf, dpi)
