"""What the artifact keeps on disk and reads back: digests that catch a damaged file, and room
checked before a large write, so that a full disk is one line rather than a signal.

Digests are XXH3-128 (xxhash), written ``xxh3_128:<32 hex>``. They guard against damage (a bad
disk, a half-copied folder, a stray write), not against an attacker: nothing here is unpickled
(state.pt is read with ``weights_only=True``). On the 2-core development machine XXH3 hashed the
1.35 GB TinyImageNet cache in 0.2-0.3 s from the page cache where sha256 took 1.0 s and blake2b
2.3 s (docs/performance.md), and the cache is checked once per process.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import xxhash

from convnext_tinyimagenet.errors import ArtifactError

ALGORITHM = "xxh3_128"
_CHUNK = 1 << 20  # bytes read per step while hashing a file (fits in L2: fastest here)
# errno values that mean "no room" and "not allowed to write here"
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
_FULL = 1 << 20  # free bytes below which a failed write is taken for a full disk


class StorageError(ArtifactError):
    """A file that is damaged, or a folder that is full or cannot be written (named)."""


def hasher() -> xxhash.xxh3_128:
    """A new digest; :func:`hexdigest` labels what it holds with the algorithm."""
    return xxhash.xxh3_128()


def hexdigest(digest: xxhash.xxh3_128) -> str:
    return f"{ALGORITHM}:{digest.hexdigest()}"


def file_digest(path: str | Path) -> str:
    """The digest of a file's bytes, read in chunks (not through a memory map: a read error
    there, or a file cut short meanwhile, is SIGBUS, not an exception)."""
    digest, buffer = hasher(), bytearray(_CHUNK)
    view = memoryview(buffer)
    with Path(path).open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return hexdigest(digest)


# Files already checked by this process, by identity and change time: the notebook opens the
# data cache three times (summary, train, evaluate), and each would hash 1.35 GB again.
_VERIFIED: set[tuple] = set()


def verify_file(path: str | Path, expected: str | None, fix: str) -> None:
    """Raise StorageError, naming `path` and saying `fix`, unless the file's digest is
    `expected`; a file unchanged since this process last checked it is not read again."""
    path = Path(path)
    if expected is None:
        raise StorageError(f"{path} has no recorded digest (written by an older version); {fix}")
    try:
        st = path.stat()
        key = (
            str(path.resolve()),
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        )
        if key in _VERIFIED:
            return
        actual = file_digest(path)
    except OSError as exc:
        raise StorageError(f"{path} cannot be read ({exc.strerror or exc}); {fix}") from exc
    if actual != expected:
        raise damaged(path, fix)
    _VERIFIED.add(key)


def damaged(path: str | Path, fix: str) -> StorageError:
    return StorageError(f"{path} is damaged (its content no longer matches its digest); {fix}")


def free_bytes(directory: str | Path) -> int:
    """Free bytes for an unprivileged writer on the file system of `directory` (or of its
    nearest existing parent, for a folder not made yet)."""
    path = Path(directory).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_space(directory: str | Path, needed: int, what: str) -> None:
    """Raise StorageError with the needed and free bytes when `directory` lacks room for
    `what`: failing here beats a full disk half way through (a memory-mapped write that finds
    no room is SIGBUS, which no handler sees)."""
    free = free_bytes(directory)
    if free < needed:
        raise StorageError(
            f"not enough disk space in {directory} for {what}: needs {needed:,} bytes, "
            f"{free:,} free; free some space (or point the config elsewhere) and rerun"
        )


def disk_full(directory: str | Path, exc: BaseException) -> bool:
    """Whether a failed write failed for want of room: ENOSPC, or a writer's own error that says
    so (safetensors: "No space left on device (os error 28)") or that left less than a
    mebibyte free (torch.save: "file write failed")."""
    if isinstance(exc, OSError):
        return exc.errno in NO_SPACE
    if any(os.strerror(code) in str(exc) for code in NO_SPACE):
        return True
    try:
        return free_bytes(directory) < _FULL
    except OSError:
        return False


def no_space(directory: str | Path, what: str, exc: BaseException) -> StorageError:
    """The one-line error for a write that ran out of room after all: another writer filled
    the disk after :func:`check_space` (the free bytes are not stated: a writer's open file can
    still hold the blocks of what it wrote)."""
    reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return StorageError(
        f"the disk of {directory} filled up while writing {what} ({reason}); free some space "
        "and rerun"
    )


def reserve(path: str | Path, what: str) -> None:
    """Allocate every block of the file at `path` now (posix_fallocate), so that filling it
    through a memory map cannot run out of room; ENOSPC here is a StorageError. A file
    system without fallocate is left as it is."""
    if not hasattr(os, "posix_fallocate"):
        return
    with Path(path).open("rb+") as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise StorageError(
                    f"not enough disk space in {Path(path).parent} for {what}: needs {size:,} "
                    f"bytes, {free_bytes(Path(path).parent):,} free; free some space and rerun"
                ) from exc
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise


def require_writable(directory: str | Path, what: str, fix: str) -> Path:
    """Make `directory` (with its parents) and check a file can be created in it; a read-only
    or foreign folder is one StorageError naming it, before any work is done."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):  # unnamed where the OS allows: no leftover
            pass
    except OSError as exc:
        raise StorageError(
            f"cannot write {what} in {directory} ({exc.strerror or exc}); {fix}"
        ) from exc
    return directory
