"""tiny-imagenet-200.zip: fetched from a local HTTP server, pinned by md5, unpacked safely, read.

The zip is built here in the original layout (tiny-imagenet-200/wnids.txt, train/<wnid>/images,
val/images with val/val_annotations.txt, test/images); nothing leaves 127.0.0.1.
"""

import functools
import hashlib
import http.server
import io
import socket
import stat
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from convnext_tinyimagenet.data import archive as archive_module
from convnext_tinyimagenet.data.archive import MARKER, ArchiveError, fetch_archive, unpack
from convnext_tinyimagenet.data.store import DataError, load_store
from convnext_tinyimagenet.errors import ArtifactError

# wnids.txt in file order; the store's classes are these sorted
WNIDS_FILE_ORDER = ("n02085620", "n01443537")
TRAIN = {wnid: [f"{wnid}_{i}.JPEG" for i in (0, 1, 10)] for wnid in WNIDS_FILE_ORDER}
VAL = (("val_0.JPEG", "n02085620"), ("val_1.JPEG", "n01443537"), ("val_2.JPEG", "n01443537"))
DATE = (2015, 2, 9, 10, 30, 0)  # every member's modification time


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _layout() -> dict[str, bytes]:
    """Member name -> bytes of a small tiny-imagenet-200.zip."""
    top = "tiny-imagenet-200"
    files = {f"{top}/wnids.txt": "\n".join(WNIDS_FILE_ORDER).encode() + b"\n",
             f"{top}/words.txt": b"n01443537\tgoldfish\nn02085620\tChihuahua\n"}  # fmt: skip
    for wnid, names in TRAIN.items():
        files[f"{top}/train/{wnid}/{wnid}_boxes.txt"] = b"".join(
            f"{name}\t0\t0\t63\t63\n".encode() for name in names
        )
        files.update({f"{top}/train/{wnid}/images/{name}": b"" for name in names})
    files.update({f"{top}/val/images/{name}": b"" for name, _ in VAL})
    files[f"{top}/val/val_annotations.txt"] = b"".join(
        f"{name}\t{wnid}\t0\t0\t63\t63\n".encode() for name, wnid in VAL
    )
    files[f"{top}/test/images/test_0.JPEG"] = b""
    return {name: data or _jpeg(i) for i, (name, data) in enumerate(files.items())}


def _zip(path: Path, members: dict[str, bytes], extra: tuple[zipfile.ZipInfo, ...] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("tiny-imagenet-200/", DATE), b"")  # as `zip -r` writes it
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, DATE), data)
        for info in extra:
            zf.writestr(info, b"payload")
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@pytest.fixture
def server(tmp_path):
    """http.server on 127.0.0.1 (a free port) in a thread, serving tmp_path/www; `paths` lists
    the requests it answered. Stopped, with a bounded join, after the test."""
    www = tmp_path / "www"
    www.mkdir()
    paths: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # the base class's signature
            paths.append(self.path)

    handler = functools.partial(Handler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield SimpleNamespace(www=www, url=f"http://127.0.0.1:{httpd.server_port}", paths=paths)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def served_zip(server):
    """The small zip on the server: (url, md5, bytes)."""
    path = _zip(server.www / "tiny-imagenet-200.zip", _layout())
    return SimpleNamespace(url=f"{server.url}/tiny-imagenet-200.zip", md5=_md5(path),
                           data=path.read_bytes())  # fmt: skip


def _fetch(url: str, md5: str, path: Path) -> dict:
    return fetch_archive(url, md5, path, timeout=5, progress=False)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------------------------
# fetch_archive


def test_a_download_is_checked_and_its_sha256_recorded(tmp_path, server, served_zip):
    path = tmp_path / "resources" / "tiny-imagenet-200.zip"
    record = _fetch(served_zip.url, served_zip.md5, path)
    assert path.read_bytes() == served_zip.data
    assert record == {
        "url": served_zip.url,
        "path": str(path),
        "bytes": len(served_zip.data),
        "md5": served_zip.md5,
        "sha256": hashlib.sha256(served_zip.data).hexdigest(),
        "downloaded": True,
    }
    assert server.paths == ["/tiny-imagenet-200.zip"]
    assert _names(path.parent) == ["tiny-imagenet-200.zip"]  # no temporary file left


def test_a_wrong_md5_is_refused_and_nothing_is_left(tmp_path, server, served_zip):
    path = tmp_path / "resources" / "tiny-imagenet-200.zip"
    pin = "0" * 32
    with pytest.raises(ArchiveError) as caught:
        _fetch(served_zip.url, pin, path)
    message = str(caught.value)
    assert "\n" not in message
    for named in (served_zip.url, pin, served_zip.md5, str(path), "by hand"):
        assert named in message
    assert _names(path.parent) == []


def test_a_present_file_is_checked_not_downloaded_again(tmp_path, server, served_zip):
    path = tmp_path / "tiny-imagenet-200.zip"
    first = _fetch(served_zip.url, served_zip.md5, path)
    again = _fetch(served_zip.url, served_zip.md5, path)
    assert again == first | {"downloaded": False}
    assert len(server.paths) == 1
    # a file placed by hand with another md5 is refused, kept, and not replaced by a download
    path.write_bytes(b"not the zip")
    with pytest.raises(ArchiveError, match=rf"{path} has md5 .*, expected {served_zip.md5}"):
        _fetch(served_zip.url, served_zip.md5, path)
    assert path.read_bytes() == b"not the zip" and len(server.paths) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("where", ["offline", "missing"])
def test_no_download_says_where_to_place_the_file(tmp_path, server, where):
    url = {"offline": f"http://127.0.0.1:{_closed_port()}/tiny-imagenet-200.zip",
           "missing": f"{server.url}/nothing-here.zip"}[where]  # fmt: skip
    path = tmp_path / "resources" / "tiny-imagenet-200.zip"
    with pytest.raises(ArchiveError) as caught:
        _fetch(url, "90528d7ca1a48142e341f4ef8d21d0de", path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot download {url} (")
    assert message.endswith(
        f"Place tiny-imagenet-200.zip by hand at {path} "
        f"(md5 90528d7ca1a48142e341f4ef8d21d0de); it is checked before use"
    )
    assert _names(path.parent) == []


# --------------------------------------------------------------------------------------------
# unpack


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, DATE)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("../x", "file"),
        ("tiny-imagenet-200/train/../../../x", "file"),
        ("{tmp}/x", "file"),
        ("tiny-imagenet-200\\..\\..\\x", "file"),
        ("tiny-imagenet-200/train/link", "symlink"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "backslash-dotdot", "symlink"],
)
def test_a_member_that_could_escape_is_refused(tmp_path, name, kind):
    name = name.format(tmp=tmp_path)
    member = _symlink(name) if kind == "symlink" else zipfile.ZipInfo(name, DATE)
    zip_path = _zip(tmp_path / "in" / "tiny-imagenet-200.zip", _layout(), (member,))
    assert name in zipfile.ZipFile(zip_path).namelist()  # stored as written
    root = tmp_path / "out" / "resources" / "tiny-imagenet-200"
    with pytest.raises(ArchiveError) as caught:
        unpack(zip_path, root, progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert f"member {name!r}" in message and "nothing was unpacked" in message
    assert not (tmp_path / "out").exists()  # checked before anything is written
    assert _names(tmp_path) == ["in"]  # nothing landed beside it either


def _patch(path: Path, name: str, field: str) -> None:
    """Mark member `name` in its local and central headers as encrypted (a password-protected
    zip) or as Deflate64 (method 9, as Windows' compressed folders write large files): Python's
    zipfile writes neither."""
    data, encoded = bytearray(path.read_bytes()), name.encode()
    # (signature, offset of the flags, of the method, of the name) in each kind of header
    for signature, flags_at, method_at, name_at in ((b"PK\x03\x04", 6, 8, 30),
                                                    (b"PK\x01\x02", 8, 10, 46)):  # fmt: skip
        start = 0
        while (start := data.find(signature, start)) >= 0:
            if data[start + name_at : start + name_at + len(encoded)] == encoded:
                if field == "encrypted":
                    data[start + flags_at] |= 0x1
                else:
                    data[start + method_at : start + method_at + 2] = (9).to_bytes(2, "little")
            start += 4
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("encrypted", "is encrypted"),
        ("deflate64", "uses compression method 9"),
        ("file and folder", "also holds as a file"),
    ],
)
def test_a_member_zipfile_cannot_write_is_refused_before_anything_is_written(tmp_path, kind, named):
    name = "tiny-imagenet-200/train/extra.txt"
    extra = {
        "encrypted": (zipfile.ZipInfo(name, DATE),),
        "deflate64": (zipfile.ZipInfo(name, DATE),),
        "file and folder": (zipfile.ZipInfo(name, DATE), zipfile.ZipInfo(f"{name}/x", DATE)),
    }[kind]
    zip_path = _zip(tmp_path / "in" / "tiny-imagenet-200.zip", _layout(), extra)
    if kind in ("encrypted", "deflate64"):
        _patch(zip_path, name, kind)
    root = tmp_path / "out" / "resources" / "tiny-imagenet-200"
    with pytest.raises(ArchiveError) as caught:
        unpack(zip_path, root, progress=False)
    message = str(caught.value)
    assert "\n" not in message and named in message and "nothing was unpacked" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("when", ["before", "during"])
def test_a_full_disk_is_one_line_naming_the_folder(tmp_path, monkeypatch, when):
    """Too little room is found before the unpack starts; a disk that fills up during it stops
    it in one line naming the folder, with nothing left behind."""
    zip_path = _zip(tmp_path / "in" / "tiny-imagenet-200.zip", _layout())
    root = tmp_path / "out" / "tiny-imagenet-200"
    root.parent.mkdir()
    if when == "before":
        monkeypatch.setattr(archive_module.storage, "free_bytes", lambda directory: 1000)
    else:

        def full(*args):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(archive_module.shutil, "copyfileobj", full)
    with pytest.raises(ArtifactError) as caught:
        unpack(zip_path, root, progress=False)
    message = str(caught.value)
    assert "\n" not in message and str(root.parent) in message and "space" in message
    assert _names(root.parent) == []


def test_unpacking_puts_the_top_folder_at_root_with_the_archive_times(tmp_path):
    members = _layout()
    zip_path = _zip(tmp_path / "tiny-imagenet-200.zip", members)
    root = tmp_path / "resources" / "tiny-imagenet-200"
    assert unpack(zip_path, root, md5=_md5(zip_path), progress=False) == root
    unpacked = {
        f"tiny-imagenet-200/{p.relative_to(root).as_posix()}": p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != MARKER
    }
    assert unpacked == members
    assert (root / MARKER).read_text() == "unpacked from tiny-imagenet-200.zip\n"
    assert _names(root.parent) == ["tiny-imagenet-200"]  # no temporary sibling left
    wnids = root / "wnids.txt"
    assert wnids.stat().st_mtime == time.mktime((*DATE, 0, 0, -1))


@pytest.mark.parametrize("where", ["resources", "home", "one level too high"])
def test_a_folder_the_unpack_did_not_make_is_never_replaced(tmp_path, monkeypatch, where):
    # issue 20: data.folder.root naming resources/ (or ~, or the folder above) lost everything
    resources = tmp_path / "resources"
    zip_path = _zip(resources / "tiny-imagenet-200.zip", _layout())
    (resources / "published").mkdir()
    (resources / "published" / "baseline.csv").write_bytes(b"placed by hand")
    monkeypatch.setenv("HOME", str(tmp_path))
    root = {"resources": resources, "home": Path("~"), "one level too high": tmp_path}[where]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ArchiveError) as caught:
        unpack(zip_path, root, progress=False)
    message = str(caught.value)
    assert "\n" not in message and f"{root.expanduser()} exists, is not empty" in message
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_an_earlier_unpack_or_an_empty_folder_is_replaced(tmp_path):
    zip_path = _zip(tmp_path / "tiny-imagenet-200.zip", _layout())
    root = tmp_path / "out" / "tiny-imagenet-200"
    root.mkdir(parents=True)  # empty: nothing to lose
    unpack(zip_path, root, progress=False)
    (root / "wnids.txt").unlink()  # a damaged earlier unpack: made again
    unpack(zip_path, root, progress=False)
    assert (root / "wnids.txt").is_file()


def test_unpack_checks_the_pin_first(tmp_path):
    zip_path = _zip(tmp_path / "tiny-imagenet-200.zip", _layout())
    with pytest.raises(ArchiveError, match=rf"has md5 {_md5(zip_path)}, expected 0{{32}}"):
        unpack(zip_path, tmp_path / "out" / "tiny-imagenet-200", md5="0" * 32, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("members", "named"),
    [
        ({"tiny-imagenet-200/words.txt": b"x"}, "holds no tiny-imagenet-200/wnids.txt"),
        ({"tiny-imagenet-200/wnids.txt": b"x", "README": b"x"}, "files at the top level"),
    ],
    ids=["no-wnids", "two-tops"],
)
def test_an_archive_of_another_layout_is_refused(tmp_path, members, named):
    zip_path = _zip(tmp_path / "other.zip", members)
    with pytest.raises(ArchiveError, match=named):
        unpack(zip_path, tmp_path / "out" / "tiny-imagenet-200", progress=False)
    assert _names(tmp_path / "out") == []


def test_a_file_that_is_no_zip_is_named(tmp_path):
    path = tmp_path / "tiny-imagenet-200.zip"
    path.write_bytes(b"<html>a login page</html>")
    with pytest.raises(ArchiveError, match=rf"{path} is not a readable zip archive"):
        unpack(path, tmp_path / "tiny-imagenet-200", progress=False)


def _interrupt_after(monkeypatch, count: int) -> None:
    extract, calls = archive_module._extract_member, []

    def interrupted(*args):
        calls.append(args)
        if len(calls) > count:
            raise KeyboardInterrupt
        extract(*args)

    monkeypatch.setattr(archive_module, "_extract_member", interrupted)


def _folder_cfg(tmp_path: Path, root: Path) -> dict:
    return {"source": "folder", "image_size": 64, "cache_dir": str(tmp_path / "cache"),
            "folder": {"root": str(root)}}  # fmt: skip


@pytest.mark.parametrize("cleanup", [True, False], ids=["interrupted", "killed"])
def test_an_interrupted_unpack_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, cleanup):
    zip_path = _zip(tmp_path / "in" / "tiny-imagenet-200.zip", _layout())
    root = tmp_path / "resources" / "tiny-imagenet-200"
    _interrupt_after(monkeypatch, 5)
    if not cleanup:  # a killed process runs no `finally`: its partial tree stays behind
        monkeypatch.setattr(archive_module.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(KeyboardInterrupt):
        unpack(zip_path, root, progress=False)
    assert not root.exists()
    leftovers = _names(root.parent)
    if cleanup:
        assert leftovers == []
    else:  # hidden, and named as partial
        assert len(leftovers) == 1 and leftovers[0].startswith(".tiny-imagenet-200.partial-")
    with pytest.raises(DataError, match="does not exist"):
        load_store(_folder_cfg(tmp_path, root), progress=False)


def test_an_interrupted_unpack_keeps_the_previous_tree(tmp_path, monkeypatch):
    zip_path = _zip(tmp_path / "in" / "tiny-imagenet-200.zip", _layout())
    root = unpack(zip_path, tmp_path / "resources" / "tiny-imagenet-200", progress=False)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    _interrupt_after(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        unpack(zip_path, root, progress=False)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert _names(root.parent) == ["tiny-imagenet-200"]


# --------------------------------------------------------------------------------------------
# From the server to the store


def test_the_folder_source_reads_the_fetched_and_unpacked_tree(tmp_path, server, served_zip):
    resources = tmp_path / "resources"
    zip_path = resources / "tiny-imagenet-200.zip"
    record = _fetch(served_zip.url, served_zip.md5, zip_path)
    root = unpack(zip_path, resources / "tiny-imagenet-200", md5=record["md5"], progress=False)
    store = load_store(_folder_cfg(tmp_path, root), progress=False)

    wnids = tuple(sorted((root / "wnids.txt").read_text().split()))
    assert store.classes == wnids == ("n01443537", "n02085620")
    members = _layout()
    expected_train = [(f"train/{w}/images/{n}", i) for i, w in enumerate(wnids) for n in TRAIN[w]]
    expected_val = sorted(
        ((f"val/images/{n}", wnids.index(w)) for n, w in VAL), key=lambda row: (row[1], row[0])
    )
    for split, expected in (("train", expected_train), ("val", expected_val)):
        got = getattr(store, split)
        assert got.labels.tolist() == [label for _, label in expected]
        for i, (rel, _) in enumerate(expected):  # the zip's own bytes, decoded independently
            with Image.open(io.BytesIO(members[f"tiny-imagenet-200/{rel}"])) as im:
                np.testing.assert_array_equal(got.images[i], np.asarray(im.convert("RGB")))

    # Unpacking the same zip again keeps sizes and times: the same data version, the same cache.
    unpack(zip_path, root, md5=record["md5"], progress=False)
    again = load_store(_folder_cfg(tmp_path, root), progress=False)
    assert again.fingerprint == store.fingerprint
    assert _names(tmp_path / "cache") == [Path(store.info["cache"]).name]
