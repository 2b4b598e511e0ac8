"""One run's folder, `<output_dir>/<experiment>/seed<seed>/` (results/README.md lists its
files): the one place their names are written (the run_experiment rule declares its outputs from
:data:`FILES`), and the only code that reads and writes them. No torch: the Snakefile imports
it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.errors import ArtifactError

# output key of the run_experiment rule -> file name in the run's folder
FILES = {
    "metrics": "metrics.jsonl",
    "model": "model.safetensors",
    "predictions": "predictions.csv",
    "provenance": "provenance.json",
    "summary": "summary.json",
}


def run_dir(output_dir: str | Path, experiment: str, seed: int | str) -> str:
    """The folder of the run of `experiment` with `seed` under `output_dir`:
    `<output_dir>/<experiment>/seed<seed>` (with "{experiment}" and "{seed}", a rule pattern)."""
    return f"{output_dir}/{experiment}/seed{seed}"


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

    @contextmanager
    def writing(self, new: bool = False) -> Iterator[None]:
        """Hold the folder's lock (`.lock`): one writer at a time, a second refused in one line.
        A `new` folder (made for this write) that is left with nothing in it is removed."""
        lock = FileLock(self.root / ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise ArtifactError(
                f"another process is writing {self.root} (it holds {lock.lock_file}): wait for "
                "it to finish, or give another --out"
            ) from None
        try:
            yield
        finally:
            lock.release()
            if new and [p.name for p in self.root.iterdir()] == [".lock"]:
                Path(lock.lock_file).unlink()
                self.root.rmdir()


# --------------------------------------------------------------------------- reading and writing

PREDICTION_COLUMNS = ("image_id", "index", "label", "prediction", "correct", "top5", "confidence")

# How each result file is made, for the error message when it is missing.
_TRAIN = "`snakemake run_experiment` (or python -m convnext_tinyimagenet train --experiment NAME)"
_EVALUATE = (
    "`snakemake run_experiment` (or python -m convnext_tinyimagenet evaluate --experiment NAME)"
)
MADE_BY = {
    FILES["metrics"]: _TRAIN,
    FILES["predictions"]: _EVALUATE,
    FILES["summary"]: _EVALUATE,
}


class ResultFileError(ArtifactError, FileNotFoundError):
    """A result file that a figure, table or check needs is missing, empty or malformed.

    The message names the file and the workflow rule or command that makes it.
    """


def result_error(
    path: Path, problem: str = "is missing", made_by: str | None = None
) -> ResultFileError:
    """A ResultFileError for `path` that says what makes it (by default from :data:`MADE_BY`)."""
    made_by = made_by or MADE_BY.get(Path(path).name, "the workflow")
    return ResultFileError(f"{path} {problem}; it is made by {made_by}")


def require(path: Path, made_by: str | None = None) -> Path:
    """Return `path` if it is a file, else raise :class:`ResultFileError` saying how to make it."""
    path = Path(path)
    if not path.is_file():
        raise result_error(path, made_by=made_by)
    return path


def read_json(path: Path, text: str | None = None, where: str = "") -> dict:
    """The JSON object in `path` (or `text`, read from it); ResultFileError in one line when it
    is damaged: not UTF-8, not JSON (truncated, say), or not an object."""
    try:
        value = json.loads(_text(path) if text is None else text)
    except json.JSONDecodeError as exc:
        raise result_error(path, f"is damaged{where} ({exc}); delete it to make it again") from None
    if not isinstance(value, dict):
        raise result_error(path, f"is damaged{where} (not a JSON object); delete it")
    return value


def _text(path: Path) -> str:
    try:
        return require(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise result_error(path, f"is damaged (not UTF-8: {exc.reason}); delete it") from None


def read_metrics(path: Path) -> pd.DataFrame:
    """Read metrics.jsonl: one row per epoch, in file order (an empty file is an error)."""
    lines = [line for line in _text(path).splitlines() if line.strip()]
    if not lines:
        raise result_error(path, "is empty (no epoch finished)")
    return pd.DataFrame([read_json(path, line, f" at line {i}") for i, line in enumerate(lines, 1)])


def write_metrics(path: Path, history: Sequence[dict]) -> None:
    """Rewrite metrics.jsonl from the full history (so a resumed run has every epoch once)."""
    atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in history))


def read_summary(path: Path) -> dict:
    """Read a summary.json written by the evaluation."""
    return read_json(path)


def read_predictions(path: Path) -> pd.DataFrame:
    """Read a predictions.csv written by :func:`write_predictions`."""
    frame = pd.read_csv(require(path))
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise result_error(path, f"lacks the columns {', '.join(missing)}")
    return frame


def write_predictions(frame: pd.DataFrame, path: Path) -> Path:
    """Atomically write predictions.csv."""
    return atomic.write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


def update_provenance(path: Path, section: str, record: dict) -> None:
    """Set one command's section of a run's provenance.json, keeping the others."""
    current = read_json(path) if path.is_file() else {}
    current[section] = record
    atomic.write_json(path, current)
