"""What the experiment notebook calls: each function runs one step and returns what it shows.

The notebook (notebooks/experiment.ipynb) is a parameters cell and one call per cell into this
module; nothing is computed only in the notebook. Figures and tables are built from the run's
result files, like the workflow's own figures.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pandas as pd
import yaml

from . import figures, tables
from .config import experiment_config, load_config
from .data import Store, load_store
from .evaluation import read_predictions
from .runner import evaluate_experiment, train_experiment


def setup(config_path: str, device: str) -> dict:
    """Load and validate the config (with `device` applied) and send progress logs to stdout."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    shell = _ipython()
    if shell is not None:  # figures returned by a cell are shown as embedded PNGs
        shell.run_line_magic("matplotlib", "inline")
    return load_config([config_path], [f"device={device}"])


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def resolved_config(cfg: dict, experiment: str) -> str:
    """The experiment's resolved settings with the data and seed they run on, as YAML."""
    shown = {
        "experiment": experiment,
        "seed": cfg["seed"],
        "device": cfg["device"],
        "data": cfg["data"],
        "normalize": cfg["normalize"],
        **experiment_config(cfg, experiment),
    }
    return yaml.safe_dump(shown, sort_keys=False)


def data_summary(cfg: dict) -> tuple[Store, pd.DataFrame]:
    """Decode (or open the cache of) the dataset; return it and a one-table summary."""
    store = load_store(cfg["data"], progress=False)
    rows = [
        ("source", store.info.get("source")),
        ("classes", len(store.classes)),
        ("train images", len(store.train.labels)),
        ("validation images", len(store.val.labels)),
        ("image size", "x".join(str(s) for s in store.train.images.shape[1:])),
        ("network input", f"{cfg['data']['input_size']}x{cfg['data']['input_size']}"),
        ("fingerprint", store.fingerprint[:16]),
    ]
    return store, pd.DataFrame(rows, columns=["", "value"]).set_index("")


def train(cfg: dict, experiment: str, out_dir: str) -> pd.DataFrame:
    """Train (or resume, or reuse a finished run); return the per-epoch metrics."""
    history = train_experiment(cfg, experiment, Path(out_dir), progress=False)
    columns = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_acc_batch_mean"]
    return pd.DataFrame(history)[[*columns, "seconds", "best"]].set_index("epoch").round(4)


def learning_curves(cfg: dict, experiment: str, out_dir: str):
    """This run's learning curves with the published values overlaid."""
    metrics = {experiment: figures.read_metrics(Path(out_dir) / "metrics.jsonl")}
    published = cfg["published"]["runs"]
    return figures.learning_curves_figure(
        metrics,
        {experiment: published[experiment]} if experiment in published else None,
        {experiment: experiment_config(cfg, experiment).get("title", experiment)},
    )


def evaluate(cfg: dict, experiment: str, out_dir: str) -> tuple[dict, pd.DataFrame]:
    """Evaluate the best epoch; return summary.json and a table of its headline numbers."""
    summary = evaluate_experiment(cfg, experiment, Path(out_dir), progress=False)
    low, high = summary["wilson95"]
    rows = [
        ("accuracy (exact) %", f"{summary['accuracy']:.2f}"),
        ("95 % Wilson interval", f"[{low:.2f}, {high:.2f}]"),
        ("accuracy (mean of batch-32 accuracies) %", f"{summary['accuracy_batch_mean']:.2f}"),
        ("top-5 %", f"{summary['top5']:.2f}"),
        ("correct / n", f"{summary['correct']} / {summary['n']}"),
        ("best epoch / epochs", f"{summary.get('best_epoch')} / {summary.get('epochs')}"),
    ]
    return summary, pd.DataFrame(rows, columns=["", "value"]).set_index("")


def classes(summary: dict, k: int = 5) -> pd.DataFrame:
    """Top-k and bottom-k classes by validation accuracy."""
    return tables.class_frame(summary, k)


def correct_wrong(cfg: dict, out_dir: str, store: Store):
    """The seeded 8-correct / 8-wrong grid, from predictions.csv."""
    predictions = read_predictions(Path(out_dir) / "predictions.csv")
    options = cfg["figures"]
    return figures.correct_wrong_figure(
        predictions, store.val.images, store.classes, options["samples"], options["sample_seed"]
    )


def class_grid(cfg: dict, out_dir: str, store: Store):
    """One validation image per class (the first classes), from predictions.csv."""
    predictions = read_predictions(Path(out_dir) / "predictions.csv")
    n_classes = min(cfg["figures"]["grid_classes"], len(store.classes))
    return figures.class_grid_figure(
        predictions, store.val.images, store.classes, n_classes, cfg["figures"]["grid_seed"]
    )


def summary_json(out_dir: str) -> str:
    """summary.json of a run, without the per-class list, for display."""
    summary = json.loads((Path(out_dir) / "summary.json").read_text())
    summary.pop("per_class", None)
    return json.dumps(summary, indent=2)
