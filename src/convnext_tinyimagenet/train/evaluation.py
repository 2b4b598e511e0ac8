"""What an evaluation computes: one row per validation image (predictions.csv), and the summary."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from convnext_tinyimagenet.run_folder import PREDICTION_COLUMNS
from convnext_tinyimagenet.stats import batch_means, wilson_interval


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
