"""The layout of one run's folder: the one place its file names are written.

`<output_dir>/<experiment>/` after training and evaluation:
  config.yaml        the settings the run read (its experiment, data, seed, speed settings)
  provenance.json    seed, versions, device, git commit, data fingerprint, start/end per command
  metrics.jsonl      one JSON line per epoch
  model.safetensors  the best epoch's weights (restored at the end, as both notebooks did)
  checkpoints/<run digest>/  the last complete epoch, for resuming (checkpoint.py); one folder per
                     run identity, so a changed config starts afresh and earlier checkpoints stay
  predictions.csv    one row per validation image
  summary.json       accuracy (exact and batch-mean), top-5, Wilson 95 % interval, per class

The workflow's `run_experiment` rule declares its outputs from :data:`FILES` and
:func:`run_dir`; the by-hand commands (`train`, `evaluate`) use the same two names.
This module imports nothing heavy: the Snakefile reads it when it loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# output key of the run_experiment rule -> file name in the run's folder
FILES = {
    "metrics": "metrics.jsonl",
    "model": "model.safetensors",
    "predictions": "predictions.csv",
    "provenance": "provenance.json",
    "summary": "summary.json",
}


def run_dir(output_dir: str | Path, experiment: str) -> str:
    """The folder of experiment `experiment`'s run under `output_dir` (also a rule pattern)."""
    return f"{output_dir}/{experiment}"


@dataclass(frozen=True)
class RunFolder:
    """The files of one run, by role."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / FILES["metrics"]

    @property
    def model(self) -> Path:
        return self.root / FILES["model"]

    @property
    def predictions(self) -> Path:
        return self.root / FILES["predictions"]

    @property
    def provenance(self) -> Path:
        return self.root / FILES["provenance"]

    @property
    def summary(self) -> Path:
        return self.root / FILES["summary"]

    def checkpoints(self, digest: str) -> Path:
        """One folder per run identity (the first 16 hex digits of its digest)."""
        return self.root / "checkpoints" / digest[:16]
