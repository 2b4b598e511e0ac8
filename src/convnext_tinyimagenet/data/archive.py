"""The original tiny-imagenet-200.zip: fetched by URL, checked against its md5 pin, unpacked safely.

The improved notebook ran `wget http://cs231n.stanford.edu/tiny-imagenet-200.zip` (248,100,043
bytes), `unzip -q` and read the tree with ImageFolder; the `folder` source reads the same tree.
A download lands in a temporary file that replaces nothing until its md5 matches the pin the
TinyImageNet loaders publish; its sha256 is returned for provenance. Unpacking refuses any member
that could land outside the target folder and builds the tree in a temporary sibling renamed into
place, so a half-unpacked tree never looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import stat
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

from tqdm import tqdm  # plain bars: tqdm.auto warns in a notebook without ipywidgets

from convnext_tinyimagenet import atomic, storage
from convnext_tinyimagenet.data.store import DataError

log = logging.getLogger(__name__)

# Written inside every tree an unpack puts in place: only such a tree is replaced by the next.
MARKER = ".unpacked-from-zip"
_BLOCK = 1 << 20  # 1 MiB reads: the 237 MiB zip is hashed and copied in about 240 blocks
# The compression methods Python's zipfile reads (not Deflate64, 9, that Windows may write).
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


class ArchiveError(DataError):
    """The archive cannot be fetched, does not match its pin, or is unsafe to unpack."""


def file_digests(path: str | Path) -> dict[str, str]:
    """The hex md5 and sha256 of a file, read once in 1 MiB blocks."""
    hashes = {"md5": hashlib.md5(usedforsecurity=False), "sha256": hashlib.sha256()}
    with Path(path).open("rb") as handle:
        while block := handle.read(_BLOCK):
            for digest in hashes.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in hashes.items()}


def fetch_archive(url: str, md5: str, path: str | Path, *, timeout: float = 60.0,
                  progress: bool = True) -> dict:  # fmt: skip
    """Return the provenance of the archive at `path` (url, path, bytes, md5, sha256, and whether
    it was downloaded now), downloading it from `url` only when no file is there.

    A file already present is checked, not downloaded again. A download goes to a temporary file
    beside `path` that replaces nothing unless its md5 is `md5`. Every failure (offline, another
    md5) is one ArchiveError line saying where to place the file by hand.
    """
    path = Path(path)
    downloaded = not path.is_file()
    if downloaded:
        with atomic.atomic_path(path) as tmp:
            digests = _download(url, tmp, path, md5, timeout, progress)
            if digests["md5"] != md5:
                raise ArchiveError(
                    f"{url} was downloaded with md5 {digests['md5']}, expected {md5}: refused, "
                    f"and nothing was written to {path}; place the original tiny-imagenet-200.zip "
                    f"there by hand"
                )
    else:
        digests = check_archive(path, md5, url=url)
    log.info("%s: md5 %s as pinned, sha256 %s", path, md5, digests["sha256"])
    return {"url": url, "path": str(path), "bytes": path.stat().st_size, **digests,
            "downloaded": downloaded}  # fmt: skip


def check_archive(path: str | Path, md5: str, *, url: str | None = None) -> dict[str, str]:
    """The md5 and sha256 of the file at `path`, or an ArchiveError when its md5 is not `md5`."""
    digests = file_digests(path)
    if digests["md5"] != md5:
        again = f"delete it to download it again from {url}" if url else "delete it"
        raise ArchiveError(
            f"{path} has md5 {digests['md5']}, expected {md5}: refused ({again}, or place the "
            f"original tiny-imagenet-200.zip there by hand)"
        )
    return digests


def _download(url: str, tmp: Path, target: Path, md5: str, timeout: float,
              progress: bool) -> dict[str, str]:  # fmt: skip
    """Stream `url` into `tmp`, hashing as it goes; the digests of what arrived."""
    hashes = {"md5": hashlib.md5(usedforsecurity=False), "sha256": hashlib.sha256()}
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, desc=f"downloading {target.name}", unit="B", unit_scale=True,
                      unit_divisor=1024, disable=not progress) as bar:  # fmt: skip
                while block := response.read(_BLOCK):
                    out.write(block)
                    for digest in hashes.values():
                        digest.update(block)
                    bar.update(len(block))
    except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
        reason = " ".join(str(getattr(exc, "reason", None) or exc or type(exc).__name__).split())
        raise ArchiveError(
            f"cannot download {url} ({reason}). Offline? Place tiny-imagenet-200.zip by hand at "
            f"{target} (md5 {md5}); it is checked before use"
        ) from exc
    return {name: digest.hexdigest() for name, digest in hashes.items()}


def unpack(archive: str | Path, root: str | Path, *, md5: str | None = None,
           progress: bool = True) -> Path:  # fmt: skip
    """Unpack `archive`, whose members share one top folder (tiny-imagenet-200/), so that this
    folder becomes `root`; return `root`.

    With `md5`, the archive is checked first (a file placed by hand is checked where it is used).
    Every member is checked before anything is written: an absolute path, a `..` component or a
    symbolic link is refused in one line naming the member. The tree is built in a temporary
    sibling of `root` and renamed into place once complete; an existing `root` is replaced as a
    whole. Files keep the archive's modification times, so unpacking the same archive again gives
    the folder source the same data version, and so its cache.
    """
    archive, root = Path(archive), Path(root).expanduser()
    _refuse_a_folder_not_ours(root)
    if md5 is not None:
        check_archive(archive, md5)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            top = _top_folder(archive, members, root)
            _refuse_unreadable(archive, members)
            what = f"unpacking {archive.name}"
            storage.check_space(root.parent, sum(info.file_size for info in members), what)
            with atomic.partial_dir(root) as tmp:  # removed, also by the next unpack if killed
                bar = tqdm(members, desc=what, unit="file", disable=not progress)
                for info in bar:
                    if parts := _parts(info.filename):
                        _extract_member(zf, info, tmp.joinpath(*parts), root.parent)
                if not (tmp / top / "wnids.txt").is_file():
                    raise ArchiveError(
                        f"{archive} holds no {top}/wnids.txt: not the tiny-imagenet-200.zip layout"
                    )
                (tmp / top / MARKER).write_text(f"unpacked from {archive.name}\n")
                _replace_dir(tmp / top, root)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise ArchiveError(f"{archive} is not a readable zip archive ({exc})") from exc
    log.info("%s: %d members unpacked into %s", archive, len(members), root)
    return root


def _refuse_a_folder_not_ours(root: Path) -> None:
    """An unpack replaces `root` whole: only an earlier unpack's tree (its marker inside) or an
    empty folder may be replaced; anything else is the user's, and is refused in one line."""
    if root.is_dir() and not (root / MARKER).is_file() and any(root.iterdir()):
        raise ArchiveError(
            f"{root} exists, is not empty and was not unpacked here (no {MARKER} inside): "
            "unpacking would replace it whole. Set data.folder.root to the unpacked "
            "tiny-imagenet-200 folder, or move this one away"
        )
    if root.exists() and not root.is_dir():
        raise ArchiveError(f"{root} is a file, not a folder: set data.folder.root to a folder")


def _parts(name: str) -> list[str]:
    """A member name's path components; both separators count, as unzip on Windows reads them."""
    return [part for part in re.split(r"[/\\]", name) if part not in ("", ".")]


def _top_folder(archive: Path, members: list[zipfile.ZipInfo], root: Path) -> str:
    """The one top folder every member lies in, once no member can land outside it."""
    tops = set()
    for info in members:
        name = info.filename
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            why = "has an absolute path, which would land"
        elif ".." in re.split(r"[/\\]", name):
            why = "has a '..' component, which would land"
        elif stat.S_ISLNK(info.external_attr >> 16):
            why = "is a symbolic link, which could point"
        else:
            parts = _parts(name)
            if parts:  # a member named "" or "./" holds nothing
                tops.add(parts[0] if len(parts) > 1 or info.is_dir() else "")
            continue
        raise ArchiveError(
            f"{archive}: member {name!r} {why} outside {root}; refused, nothing was unpacked"
        )
    if len(tops) != 1 or "" in tops:
        found = sorted(tops - {""}) + (["files at the top level"] if "" in tops else [])
        raise ArchiveError(
            f"{archive} does not hold one top folder (found {', '.join(found) or 'no members'}): "
            f"not the tiny-imagenet-200.zip layout"
        )
    return tops.pop()


def _refuse_unreadable(archive: Path, members: list[zipfile.ZipInfo]) -> None:
    """Refuse, before anything is written, a member zipfile cannot read (encrypted, or another
    compression method) or one that a file of the archive would have to hold as a folder."""
    files = {tuple(_parts(info.filename)) for info in members if not info.is_dir()}
    for info in members:
        parts = tuple(_parts(info.filename))
        clash = next((parts[:k] for k in range(1, len(parts)) if parts[:k] in files), None)
        if info.flag_bits & 0x1:
            why = "is encrypted (the zip needs a password)"
        elif info.compress_type not in _METHODS:
            why = f"uses compression method {info.compress_type}, which Python cannot read"
        elif clash or (info.is_dir() and parts in files):
            why = f"lies in {'/'.join(clash or parts)!r}, which the archive also holds as a file"
        else:
            continue
        raise ArchiveError(
            f"{archive}: member {info.filename!r} {why}; refused, nothing was unpacked (unpack "
            "it by hand into data.folder.root)"
        )


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, at: Path) -> None:
    """Write one checked member to `dest` with the archive's modification time (local time, as
    unzip sets it); a full disk under `at` is one line."""
    try:
        if info.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as source, dest.open("wb") as out:
            shutil.copyfileobj(source, out, _BLOCK)
    except OSError as exc:
        if storage.disk_full(at, exc):
            raise storage.no_space(at, f"the unpacked {zf.filename}", exc) from None
        raise
    mtime = time.mktime((*info.date_time, 0, 0, -1))
    os.utime(dest, (mtime, mtime))


def _replace_dir(new: Path, target: Path) -> None:
    """Rename the complete tree `new` onto `target`, moving an existing `target` aside first and
    deleting it only once `new` is in place."""
    if not (target.exists() or target.is_symlink()):
        new.rename(target)
        return
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        old.rename(target)
        raise
    if old.is_symlink():  # a link to a folder elsewhere: drop the link, not what it points to
        old.unlink()
    else:
        shutil.rmtree(old, ignore_errors=True)
