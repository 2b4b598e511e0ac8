"""Atomic file writes: a reader (or a crash) never sees half a file.

Every result, checkpoint and cache entry goes through these helpers: the bytes are written to a
temporary file in the target's directory, flushed to disk, then renamed over the target
(`os.replace` is atomic on POSIX within one file system). A folder built in place (the data
cache, the unpacked zip) is built in a `.partial-` sibling and renamed the same way.

A writer holds an exclusive lock (flock) on its temporary file, or on the `.partial.lock` inside
its partial folder, for as long as it lives; the kernel drops the lock when the process dies,
however it dies. :func:`sweep` removes the temporaries whose lock nobody holds, and only those:
what a killed run left behind goes, a live writer's file stays (also one of another process,
container or, where the file system shares locks, another machine).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from convnext_tinyimagenet import storage

log = logging.getLogger(__name__)

PARTIAL_LOCK = ".partial.lock"  # inside a partial folder; removed before the folder is renamed
# The temporaries' names (8 random hex digits): `.<target>.XXXXXXXX.tmp`, and the partial
# folders `.<target>.partial-XXXXXXXX`; a file of another shape is never swept.
_TEMP = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
_PARTIAL = re.compile(r"^\..+\.partial-[0-9a-f]{8}$")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` if the block succeeds.

    The file gets the permissions open() gives (0666 less the umask: results stay readable to
    others, e.g. a host user reading a container's bind-mounted results/). On an exception the
    temporary file is removed and `target` is left as it was. Temporaries of the same target
    left by dead processes are removed first. A full disk or a folder that cannot be written is
    a StorageError naming the target.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep(target.parent, prefix=f".{target.name}.")
        tmp_path = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
        fd = _locked(tmp_path)
    except OSError as exc:
        error = _storage_error(target, exc)
        if error is None:
            raise
        raise error from exc
    try:
        yield tmp_path
        with tmp_path.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp_path.replace(target)
    except BaseException as exc:
        full = isinstance(exc, Exception) and storage.disk_full(target.parent, exc)
        tmp_path.unlink(missing_ok=True)
        os.close(fd)
        if full:
            raise storage.no_space(target.parent, str(target), exc) from exc
        raise
    os.close(fd)  # releases the lock, once the file has its name


def _storage_error(target: Path, exc: OSError) -> storage.StorageError | None:
    if exc.errno in storage.NOT_WRITABLE:
        return storage.StorageError(
            f"cannot write {target} ({exc.strerror}); make {target.parent} writable or point "
            "the config (or --out) at a writable folder"
        )
    if storage.disk_full(target.parent, exc):
        return storage.no_space(target.parent, str(target), exc)
    return None


def _lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting: False when a live process holds it (or
    the file system has no locks)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _locked(path: Path) -> int:
    """A new file at `path`, created as open() creates one (the kernel applies the umask), open
    and locked."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666)
    _lock(fd)
    return fd


@contextlib.contextmanager
def partial_dir(target: str | Path) -> Iterator[Path]:
    """Yield a new hidden sibling folder of `target` (`.<name>.partial-XXXXXXXX`) to build
    `target` in, locked for as long as this process builds; whatever is left of it is removed
    afterwards. Partial folders of `target` left by dead processes are removed first. Before
    renaming the folder into place, unlink its PARTIAL_LOCK (the lock stays held)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep(target.parent, prefix=f".{target.name}.partial-")
    tmp = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # as mkdir makes it: others may read a shared cache
    fd = None
    try:
        fd = _locked(tmp / PARTIAL_LOCK)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if fd is not None:
            os.close(fd)


def sweep(directory: str | Path, prefix: str = ".") -> list[Path]:
    """Remove the leftovers of dead writers in `directory` whose names start with `prefix`:
    temporary files (`.*.tmp`) and partial folders (`.*.partial-*`) whose lock no process
    holds. A partial folder without its lock file is left alone. Returns what was removed."""
    removed, entries = [], []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(directory) as it:
        entries = [e for e in it if e.name.startswith(prefix)]
    for entry in entries:
        if _TEMP.match(entry.name) and entry.is_file(follow_symlinks=False):
            lock = Path(entry.path)
        elif _PARTIAL.match(entry.name) and entry.is_dir(follow_symlinks=False):
            lock = Path(entry.path) / PARTIAL_LOCK
        else:
            continue
        if _remove_if_abandoned(Path(entry.path), lock):
            removed.append(Path(entry.path))
    if removed:
        log.info("removed %d leftover(s) of interrupted writes: %s", len(removed),
                 ", ".join(str(p) for p in removed))  # fmt: skip
    return removed


def _remove_if_abandoned(path: Path, lock: Path) -> bool:
    """Remove `path` if this process can take the lock of `lock` (its writer is gone)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:  # gone, or not ours to lock: leave it
        return False
    try:
        if not _lock(fd):
            return False
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def write_with(target: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Call `writer(tmp_path)` and atomically move the file it wrote onto `target`."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def write_text(target: str | Path, text: str) -> Path:
    """Atomically write `text` (UTF-8) to `target`."""
    return write_with(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(target: str | Path, data: Any) -> Path:
    """Atomically write `data` as indented JSON (keys in insertion order) to `target`."""
    return write_text(target, json.dumps(data, indent=2, allow_nan=False) + "\n")
