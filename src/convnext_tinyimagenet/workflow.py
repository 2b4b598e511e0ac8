"""What a rule's script in rules/scripts/ needs around its one call into the package (which
it hands the rule's own input, output and params): its log, and errors a person can read."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from convnext_tinyimagenet.errors import ArtifactError


def _log_path(snakemake: Any) -> Path | None:
    log = snakemake.log
    if not len(log):
        return None
    return Path(log.get("printed", log[0]) if hasattr(log, "get") else log[0])


@contextlib.contextmanager
def rule_log(snakemake: Any) -> Iterator[None]:
    """Send the block's logging, prints and progress to the rule's log file.

    A user error (:class:`ArtifactError`) ends the job with its one line, written to the log and
    to the console, where Snakemake would otherwise only say "check log file(s)". A notebook
    cell's error (papermill) is one line too: the cell and its exception. Any other exception
    leaves its traceback in the log and, on the console, its last line and the log's last lines.
    """
    path = _log_path(snakemake)
    console = sys.stderr
    if path is None:
        handle = console
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a", encoding="utf-8")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=handle, force=True)
    try:
        with _output_to(handle, descriptors=handle is not console):
            yield
    except ArtifactError as exc:
        _report(handle, console, f"error in {_job(snakemake)}: {exc}")
        raise SystemExit(1) from None
    except Exception as exc:
        traceback.print_exc(file=handle)
        if hasattr(exc, "ename") and hasattr(exc, "evalue"):  # papermill: a cell raised
            cell = f"notebook cell [{getattr(exc, 'exec_count', '?')}]"
            first = next((line for line in str(exc.evalue).splitlines() if line.strip()), "")
            _report(handle, console, f"error in {_job(snakemake)}: {cell}: {exc.ename}: {first}")
            raise SystemExit(1) from None
        if handle is not console:
            handle.flush()
            tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-12:]
            print(f"last lines of {path}:", *tail, sep="\n  ", file=console)
        _report(handle, console, f"error in {_job(snakemake)}: {type(exc).__name__}: {exc}")
        raise SystemExit(1) from None
    finally:
        if handle is not console:
            handle.close()


@contextlib.contextmanager
def _output_to(handle: Any, descriptors: bool) -> Iterator[None]:
    """Prints to `handle`, and with `descriptors` the stderr descriptor too, which child
    processes inherit: the notebook's kernel writes its warnings to the log. (The stdout
    descriptor stays the console's: a report printed to sys.__stdout__ shows there.)"""
    with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        if not descriptors:
            yield
            return
        handle.flush()
        saved = os.dup(2)
        try:
            os.dup2(handle.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def by_run(labels: list, **files: list) -> dict[str, dict[int, dict[str, str]]]:
    """A rule's per-run inputs as experiment -> seed -> {kind: path}: `labels` are the
    (experiment, seed) pairs in the order of each list in `files`."""
    for kind, paths in files.items():
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} {kind} files for {len(labels)} runs")
    runs: dict[str, dict[int, dict[str, str]]] = {}
    for index, (name, seed) in enumerate(labels):
        runs.setdefault(name, {})[seed] = {kind: paths[index] for kind, paths in files.items()}
    return runs


def _job(snakemake: Any) -> str:
    """`rule NAME` with the job's wildcards: `rule run_experiment (experiment=a, seed=1)`."""
    wildcards = dict(getattr(snakemake, "wildcards", {}) or {})
    shown = ", ".join(f"{key}={value}" for key, value in wildcards.items())
    return f"rule {snakemake.rule}" + (f" ({shown})" if shown else "")


def _report(handle: Any, console: Any, line: str) -> None:
    if handle is not console:
        print(line, file=handle, flush=True)
    print(line, file=console, flush=True)
