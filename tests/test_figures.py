"""Figures from small hand-made result files: what is drawn, where it is saved, what is missing."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from convnext_tinyimagenet.data.store import Split, Store
from convnext_tinyimagenet.report import figures
from convnext_tinyimagenet.run_folder import ResultFileError

from .conftest import smoke_config

CLASSES = ("cat", "dog", "fox", "owl", "yak")
N_IMAGES = 30  # 6 per class; every third prediction wrong -> 20 correct, 10 wrong


@pytest.fixture
def cfg(tmp_path: Path) -> dict:
    return smoke_config(tmp_path / "cache")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where the hand-made runs live: out/<run>/{metrics.jsonl,predictions.csv,summary.json}."""
    return tmp_path / "out"


def make_store(seed: int = 0) -> Store:
    """A tiny store: random 8x8 images, labels i % 5."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(N_IMAGES, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(N_IMAGES, dtype=np.int64) % len(CLASSES)
    ids = np.array([f"{i:016x}" for i in range(N_IMAGES)])
    split = Split(images=images, labels=labels, image_ids=ids)
    return Store(train=split, val=split, classes=CLASSES, fingerprint="test", info={})


def make_predictions(store: Store, wrong_every: int = 3, seed: int = 1) -> pd.DataFrame:
    """Rows in shuffled order (so `index`, not the row number, finds the image)."""
    order = np.random.default_rng(seed).permutation(N_IMAGES)
    labels = store.val.labels[order]
    wrong = order % wrong_every == 0
    prediction = np.where(wrong, (labels + 1) % len(CLASSES), labels)
    return pd.DataFrame(
        {
            "image_id": store.val.image_ids[order],
            "index": order,
            "label": labels,
            "prediction": prediction,
            "correct": prediction == labels,
            "top5": True,
            "confidence": 0.5,
        }
    )


def metrics_rows(n_epochs: int, best: tuple[bool, ...]) -> list[dict]:
    return [
        {
            "epoch": e + 1,
            "train_loss": 2.0 - 0.3 * e,
            "val_loss": 1.5 - 0.2 * e,
            "train_acc": 40.0 + 10 * e,
            "val_acc": 50.0 + 8 * e,
            # the means of per-batch values differ a little from the exact figures
            "train_loss_batch_mean": 2.01 - 0.3 * e,
            "val_loss_batch_mean": 1.51 - 0.2 * e,
            "train_acc_batch_mean": 40.1 + 10 * e,
            "val_acc_batch_mean": 50.1 + 8 * e,
            "best": best[e],
        }
        for e in range(n_epochs)
    ]


def write_run(run: Path, store: Store, per_class: dict[str, float]) -> Path:
    """metrics.jsonl, predictions.csv and summary.json of one run, written by hand into `run`."""
    run.mkdir(parents=True, exist_ok=True)
    rows = metrics_rows(3, (True, True, False))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    make_predictions(store).to_csv(run / "predictions.csv", index=False)
    summary = {"experiment": run.name, "n": N_IMAGES, "per_class": per_class}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


BASELINE_PER_CLASS = {"cat": 50.0, "dog": 100.0, "fox": 83.3, "owl": 0.0, "yak": 66.7}
IMPROVED_PER_CLASS = {"cat": 66.7, "dog": 100.0, "fox": 50.0, "owl": 16.7, "yak": 83.3}


@pytest.fixture
def runs(out: Path) -> Store:
    store = make_store()
    write_run(out / "baseline", store, BASELINE_PER_CLASS)
    write_run(out / "improved", store, IMPROVED_PER_CLASS)
    return store


def labelled_line(ax, label: str):
    matches = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(matches) == 1, f"expected one line labelled {label!r}"
    return matches[0]


# --------------------------------------------------------------------------- reading


def test_read_metrics_one_row_per_epoch(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in metrics_rows(3, (True,) * 3)) + "\n")
    frame = figures.read_metrics(path)
    assert list(frame["epoch"]) == [1, 2, 3]
    assert frame["val_acc"].tolist() == [50.0, 58.0, 66.0]


@pytest.mark.parametrize("content", [None, "", "\n\n"])
def test_read_metrics_missing_or_empty_names_file(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "run" / "metrics.jsonl"
    if content is not None:
        path.parent.mkdir()
        path.write_text(content)
    with pytest.raises(ResultFileError, match="run_experiment") as info:
        figures.read_metrics(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_best_epoch_is_last_flagged_row() -> None:
    frame = pd.DataFrame(metrics_rows(4, (True, False, True, False)))
    assert figures.best_epoch(frame) == 3
    assert figures.best_epoch(pd.DataFrame(metrics_rows(2, (False, False)))) is None


# --------------------------------------------------------------------------- learning curves


def test_learning_curves_one_row_per_experiment_with_published_values(cfg: dict) -> None:
    metrics = {
        "baseline": pd.DataFrame(metrics_rows(3, (True, True, False))),
        "improved": pd.DataFrame(metrics_rows(2, (True, False))),
    }
    published = cfg["published"]["runs"]
    fig = figures.learning_curves_figure(metrics, published, {"baseline": "Base"})

    assert len(fig.subfigs) == 2
    assert [len(sub.axes) for sub in fig.subfigs] == [2, 2]
    assert fig.subfigs[0].get_suptitle() == "Base"
    assert fig.subfigs[1].get_suptitle() == "improved"  # no title given: the name
    fig.canvas.draw()  # lay out, so the rows have their final positions
    # Window extents are in pixels of the whole figure (positions are per subfigure).
    first_row_bottom = min(ax.get_window_extent().y0 for ax in fig.subfigs[0].axes)
    second_row_top = max(ax.get_window_extent().y1 for ax in fig.subfigs[1].axes)
    assert first_row_bottom > second_row_top

    for sub, name in zip(fig.subfigs, metrics, strict=True):
        acc_ax, loss_ax = sub.axes
        epochs = np.array(published[name]["epochs"])
        line = labelled_line(acc_ax, "validation (published)")
        assert line.get_ydata().tolist() == epochs[:, 3].tolist()
        assert line.get_xdata().tolist() == list(range(1, len(epochs) + 1))
        assert line.get_linestyle() == "--"
        assert (
            labelled_line(acc_ax, "train (published)").get_ydata().tolist() == epochs[:, 2].tolist()
        )
        assert (
            labelled_line(loss_ax, "train (published)").get_ydata().tolist()
            == epochs[:, 0].tolist()
        )
        assert (
            labelled_line(loss_ax, "validation (published)").get_ydata().tolist()
            == epochs[:, 1].tolist()
        )
        # like for like: losses are batch means in both notebooks, accuracies as each claim
        acc_column = "val_acc" if name == "baseline" else "val_acc_batch_mean"
        assert (
            labelled_line(acc_ax, "validation (rerun)").get_ydata().tolist()
            == metrics[name][acc_column].tolist()
        )
        assert (
            labelled_line(loss_ax, "train (rerun)").get_ydata().tolist()
            == metrics[name]["train_loss_batch_mean"].tolist()
        )
        assert ("mean of per-batch" in acc_ax.get_ylabel()) == (name == "improved")
        assert "mean of per-batch" in loss_ax.get_ylabel()
        published_best = published[name]["best_epoch"]
        best_line = labelled_line(acc_ax, f"best epoch (published): {published_best}")
        assert list(best_line.get_xdata()) == [published_best, published_best]

    rerun_best = labelled_line(fig.subfigs[0].axes[0], "best epoch (rerun): 2")
    published_best = labelled_line(fig.subfigs[0].axes[0], "best epoch (published): 1")
    assert rerun_best.get_color() != published_best.get_color()
    legend_texts = [t.get_text() for t in fig.subfigs[0].axes[0].get_legend().get_texts()]
    assert "validation (rerun)" in legend_texts and "validation (published)" in legend_texts


def test_learning_curves_without_published_has_no_published_line() -> None:
    metrics = {"baseline": pd.DataFrame(metrics_rows(3, (True, True, False)))}
    fig = figures.learning_curves_figure(metrics, None)
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert not [label for label in labels if "published" in label]
    assert "best epoch (rerun): 2" in labels


# --------------------------------------------------------------------------- image grids


def image_titles(axes) -> list[str]:
    return [ax.get_title() for ax in axes if ax.images]


def expected_title(row: pd.Series) -> str:
    return f"true: {CLASSES[row['label']]}\npred: {CLASSES[row['prediction']]}"


def test_correct_wrong_picks_pandas_sample_rows() -> None:
    store = make_store()
    predictions = make_predictions(store)
    fig = figures.correct_wrong_figure(predictions, store.val.images, CLASSES, n=4, seed=42)
    axes = np.array(fig.axes).reshape(2, 4)
    for ax_row, subset in zip(
        axes, (predictions[predictions.correct], predictions[~predictions.correct]), strict=True
    ):
        expected = subset.sample(4, random_state=42)
        assert image_titles(ax_row) == [expected_title(r) for _, r in expected.iterrows()]
        for ax, (_, row) in zip(ax_row, expected.iterrows(), strict=True):
            # The image is looked up by the `index` column, not by the row's position.
            np.testing.assert_array_equal(ax.images[0].get_array(), store.val.images[row["index"]])
    assert axes[0, 0].get_ylabel() == "correct (4)"  # each row says how many it shows
    assert axes[1, 0].get_ylabel() == "wrong (4)"
    fewer = predictions[
        predictions.correct | (predictions.index < predictions.index[~predictions.correct][2])
    ]
    fig = figures.correct_wrong_figure(fewer, store.val.images, CLASSES, n=4, seed=42)
    assert np.array(fig.axes).reshape(2, 4)[1, 0].get_ylabel() == "wrong (2)"  # not "(4)"


def test_correct_wrong_without_wrong_predictions() -> None:
    store = make_store()
    predictions = make_predictions(store)
    predictions["prediction"] = predictions["label"]
    predictions["correct"] = True
    fig = figures.correct_wrong_figure(predictions, store.val.images, CLASSES, n=3, seed=42)
    axes = np.array(fig.axes).reshape(2, 3)
    assert len(image_titles(axes[0])) == 3
    assert image_titles(axes[1]) == []
    assert [t.get_text() for t in axes[1, 0].texts] == ["no wrong predictions"]


def test_correct_wrong_takes_a_small_subset_whole() -> None:
    store = make_store()
    predictions = make_predictions(store, wrong_every=15)  # images 0 and 15 wrong
    fig = figures.correct_wrong_figure(predictions, store.val.images, CLASSES, n=4, seed=42)
    wrong = predictions[~predictions.correct]
    assert len(wrong) == 2
    titles = image_titles(np.array(fig.axes).reshape(2, 4)[1])
    assert titles == [expected_title(r) for _, r in wrong.iterrows()]


def test_class_grid_one_image_per_class_coloured_by_correctness() -> None:
    store = make_store()
    predictions = make_predictions(store)
    fig = figures.class_grid_figure(predictions, store.val.images, CLASSES, n_classes=4, seed=7)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 4

    # An independent draw: one generator, one integer position per class in label order.
    rng = np.random.default_rng(7)
    for label, ax in enumerate(drawn):
        rows = predictions[predictions.label == label]
        row = rows.iloc[rng.integers(len(rows))]
        assert ax.get_title() == expected_title(row)
        assert ax.get_title().startswith(f"true: {CLASSES[label]}\n")
        np.testing.assert_array_equal(ax.images[0].get_array(), store.val.images[row["index"]])
        colour = figures.CORRECT_COLOUR if row["correct"] else figures.WRONG_COLOUR
        assert to_rgba(ax.title.get_color()) == to_rgba(colour)


def test_class_grid_colours_both_kinds() -> None:
    store = make_store()
    predictions = make_predictions(store, wrong_every=2)  # every even image wrong
    fig = figures.class_grid_figure(predictions, store.val.images, CLASSES, len(CLASSES), seed=0)
    colours = {to_rgba(ax.title.get_color()) for ax in fig.axes if ax.images}
    assert colours == {to_rgba(figures.CORRECT_COLOUR), to_rgba(figures.WRONG_COLOUR)}


# --------------------------------------------------------------------------- per-class accuracy


def test_per_class_accuracy_counts_and_sorted_differences() -> None:
    fig = figures.per_class_accuracy_figure(
        {"baseline": BASELINE_PER_CLASS, "improved": IMPROVED_PER_CLASS}
    )
    scatter_ax, diff_ax = fig.axes
    assert diff_ax.get_title() == "improved 3, worsened 1, tied 1"
    heights = [round(bar.get_height(), 6) for bar in diff_ax.patches]
    assert heights == sorted(heights)
    assert heights == pytest.approx([-33.3, 0.0, 16.6, 16.7, 16.7])
    points = scatter_ax.collections[0].get_offsets()
    assert sorted(map(tuple, points.tolist())) == sorted(
        (BASELINE_PER_CLASS[c], IMPROVED_PER_CLASS[c]) for c in CLASSES
    )
    assert labelled_line(scatter_ax, "y = x").get_xdata().tolist() == [0, 100]


def test_per_class_accuracy_needs_two_runs() -> None:
    with pytest.raises(ValueError, match="two runs"):
        figures.per_class_accuracy_figure({"baseline": BASELINE_PER_CLASS})


# --------------------------------------------------------------------------- plot_* files


def titles(cfg: dict) -> dict[str, str]:
    return {name: exp["title"] for name, exp in cfg["experiments"].items()}


# Each plot_* called as its rule calls it: the run files under `out`, settings from the config.
PLOTS = {
    "learning_curves": lambda cfg, out, store, png, pdf: figures.plot_learning_curves(
        {name: out / name / "metrics.jsonl" for name in ("baseline", "improved")},  # the pair
        png,
        pdf,
        published=cfg["published"]["runs"],
        titles=titles(cfg),
        dpi=cfg["figures"]["dpi"],
    ),
    "per_class": lambda cfg, out, store, png, pdf: figures.plot_per_class_accuracy(
        {name: out / name / "summary.json" for name in ("baseline", "improved")},
        png,
        pdf,
        dpi=cfg["figures"]["dpi"],
    ),
    "correct_wrong": lambda cfg, out, store, png, pdf: figures.plot_correct_wrong(
        out / "improved" / "predictions.csv",
        store,
        png,
        pdf,
        samples=cfg["figures"]["samples"],
        seed=cfg["figures"]["sample_seed"],
        dpi=cfg["figures"]["dpi"],
    ),
    "class_grid": lambda cfg, out, store, png, pdf: figures.plot_class_grid(
        out / "baseline" / "predictions.csv",
        store,
        png,
        pdf,
        classes=cfg["figures"]["grid_classes"],
        seed=cfg["figures"]["grid_seed"],
        dpi=cfg["figures"]["dpi"],
    ),
}


@pytest.mark.parametrize("plot", PLOTS)
def test_plot_writes_exactly_the_given_png_and_pdf(
    cfg: dict, out: Path, runs: Store, tmp_path: Path, plot: str
) -> None:
    # Two names that share nothing: the PDF's path is not derived from the PNG's.
    png, pdf = tmp_path / "figs" / "a.png", tmp_path / "other" / "b.pdf"
    written = PLOTS[plot](cfg, out, runs, png, pdf)
    assert written == [png, pdf]
    png_bytes, pdf_bytes = png.read_bytes(), pdf.read_bytes()
    assert png_bytes.startswith(b"\x89PNG\r\n\x1a\n") and len(png_bytes) > 1000
    assert pdf_bytes.startswith(b"%PDF") and len(pdf_bytes) > 1000
    # Nothing but the two files: the temporary files were renamed away.
    assert [p.name for p in png.parent.iterdir()] == ["a.png"]
    assert [p.name for p in pdf.parent.iterdir()] == ["b.pdf"]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height in pixels, from the PNG's IHDR chunk."""
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_plot_dpi_sets_the_png_resolution(out: Path, runs: Store, tmp_path: Path) -> None:
    summaries = {name: out / name / "summary.json" for name in ("baseline", "improved")}
    low = figures.plot_per_class_accuracy(
        summaries, tmp_path / "low.png", tmp_path / "l.pdf", dpi=50
    )
    high = figures.plot_per_class_accuracy(
        summaries, tmp_path / "high.png", tmp_path / "h.pdf", dpi=100
    )
    width, height = png_size(low[0])
    assert png_size(high[0]) == (2 * width, 2 * height)
    assert width == 11 * 50  # the figure is 11 inches wide


def capture_figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """Make save_figure keep the figures it is given instead of writing them."""
    drawn: list = []
    monkeypatch.setattr(
        figures, "save_figure", lambda fig, png, pdf, dpi: drawn.append(fig) or [png, pdf]
    )
    return drawn


def test_plot_learning_curves_rows_follow_the_given_runs(
    out: Path, runs: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = capture_figures(monkeypatch)
    metrics = {name: out / name / "metrics.jsonl" for name in ("improved", "baseline")}
    figures.plot_learning_curves(
        metrics, out / "c.png", out / "c.pdf", published={}, titles={"improved": "B"}, dpi=50
    )
    assert [sub.get_suptitle() for sub in drawn[0].subfigs] == ["B", "baseline"]
    labels = [line.get_label() for ax in drawn[0].axes for line in ax.get_lines()]
    assert not [label for label in labels if "published" in label]


def test_plot_class_grid_uses_count_and_seed(
    cfg: dict, out: Path, runs: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = capture_figures(monkeypatch)
    PLOTS["class_grid"](cfg, out, runs, out / "g.png", out / "g.pdf")
    # grid_classes (10 in the smoke config) is capped at the store's 5 classes.
    assert cfg["figures"]["grid_classes"] > len(CLASSES)
    titles = image_titles(drawn[0].axes)
    predictions = pd.read_csv(out / "baseline" / "predictions.csv")
    rng = np.random.default_rng(cfg["figures"]["grid_seed"])
    expected = []
    for label in range(len(CLASSES)):
        rows = predictions[predictions.label == label]
        expected.append(expected_title(rows.iloc[rng.integers(len(rows))]))
    assert titles == expected


def test_pdf_is_reproducible(cfg: dict, out: Path, runs: Store) -> None:
    first = PLOTS["per_class"](cfg, out, runs, out / "1.png", out / "1.pdf")[1].read_bytes()
    second = PLOTS["per_class"](cfg, out, runs, out / "2.png", out / "2.pdf")[1].read_bytes()
    assert first == second


@pytest.mark.parametrize(
    ("plot", "missing"),
    [
        ("learning_curves", "improved/metrics.jsonl"),
        ("per_class", "baseline/summary.json"),
        ("correct_wrong", "improved/predictions.csv"),
        ("class_grid", "baseline/predictions.csv"),
    ],
)
def test_plot_missing_input_names_file(
    cfg: dict, out: Path, runs: Store, plot: str, missing: str
) -> None:
    path = out / missing
    path.unlink()
    with pytest.raises(ResultFileError) as info:
        PLOTS[plot](cfg, out, runs, out / "x.png", out / "x.pdf")
    assert str(path) in str(info.value)
    assert "snakemake run_experiment" in str(info.value)
    assert not (out / "x.png").exists()
