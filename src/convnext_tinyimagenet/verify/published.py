"""The original study's published prediction CSVs: checksum-verified download and recomputation.

The CSVs are never committed: config pins each one's URL and sha256, and a file with another
sha256 is refused, whether it was downloaded or placed by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.errors import ArtifactError
from convnext_tinyimagenet.stats import batch_means

PUBLISHED_BATCH_SIZE = 32  # both notebooks' validation batch size


class PublishedError(ArtifactError):
    """A published file that cannot be fetched or does not match its pinned sha256."""


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str) -> None:
    """Raise PublishedError unless `path` has sha256 `expected`."""
    if (actual := sha256(path)) != expected:
        raise PublishedError(
            f"{path} has sha256 {actual}, expected {expected}: the file is refused "
            f"(delete it and fetch again, or place the original file there by hand)"
        )


def fetch(url: str, expected: str, path: Path, *, timeout: float = 30.0) -> Path:
    """Return `path` verified against sha256 `expected`, downloading it from `url` if absent
    into a temporary file that is checked before it replaces anything."""
    path = Path(path)
    if path.is_file():
        verify(path, expected)
        return path

    def download(tmp: Path) -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                tmp.write_bytes(response.read())
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # HTTPException: a body cut short of its Content-Length (IncompleteRead)
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise PublishedError(
                f"cannot download {url} ({reason}). Offline? Place the file by hand at "
                f"{path} (sha256 {expected}); it is verified before use"
            ) from exc
        if (actual := sha256(tmp)) != expected:
            raise PublishedError(
                f"{url} was downloaded with sha256 {actual}, expected {expected}: refused, and "
                f"nothing was written to {path}. The file behind the URL is not the one the "
                f"paper pinned; place the original at {path} by hand"
            )

    return atomic.write_with(path, download)


def fetch_all(files: Mapping[str, Path], pins: Mapping[str, Mapping]) -> dict[str, Path]:
    """:func:`fetch` for every run (`pins`: run -> `url`, `sha256`); one error naming every
    file that failed."""
    fetched, problems = {}, []
    for run, path in files.items():
        try:
            fetched[run] = fetch(pins[run]["url"], pins[run]["sha256"], path)
        except PublishedError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise PublishedError(problems[0])
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise PublishedError(f"{len(problems)} published files cannot be used:\n{listed}")
    return fetched


def read_predictions(path: Path) -> pd.DataFrame:
    """Read a published CSV (`[Index,]Ground_Truth,Prediction,Is_Correct`) into columns label,
    prediction, correct (validation order)."""
    frame = pd.read_csv(path)
    missing = {"Ground_Truth", "Prediction", "Is_Correct"} - set(frame.columns)
    if missing:
        raise PublishedError(f"{path} lacks the columns {', '.join(sorted(missing))}")
    out = pd.DataFrame({"label": frame["Ground_Truth"], "prediction": frame["Prediction"]})
    out = out.astype(np.int64)
    out["correct"] = out["label"] == out["prediction"]
    stated = frame["Is_Correct"].astype(str).str.lower() == "true"
    if not (stated == out["correct"]).all():
        raise PublishedError(f"{path}: Is_Correct disagrees with Ground_Truth == Prediction")
    return out


def recompute(frame: pd.DataFrame, batch_size: int = PUBLISHED_BATCH_SIZE) -> dict:
    """Exact and batch-mean accuracy (%) and per-class accuracy of a published prediction set."""
    correct = frame["correct"].to_numpy()
    return {
        "n": len(frame),
        "correct": int(correct.sum()),
        "accuracy": 100.0 * float(correct.mean()),
        "accuracy_batch_mean": 100.0 * batch_means(correct, batch_size),
        "batch_size": batch_size,
        "per_class": {
            int(label): 100.0 * float(acc)
            for label, acc in frame.groupby("label")["correct"].mean().items()
        },
    }


def summarize_published(
    files: Mapping[str, Path], claims: Mapping[str, float], pins: Mapping[str, str], out: Path
) -> dict:
    """Verify (`pins`: run -> sha256) and recompute every published run's CSV; write run ->
    claim, file, sha256 and :func:`recompute`'s figures to `out`."""
    summary = {}
    for run, path in files.items():
        verify(path, pins[run])
        summary[run] = {
            "claim": claims[run],
            "file": str(path),
            "sha256": pins[run],
            **recompute(read_predictions(path)),
        }
    atomic.write_json(out, summary)
    return summary
