"""Atomic file writes: a reader (or a crash) never sees half a file.

Every result, checkpoint and cache entry goes through these helpers: the bytes are written to a
temporary file in the target's directory, flushed to disk, then renamed over the target
(`os.replace` is atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process's umask: from /proc on Linux (reading it does not change it), else by
    setting and restoring it, once, at import."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


# What open() would have created: mkstemp makes its file private (0600), which would leave
# results unreadable to anyone else, e.g. a host user reading a container's bind-mounted results/.
FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` if the block succeeds.

    The file gets the permissions a plain open() would give it (0666 less the umask). On an
    exception the temporary file is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with tmp_path.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp_path.chmod(FILE_MODE)
        tmp_path.replace(target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


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
