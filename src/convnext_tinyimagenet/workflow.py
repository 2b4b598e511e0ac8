"""What a rule's script in rules/scripts/ needs around its one call into the package (which
it hands the rule's own input, output and params): its log, and errors a person can read."""

from __future__ import annotations

import contextlib
import logging
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
    to the console, where Snakemake would otherwise only say "check log file(s)". Any other
    exception leaves its traceback in the log and its last line on the console.
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
        with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
            yield
    except ArtifactError as exc:
        _report(handle, console, f"error in rule {snakemake.rule}: {exc}")
        raise SystemExit(1) from None
    except Exception as exc:
        traceback.print_exc(file=handle)
        where = f" (traceback in {path})" if path is not None else ""
        _report(
            handle, console, f"error in rule {snakemake.rule}: {type(exc).__name__}: {exc}{where}"
        )
        raise SystemExit(1) from None
    finally:
        if handle is not console:
            handle.close()


def _report(handle: Any, console: Any, line: str) -> None:
    if handle is not console:
        print(line, file=handle, flush=True)
    print(line, file=console, flush=True)
