"""The original study's published prediction CSVs: checksum-verified download and recomputation.

The CSVs are never part of this repository: config pins each one's URL and sha256, and
:func:`fetch` downloads it on demand into `published.download_dir`. A file whose sha256 differs
is refused (and never used), whether it was downloaded or placed there by hand.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from . import atomic

PUBLISHED_BATCH_SIZE = 32  # both notebooks' validation batch size


class PublishedError(Exception):
    """A published file that cannot be fetched or does not match its pinned sha256."""


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_path(cfg: dict, run: str) -> Path:
    """Where run `run`'s predictions live once fetched: download_dir / the URL's file name."""
    url = cfg["published"]["runs"][run]["predictions"]["url"]
    return Path(cfg["published"]["download_dir"]) / Path(urlparse(url).path).name


def verify(path: Path, expected: str) -> None:
    """Raise PublishedError unless `path` has sha256 `expected`."""
    actual = sha256(path)
    if actual != expected:
        raise PublishedError(
            f"{path} has sha256 {actual}, expected {expected}: the file is refused "
            f"(delete it and fetch again, or place the original file there by hand)"
        )


def fetch(cfg: dict, run: str, *, timeout: float = 30.0) -> Path:
    """Return the verified local copy of run `run`'s published predictions, downloading it once.

    The download goes to a temporary file that is checked before it replaces anything.
    """
    runs = cfg["published"]["runs"]
    if run not in runs:
        raise PublishedError(f"no published run {run!r} (published.runs: {', '.join(runs)})")
    spec = runs[run]["predictions"]
    path = local_path(cfg, run)
    if path.is_file():
        verify(path, spec["sha256"])
        return path

    def download(tmp: Path) -> None:
        try:
            with urllib.request.urlopen(spec["url"], timeout=timeout) as response:
                tmp.write_bytes(response.read())
        except (urllib.error.URLError, OSError) as exc:
            raise PublishedError(
                f"cannot download {spec['url']} ({exc}). Offline? Place the file by hand at "
                f"{path} (sha256 {spec['sha256']}); it is verified before use"
            ) from exc
        actual = sha256(tmp)
        if actual != spec["sha256"]:
            raise PublishedError(
                f"{spec['url']} was downloaded with sha256 {actual}, expected {spec['sha256']}: "
                f"refused, and nothing was written to {path}. The file behind the URL is not "
                f"the one the paper pinned; place the original at {path} by hand"
            )

    return atomic.write_with(path, download)


def fetch_all(cfg: dict, *, timeout: float = 30.0) -> dict[str, Path]:
    """:func:`fetch` for every published run; one error naming every file that failed."""
    paths, problems = {}, []
    for run in cfg["published"]["runs"]:
        try:
            paths[run] = fetch(cfg, run, timeout=timeout)
        except PublishedError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise PublishedError(problems[0])
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise PublishedError(f"{len(problems)} published files cannot be used:\n{listed}")
    return paths


def read_predictions(path: Path) -> pd.DataFrame:
    """Read a published CSV into columns label, prediction, correct (validation order).

    The baseline file has `Ground_Truth,Prediction,Is_Correct`; the improved one an extra
    leading `Index` column.
    """
    frame = pd.read_csv(path)
    missing = {"Ground_Truth", "Prediction", "Is_Correct"} - set(frame.columns)
    if missing:
        raise PublishedError(f"{path} lacks the columns {', '.join(sorted(missing))}")
    out = pd.DataFrame(
        {
            "label": frame["Ground_Truth"].astype(np.int64),
            "prediction": frame["Prediction"].astype(np.int64),
        }
    )
    out["correct"] = out["label"] == out["prediction"]
    stated = frame["Is_Correct"].astype(str).str.lower() == "true"
    if not (stated == out["correct"]).all():
        raise PublishedError(f"{path}: Is_Correct disagrees with Ground_Truth == Prediction")
    return out


def recompute(frame: pd.DataFrame, batch_size: int = PUBLISHED_BATCH_SIZE) -> dict:
    """Exact and batch-mean accuracy (%) and per-class accuracy of a published prediction set."""
    # Imported here: training imports torch, and the workflow's Snakefile imports this module
    # (through verification) only to name files.
    from .training import batch_means

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


def summarize_published(cfg: dict, out: Path) -> dict:
    """Fetch, verify and recompute every published run; write the summary JSON to `out`."""
    summary = {}
    fetched = fetch_all(cfg)
    for run, spec in cfg["published"]["runs"].items():
        path = fetched[run]
        summary[run] = {
            "claim": spec["claim"],
            "file": str(path),
            "sha256": spec["predictions"]["sha256"],
            **recompute(read_predictions(path)),
        }
    atomic.write_json(out, summary)
    return summary
