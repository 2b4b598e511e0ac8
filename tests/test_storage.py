"""Disks that fill up, folders that cannot be written, leftovers of killed writers, and paths
with `~`: each ends in one line or just works (issue 14, items 2 and 4)."""

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from torch import nn

from convnext_tinyimagenet import atomic, storage
from convnext_tinyimagenet.data.store import load_store
from convnext_tinyimagenet.train import checkpoint, features
from convnext_tinyimagenet.train.runner import train_experiment

from .conftest import CONFIG, SMOKE, smoke_config

Usage = namedtuple("Usage", "total used free")


def _disk_with(monkeypatch, free: int) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - free, free))


def _synthetic(cache: Path) -> dict:
    return smoke_config(cache)["data"]  # 640 images of 64x64x3: 7.9 MB


# --- space, checked first -------------------------------------------------------------------


def test_too_little_space_names_needed_and_free_bytes(tmp_path, monkeypatch):
    _disk_with(monkeypatch, 1234)
    with pytest.raises(storage.StorageError) as caught:
        storage.check_space(tmp_path / "not" / "made", 5_000_000, "the data cache")
    assert str(caught.value) == (
        f"not enough disk space in {tmp_path / 'not' / 'made'} for the data cache: needs "
        "5,000,000 bytes, 1,234 free; free some space (or point the config elsewhere) and rerun"
    )
    storage.check_space(tmp_path, 1234, "the data cache")  # exactly enough is enough


def test_the_cache_build_checks_the_space_first_and_leaves_nothing(tmp_path, monkeypatch):
    _disk_with(monkeypatch, 7_000_000)
    # 640 images x (64 x 64 x 3 pixels + 72 bytes of label and id) + 1 MiB of headers
    with pytest.raises(storage.StorageError, match=r"needs 8,958,976 bytes, 7,000,000 free"):
        load_store(_synthetic(tmp_path / "cache"), progress=False)
    assert not (tmp_path / "cache").exists()


def test_a_checkpoint_checks_the_space_first_and_leaves_the_last_one(tmp_path, monkeypatch):
    model = nn.Linear(100, 100)  # 40,400 bytes of weights, twice when it is the best
    checkpoint.save(tmp_path, 1, model, {"epoch": 1}, best_epoch=1)
    before = sorted(p.name for p in tmp_path.iterdir())
    _disk_with(monkeypatch, 50_000)
    with pytest.raises(storage.StorageError, match=r"epoch 2 checkpoint: needs 1,129,376 bytes"):
        checkpoint.save(tmp_path, 2, model, {"epoch": 2}, best_epoch=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert checkpoint.load_latest(tmp_path).epoch == 1


def test_a_weights_digest_follows_every_change_of_the_weights(tmp_path):
    """Every save hashes the weights it writes: unchanged weights give the same digest, and any
    change, an optimizer step or a write through `.data` (which no version counter sees),
    gives the digest of the new weights, which the file reads back with."""
    model = nn.Linear(4, 4)
    first = checkpoint.save_weights(model, tmp_path / "a.safetensors")
    assert checkpoint.save_weights(model, tmp_path / "b.safetensors") == first
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    stepped = checkpoint.save_weights(model, tmp_path / "c.safetensors")
    fresh = checkpoint.read_tensors(tmp_path / "c.safetensors", "")
    assert stepped != first and stepped == checkpoint.tensors_digest(fresh)
    with torch.no_grad():
        model.weight.data[0, 0] += 1
    behind = checkpoint.save_weights(model, tmp_path / "d.safetensors")
    read = checkpoint.read_tensors(tmp_path / "d.safetensors", "")
    assert behind not in (first, stepped) and behind == checkpoint.tensors_digest(read)


# --- a real full disk: a small tmpfs --------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 2 MB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _python(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter: a SIGBUS kills that one, not the test session."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True)  # fmt: skip


def test_a_cache_larger_than_the_disk_is_one_line(small_disk):
    command = [sys.executable, "-m", "convnext_tinyimagenet", "prepare-data", "--config",
               str(CONFIG), "--config", str(SMOKE),
               "--set", f"data.cache_dir={small_disk}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: not enough disk space in {small_disk} for the data cache")
    assert "free" in line and list(small_disk.iterdir()) == []


def test_a_disk_that_fills_during_the_build_is_one_line_not_sigbus(small_disk):
    """The space check passes (another writer fills the disk later): the image files are
    allocated before they are memory-mapped, so the build fails in one line, not by SIGBUS."""
    done = _python(f"""
        from convnext_tinyimagenet import storage
        from convnext_tinyimagenet.config import load_config
        from convnext_tinyimagenet.data.store import load_store
        storage.check_space = lambda *args: None
        cfg = load_config([{str(SMOKE)!r}], ["data.cache_dir={small_disk}"])
        try:
            load_store(cfg["data"], progress=False)
        except storage.StorageError as exc:
            print(exc)
        """)  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr)  # -7 would be SIGBUS
    assert done.stdout.startswith(f"not enough disk space in {small_disk}/.synthetic-")
    assert list(small_disk.iterdir()) == []


def test_a_checkpoint_that_fills_the_disk_is_one_line(small_disk):
    done = _python(f"""
        from pathlib import Path
        from torch import nn
        from convnext_tinyimagenet import storage
        from convnext_tinyimagenet.train import checkpoint
        storage.check_space = lambda *args: None
        try:
            checkpoint.save(Path({str(small_disk)!r}), 1, nn.Linear(1000, 1000), {{}}, None)
        except storage.StorageError as exc:
            print(exc)
        """)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"the disk of {small_disk} filled up while writing")
    assert [p.name for p in small_disk.iterdir()] == []  # the 4 MB temporary file is gone


# --- leftovers of dead writers --------------------------------------------------------------


def _writer(kind: str, target: Path) -> subprocess.Popen:
    """A process inside atomic_path or partial_dir for `target`: it prints its temporary
    path, then waits to be killed."""
    code = f"""
        import sys, time
        from pathlib import Path
        from convnext_tinyimagenet import atomic
        with atomic.{kind}(Path({str(target)!r})) as tmp:
            (tmp / "half" if tmp.is_dir() else tmp).write_bytes(b"x" * 1000)
            print(tmp, flush=True)
            time.sleep(120)
        """
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], text=True,
                            stdout=subprocess.PIPE)  # fmt: skip


@pytest.mark.parametrize("kind", ["atomic_path", "partial_dir"])
def test_only_the_leftovers_of_dead_writers_are_swept(tmp_path, kind):
    # a user's files, and a folder of the partial shape that no writer ever locked
    strays = [tmp_path / ".notes.tmp", tmp_path / "mine.tmp", tmp_path / ".x.partial-abcdefgh"]
    strays[0].write_text("a user's file")
    strays[1].write_text("another")
    strays[2].mkdir()
    living = _writer(kind, tmp_path / "a.bin")
    dying = _writer(kind, tmp_path / "b.bin")
    try:
        live, dead = Path(living.stdout.readline().strip()), Path(dying.stdout.readline().strip())
        assert live.exists() and dead.exists()
        dying.kill()
        dying.wait()
        assert atomic.sweep(tmp_path) == [dead]
        assert live.exists() and not dead.exists() and all(p.exists() for p in strays)
    finally:
        living.kill()
        living.wait()
    assert atomic.sweep(tmp_path) == [live]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in strays)


def test_a_checkpoint_sweeps_the_temporaries_of_a_killed_save(tmp_path):
    writer = _writer("atomic_path", tmp_path / "epoch-002.safetensors")
    leftover = Path(writer.stdout.readline().strip())
    writer.kill()
    writer.wait()
    checkpoint.save(tmp_path, 1, nn.Linear(4, 4), {"epoch": 1}, best_epoch=1)
    assert not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best-001.safetensors", "epoch-001.safetensors", "epoch-001.state.pt", "latest.json"
    ]  # fmt: skip


def test_a_built_cache_is_as_readable_as_mkdir_would_make_it(tmp_path):
    """Others may read a shared cache: the partial folder's private 0700 is not kept."""
    cache = Path(load_store(_synthetic(tmp_path), progress=False).info["cache"])
    assert stat.S_IMODE(cache.stat().st_mode) == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_cache_build_sweeps_the_partial_folder_of_a_killed_build(tmp_path):
    cache = tmp_path / "cache"
    data = _synthetic(cache)
    store = load_store(data, progress=False)
    name = Path(store.info["cache"]).name
    shutil.rmtree(store.info["cache"])
    writer = _writer("partial_dir", cache / name)
    leftover = Path(writer.stdout.readline().strip())
    writer.kill()
    writer.wait()
    load_store(data, progress=False)
    assert not leftover.exists() and [p.name for p in cache.iterdir()] == [name]


# --- `~`, read-only caches, unwritable outputs ----------------------------------------------


@contextlib.contextmanager
def read_only(path: Path):
    """`path` made read-only for this process: permissions for a user, a read-only bind mount
    for root (whom permissions do not stop); skipped where neither is possible."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield path
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    done = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"root cannot be kept from writing here: {done.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)  # lazily: memory maps of it remain


def test_features_follow_the_cache_dir_with_tilde_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    where = features.features_dir
    assert where({"cache_dir": "~/x", "features_dir": None}) == tmp_path / "x" / "features"
    assert where({"cache_dir": "~/x", "features_dir": "~/f"}) == tmp_path / "f"
    assert where({"cache_dir": "rel", "features_dir": None}) == Path("rel/features")


@pytest.mark.slow
def test_a_tilde_cache_dir_puts_images_and_features_under_home(monkeypatch, tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    train_experiment(smoke_config("~/x"), "baseline", tmp_path / "run", progress=False)
    assert list((home / "x").glob("synthetic-*/train_images.npy"))
    assert list((home / "x" / "features").glob("features-*.safetensors"))
    assert list(work.iterdir()) == []  # no literal ./~/x


@pytest.mark.slow
def test_a_read_only_shared_cache_works_with_features_of_their_own(tmp_path):
    shared = tmp_path / "shared"
    load_store(_synthetic(shared), progress=False)
    with read_only(shared):
        before = sorted(str(p) for p in shared.rglob("*"))
        with pytest.raises(storage.StorageError) as caught:  # features beside it: cannot be
            train_experiment(smoke_config(shared), "baseline", tmp_path / "a", progress=False)
        assert "\n" not in str(caught.value)
        assert str(caught.value).startswith(f"cannot write the feature cache in {shared}/features")
        assert str(caught.value).endswith("set data.features_dir to a writable folder")
        own = smoke_config(shared, f"data.features_dir={tmp_path / 'features'}")
        history = train_experiment(own, "baseline", tmp_path / "b", progress=False)
        assert len(history) == 3 and sorted(str(p) for p in shared.rglob("*")) == before
    assert list((tmp_path / "features").glob("features-*.safetensors"))


def test_an_unwritable_output_folder_is_one_line(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    with read_only(out):
        command = [sys.executable, "-m", "convnext_tinyimagenet", "train", "--experiment",
                   "baseline", "--config", str(CONFIG), "--config", str(SMOKE),
                   "--out", str(out / "baseline"),
                   "--set", f"data.cache_dir={tmp_path / 'c'}"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
    reason = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: cannot write the run's results in {out / 'baseline'} ({reason}); "
        "set output_dir (or --out) to a folder you can write"
    ]
    assert not (tmp_path / "c").exists()  # stopped before any work
