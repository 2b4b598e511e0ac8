"""The rules' scripts: each hands the package its rule's paths and values, inside rule_log."""

import logging
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from convnext_tinyimagenet.errors import ArtifactError
from convnext_tinyimagenet.workflow import by_run, rule_log

from .conftest import ROOT

SCRIPTS = sorted((ROOT / "rules" / "scripts").glob("*.py"))


def fake_snakemake(log_path):
    return SimpleNamespace(log=[str(log_path)], rule="make_something")


def test_rule_log_sends_logging_and_prints_to_the_log(tmp_path, capsys):
    log = tmp_path / "logs" / "rule.log"
    with rule_log(fake_snakemake(log)):
        logging.getLogger("x").info("a logged line")
        print("a printed line")
    assert capsys.readouterr().err == ""
    assert log.read_text().splitlines() == ["a logged line", "a printed line"]


def test_what_a_child_process_prints_goes_to_the_log(tmp_path, capfd):
    """The notebook's kernel (a child process) warns on its stderr: into the log, not the
    console; after the block the console is the console again."""
    log = tmp_path / "logs" / "rule.log"
    with rule_log(fake_snakemake(log)):
        child = "import sys; print('IPKernelApp WARNING', file=sys.stderr)"
        subprocess.run([sys.executable, "-c", child], check=True)
    print("after", file=sys.stderr)
    assert capfd.readouterr().err == "after\n"
    assert log.read_text() == "IPKernelApp WARNING\n"


def test_a_user_error_is_one_console_line_and_kept_in_the_log(tmp_path, capsys):
    log = tmp_path / "rule.log"
    with pytest.raises(SystemExit) as exit_info, rule_log(fake_snakemake(log)):
        raise ArtifactError("resources/x.csv is missing: place it by hand")
    assert exit_info.value.code == 1
    line = "error in rule make_something: resources/x.csv is missing: place it by hand"
    assert capsys.readouterr().err.strip() == line
    assert log.read_text().strip() == line


def test_a_bug_leaves_its_traceback_in_the_log_and_its_end_on_the_console(tmp_path, capsys):
    log = tmp_path / "rule.log"
    with pytest.raises(SystemExit), rule_log(fake_snakemake(log)):
        print("what the job printed before")
        raise KeyError("oops")
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"last lines of {log}:"
    assert "  KeyError: 'oops'" in err  # the traceback's end, from the log
    assert err[-1] == "error in rule make_something: KeyError: 'oops'"
    assert "Traceback (most recent call last)" in log.read_text()


class CellError(Exception):
    """What papermill raises when a notebook cell fails (PapermillExecutionError's fields)."""

    def __init__(self, exec_count, ename, evalue):
        super().__init__(f"long text\nwith the cell's traceback\n{ename}: {evalue}")
        self.exec_count, self.ename, self.evalue = exec_count, ename, evalue


def test_a_failed_notebook_cell_is_one_line_naming_the_job_and_the_cell(tmp_path, capsys):
    log = tmp_path / "rule.log"
    snakemake = fake_snakemake(log)
    snakemake.wildcards = {"experiment": "improved", "seed": "1"}
    with pytest.raises(SystemExit), rule_log(snakemake):
        raise CellError(7, "DataError", "data.folder.root /x is missing")
    assert capsys.readouterr().err == (
        "error in rule make_something (experiment=improved, seed=1): notebook cell [7]: "
        "DataError: data.folder.root /x is missing\n"
    )
    assert "with the cell's traceback" in log.read_text()


def test_an_error_in_a_notebook_is_one_console_line_of_its_own(tmp_path, capsys):
    """papermill's error text is the cell's whole traceback; the console gets the error the
    notebook raised, in one line."""
    from papermill.exceptions import PapermillExecutionError

    message = "cache/x/train_images.npy is damaged (...); delete cache/x to rebuild it"
    log = tmp_path / "rule.log"
    with pytest.raises(SystemExit), rule_log(fake_snakemake(log)):
        cell_traceback = ["Traceback ...", "  File ...", f"StorageError: {message}"]
        raise PapermillExecutionError(
            4, 5, "nb.train(...)", "StorageError", message, cell_traceback
        )
    assert capsys.readouterr().err.splitlines() == [
        f"error in rule make_something: notebook cell [5]: StorageError: {message}"
    ]
    assert 'Exception encountered at "In [5]"' in log.read_text()


def rule_scripts() -> dict[str, str]:
    """rule name -> the script its `script:` directive names."""
    found = {}
    for smk in (ROOT / "rules").glob("*.smk"):
        for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n|\n)+)", smk.read_text(), re.M):
            script = re.search(r'script:\s*\n\s*"([^"]+)"', body)
            if script:
                found[rule] = script.group(1)
    return found


def test_each_script_rule_names_an_existing_script_of_its_own_name():
    scripts = rule_scripts()
    assert "prepare_data" in scripts and "run_experiment" in scripts  # parsed at all
    for rule, script in scripts.items():
        assert script == f"scripts/{rule}.py"
        assert (ROOT / "rules" / script).is_file()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_read_their_rule_not_the_config(script):
    text = script.read_text()
    assert "snakemake.config" not in text
    assert "with rule_log(snakemake):" in text
    assert script.stem in rule_scripts()  # no orphan script


def test_by_run_groups_a_rules_per_run_files_by_experiment_and_seed():
    labels = [("baseline", 0), ("baseline", 1), ("improved", 0)]
    runs = by_run(labels, summary=["b0.json", "b1.json", "i0.json"], metrics=["b0", "b1", "i0"])
    assert runs == {
        "baseline": {
            0: {"summary": "b0.json", "metrics": "b0"},
            1: {"summary": "b1.json", "metrics": "b1"},
        },
        "improved": {0: {"summary": "i0.json", "metrics": "i0"}},
    }
    with pytest.raises(ValueError, match="2 summary files for 3 runs"):
        by_run(labels, summary=["b0.json", "b1.json"])
