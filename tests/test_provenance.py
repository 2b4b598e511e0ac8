"""Provenance: the commit of a checkout, or of the image a run ran in."""

import subprocess

import pytest

from convnext_tinyimagenet import run_folder
from convnext_tinyimagenet.train.provenance import COMMIT_VARIABLE, git_commit

SHA = "0123456789abcdef0123456789abcdef01234567"


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "file.txt").write_text("one\n")
    git(tmp_path, "add", "file.txt")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return tmp_path


def test_a_checkout_gives_its_commit_and_whether_tracked_files_changed(checkout, monkeypatch):
    monkeypatch.setenv(COMMIT_VARIABLE, SHA)  # a checkout wins over the image's variable
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    assert git_commit(checkout) == {"commit": head, "dirty": False}
    (checkout / "untracked.txt").write_text("not a change of the code\n")
    assert git_commit(checkout)["dirty"] is False
    (checkout / "file.txt").write_text("two\n")
    assert git_commit(checkout) == {"commit": head, "dirty": True}


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (SHA, {"commit": SHA, "dirty": False, "source": "image"}),
        (f"{SHA}-dirty\n", {"commit": SHA, "dirty": True, "source": "image"}),
        ("", {"commit": None, "dirty": None}),
        ("v0.1.0-3-g0123456", {"commit": None, "dirty": None}),  # a `git describe` tag: no sha
        (SHA[:12], {"commit": None, "dirty": None}),
        (None, {"commit": None, "dirty": None}),
    ],
)
def test_outside_a_checkout_the_image_build_argument_is_the_commit(
    tmp_path, monkeypatch, built, expected
):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above
    if built is None:
        monkeypatch.delenv(COMMIT_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(COMMIT_VARIABLE, built)
    assert git_commit(tmp_path) == expected


# issue 20: a damaged result file of a run was a JSONDecodeError or UnicodeDecodeError traceback
DAMAGE = {"truncated": b'{"accuracy": 9', "a list": b"[]", "not UTF-8": b'{"a": "\xe9"}'}
READERS = {
    "summary.json": run_folder.read_summary,
    "metrics.jsonl": run_folder.read_metrics,
    "provenance.json": lambda path: run_folder.update_provenance(path, "train", {}),
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", READERS)
def test_a_damaged_result_file_is_one_line_naming_it(tmp_path, name, damage):
    path = tmp_path / name
    path.write_bytes(DAMAGE[damage])
    with pytest.raises(run_folder.ResultFileError) as caught:
        READERS[name](path)
    message = str(caught.value)
    assert message.startswith(f"{path} is damaged") and "\n" not in message
    assert path.read_bytes() == DAMAGE[damage]  # left as it was
