"""Evaluation files: predictions.csv (one row per validation image) and summary.json.

Figures, tables, verification and the paper read these files, never a notebook's memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import atomic
from .training import batch_means

PREDICTION_COLUMNS = ("image_id", "index", "label", "prediction", "correct", "top5", "confidence")
Z95 = 1.959963984540054  # two-sided 95 % standard normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion, as fractions in [0, 1]."""
    if n <= 0:
        raise ValueError("the Wilson interval needs at least one trial")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def predictions_frame(per_image: dict[str, np.ndarray], image_ids: np.ndarray) -> pd.DataFrame:
    """One row per validation image, in validation order, with its stable image_id."""
    index = per_image["index"].astype(np.int64)
    label = per_image["label"].astype(np.int64)
    prediction = per_image["prediction"].astype(np.int64)
    return pd.DataFrame(
        {
            "image_id": np.asarray(image_ids)[index],
            "index": index,
            "label": label,
            "prediction": prediction,
            "correct": prediction == label,
            "top5": per_image["top5"].astype(bool),
            "confidence": per_image["confidence"].astype(np.float64).round(6),
        },
        columns=list(PREDICTION_COLUMNS),
    )


def summarize_predictions(frame: pd.DataFrame, classes: Sequence[str], batch_size: int) -> dict:
    """Exact, batch-mean and top-5 accuracy (%), Wilson 95 % interval and per-class accuracy."""
    n = len(frame)
    correct = int(frame["correct"].sum())
    low, high = wilson_interval(correct, n)
    per_class = frame.groupby("label")["correct"].mean()
    return {
        "n": n,
        "correct": correct,
        "accuracy": 100.0 * correct / n,
        "accuracy_batch_mean": 100.0 * batch_means(frame["correct"].to_numpy(), batch_size),
        "batch_size_for_mean": batch_size,
        "top5": 100.0 * float(frame["top5"].mean()),
        "wilson95": [100.0 * low, 100.0 * high],
        "per_class": {classes[int(label)]: 100.0 * float(acc) for label, acc in per_class.items()},
    }


def write_predictions(frame: pd.DataFrame, path: Path) -> Path:
    """Atomically write predictions.csv."""
    return atomic.write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


def read_predictions(path: Path) -> pd.DataFrame:
    """Read a predictions.csv written by :func:`write_predictions`."""
    frame = pd.read_csv(path)
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {', '.join(missing)}")
    return frame
