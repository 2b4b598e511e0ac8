"""What the experiment notebook calls: each function runs one step and returns what it shows
(nothing is computed only in the notebook; figures and tables come from the run's files)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd

from convnext_tinyimagenet.config import (
    experiment_config,
    experiment_seeds,
    load_config,
    run_seed,
    run_settings,
)
from convnext_tinyimagenet.data.store import Store, load_store
from convnext_tinyimagenet.numbers import pct, signed
from convnext_tinyimagenet.report import figures, tables
from convnext_tinyimagenet.run_folder import RunFolder, read_metrics, read_predictions
from convnext_tinyimagenet.train.runner import evaluate_experiment, train_experiment
from convnext_tinyimagenet.verify.verification import check_rerun


def setup(
    settings: dict | None, experiment: str, config_path: str, seed: int | None = None
) -> dict:
    """This run's settings, with progress logs sent to the notebook's output. Opened by hand
    (`settings` None), they are read from `config_path`: the run of `seed` (None: the first)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    pd.set_option("display.max_colwidth", None)  # settings shown whole, not "weight_..."
    shell = _ipython()
    if shell is not None:  # figures returned by a cell are shown as embedded PNGs
        shell.run_line_magic("matplotlib", "inline")
    if settings is None:
        cfg = load_config([config_path])
        seed = experiment_seeds(cfg, experiment)[0] if seed is None else seed
        settings = run_settings(cfg, experiment, seed)
    return settings


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _weights(exp: dict) -> str:
    return "its pretrained weights" if exp["model"]["pretrained"] else "random weights"


def _groups(exp: dict) -> str:
    return " + ".join(group["name"] for group in exp["trainable"])


def _augmentation(exp: dict) -> str:
    augment = exp["augment"]
    parts = []
    if augment["randaugment"]:
        ra = augment["randaugment"]
        parts.append(f"RandAugment({ra['num_ops']} ops, magnitude {ra['magnitude']})")
    if augment["random_erasing"]:
        parts.append(f"RandomErasing(p={augment['random_erasing']['p']})")
    return " + ".join(parts) or "none"


def _scheduler(exp: dict) -> str:
    scheduler = exp["train"]["scheduler"]
    return "constant" if not scheduler else f"{scheduler['name']} (T_max {scheduler['t_max']})"


# What a reader compares between two recipes: label -> how to read it off an experiment section.
ASPECTS = {
    "pretrained weights": lambda exp: (
        f"`{exp['model']['tag']}`" if exp["model"]["pretrained"] else "random initialisation"
    ),
    "head": lambda exp: exp["model"]["head"],
    "what trains": _groups,
    "augmentation": _augmentation,
    "label smoothing": lambda exp: str(exp["train"]["label_smoothing"]),
    "precision": lambda exp: exp["train"]["precision"],
    "learning-rate schedule": _scheduler,
    "early stopping on": lambda exp: tables.monitored(exp["train"]),
}


def introduction(cfg: dict, experiment: str, reference: dict | None) -> str:
    """A generated paragraph: what this run does, and how it differs from `reference`
    (`{"name": ..., "settings": <its experiment section>}`, or None)."""
    exp = experiment_config(cfg, experiment)
    stop = exp["train"]["early_stopping"]
    cap = f"at most {stop['max_epochs']} epochs" if stop["max_epochs"] else "no epoch cap"
    text = (
        f"**{exp.get('title', experiment)}.** This notebook trains `{experiment}`: ConvNeXt-Tiny "
        f"(`{exp['model']['tag']}`) from {_weights(exp)} with a {exp['model']['head']} head, "
        f"tuning {_groups(exp)} with AdamW at batch {exp['train']['batch_size']} on "
        f"{cfg['data']['source']} data resized to {cfg['data']['input_size']} px, until "
        f"{tables.monitored(exp['train'])} has not improved for {stop['patience']} epochs ({cap}); "
        f"then it evaluates the best epoch on the validation split."
    )
    if reference is None:
        return text
    other = reference["settings"]
    changes = [
        f"- {label}: {read(exp)} (`{reference['name']}`: {read(other)})"
        for label, read in ASPECTS.items()
        if read(exp) != read(other)
    ]
    if not changes:
        return text + f"\n\nIts recipe equals `{reference['name']}`'s in every listed aspect."
    return text + f"\n\nHow it differs from `{reference['name']}`:\n\n" + "\n".join(changes)


def _flatten(value: object, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict) and value:
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat |= _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return flat
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return {
            f"{prefix}.{item.get('name', index)}": ", ".join(f"{k} {v}" for k, v in item.items())
            for index, item in enumerate(value)
        }
    return {prefix: "null" if value is None else str(value)}


def settings_table(cfg: dict, experiment: str) -> pd.DataFrame:
    """The run's settings, one row per key: what the run read, compactly."""
    data = cfg["data"]
    rows = {
        "seed": str(run_seed(cfg)),
        "device": str(cfg["device"]),
        "data": f"{data['source']}, {data['image_size']} px images -> {data['input_size']} px",
    }
    shown = {k: v for k, v in experiment_config(cfg, experiment).items() if k != "title"}
    rows |= _flatten(shown)
    return pd.DataFrame({"value": rows}).rename_axis("setting")


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


def learning_curves(cfg: dict, experiment: str, out_dir: str, published: dict | None):
    """This run's learning curves, with the published run's values overlaid where there is one
    and this run read TinyImageNet; and a sentence saying which."""
    metrics = {experiment: read_metrics(RunFolder(out_dir).metrics)}
    if cfg["data"]["source"] == "synthetic" and published is not None:
        published, caption = None, "The published curves are not drawn: they are TinyImageNet's."
    else:
        caption = "Rerun (solid)" + (" and published run (dashed)." if published else ".")
    title = {experiment: experiment_config(cfg, experiment).get("title", experiment)}
    overlay = {experiment: published} if published is not None else None
    return caption, figures.learning_curves_figure(metrics, overlay, title)


def evaluate(cfg: dict, experiment: str, out_dir: str) -> tuple[dict, pd.DataFrame]:
    """Evaluate the best epoch; return summary.json and a table of its headline numbers."""
    summary = evaluate_experiment(cfg, experiment, Path(out_dir), progress=False)
    low, high = summary["wilson95"]
    rows = [
        ("accuracy (exact) %", pct(summary["accuracy"])),
        ("95 % Wilson interval", f"[{pct(low)}, {pct(high)}]"),
        ("accuracy (mean of batch-32 accuracies) %", pct(summary["accuracy_batch_mean"])),
        ("top-5 %", pct(summary["top5"])),
        ("correct / n", f"{summary['correct']} / {summary['n']}"),
        ("best epoch / epochs", f"{summary.get('best_epoch')} / {summary.get('epochs')}"),
    ]
    return summary, pd.DataFrame(rows, columns=["", "value"]).set_index("")


def classes(summary: dict, k: int = 5) -> pd.DataFrame:
    """Top-k and bottom-k classes by validation accuracy."""
    return tables.class_frame(summary, k)


def correct_wrong(options: dict, out_dir: str, store: Store):
    """The seeded 8-correct / 8-wrong grid, from predictions.csv."""
    predictions = read_predictions(RunFolder(out_dir).predictions)
    return figures.correct_wrong_figure(
        predictions, store.val.images, store.classes, options["samples"], options["sample_seed"]
    )


def class_grid(options: dict, out_dir: str, store: Store):
    """One validation image per class (the first classes), from predictions.csv."""
    predictions = read_predictions(RunFolder(out_dir).predictions)
    n_classes = min(options["grid_classes"], len(store.classes))
    return figures.class_grid_figure(
        predictions, store.val.images, store.classes, n_classes, options["grid_seed"]
    )


def against_claim(
    experiment: str, summary: dict, published: dict | None, band: dict | None
) -> tuple[str, pd.DataFrame]:
    """The rerun against the published claim, computed as the claim was (exact or batch mean),
    or against the band's explicit `expected` (the demo's synthetic data): a sentence with the
    verdict, and its numbers."""
    check = check_rerun(experiment, summary, published, band)
    low, high = summary["wilson95"]
    rows = {
        "rerun, exact accuracy %": pct(summary["accuracy"]),
        "95 % Wilson interval %": f"[{pct(low)}, {pct(high)}]",
        "rerun, mean of batch accuracies %": pct(summary["accuracy_batch_mean"]),
        "published claim %": pct(None if published is None else published["claim"]),
    }
    if "expected" not in check:
        return f"Not checked: {check['reason']}.", pd.DataFrame({"value": rows})
    rows |= {
        "checked against": f"{pct(check['expected'])} ({check['basis']}, {check['metric']})",
        "tolerance pp": pct(check["tolerance_pp"]),
        "difference pp": signed(check["difference"]),
        "verdict": check["verdict"],
    }
    agrees = "agrees with" if check["verdict"] == "pass" else "does NOT agree with"
    sentence = (
        f"The rerun's {check['metric']} accuracy, {pct(check['value'])} %, {agrees} "
        f"{pct(check['expected'])} % ({check['basis']}) within {pct(check['tolerance_pp'])} pp."
    )
    return sentence, pd.DataFrame({"value": rows})
