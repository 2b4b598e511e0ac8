"""Atomic writes: whole files or nothing, with the permissions open() would give."""

import os
import stat

import pytest

from convnext_tinyimagenet import atomic


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_written_files_are_as_readable_as_open_would_make_them(tmp_path):
    target = atomic.write_text(tmp_path / "a" / "result.json", "{}\n")
    assert target.read_text() == "{}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~current_umask()
    assert stat.S_IMODE(target.stat().st_mode) & stat.S_IRUSR
    if not current_umask() & 0o044:  # the usual 022: others can read results too
        assert stat.S_IMODE(target.stat().st_mode) & stat.S_IROTH


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = atomic.write_text(tmp_path / "result.json", "old\n")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic.write_with(target, fail)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    atomic.write_json(target, {"new": 1})
    assert target.read_text() == '{\n  "new": 1\n}\n'
