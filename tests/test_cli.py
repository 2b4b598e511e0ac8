"""The command line: help texts and one-line errors a person can act on."""

import subprocess
import sys
from pathlib import Path

import pytest

from convnext_tinyimagenet.cli import _experiment_args, build_parser, main

from .conftest import CONFIG, SMOKE


@pytest.mark.parametrize("command", ["prepare-data", "train", "evaluate"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--config" in text and "--set" in text


def test_module_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "convnext_tinyimagenet", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "prepare-data" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "experiments.baseline.train.lrr=1"], "experiments.baseline.train.lrr"),
        (["--set", "experiments.baseline.train.precision=fp8"], "fp8"),
        (["--experiment", "improvd"], "improvd"),
        (["--config", "config/nope.yaml"], "nope.yaml"),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(args, expected, capsys, tmp_path):
    argv = ["train", "--config", str(CONFIG), "--config", str(SMOKE), "--out", str(tmp_path)]
    if "--experiment" not in args:
        argv += ["--experiment", "baseline"]
    assert main(argv + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err
    assert len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing written


def test_prepare_data_reports_the_store(tmp_path, capsys):
    argv = ["prepare-data", "--config", str(CONFIG), "--config", str(SMOKE), "--no-progress"]
    argv += ["--set", f"data.cache_dir={tmp_path}", "--out", str(tmp_path / "data.json")]
    assert main(argv) == 0
    assert "fingerprint" in capsys.readouterr().out
    assert (tmp_path / "data.json").is_file()


def test_train_and_evaluate_write_under_the_configs_output_dir(tmp_path):
    argv = ["train", "--config", str(CONFIG), "--config", str(SMOKE), "--experiment", "improved"]
    args = build_parser().parse_args([*argv, "--set", f"output_dir={tmp_path / 'my demo'}"])
    settings, out = _experiment_args(args)
    assert out == tmp_path / "my demo" / "improved" / "seed0"  # the experiment's first seed
    assert settings["seeds"] == [0] and list(settings["experiments"]) == ["improved"]
    settings, out = _experiment_args(build_parser().parse_args([*argv, "--seed", "1"]))
    assert out == Path("results/demo/improved/seed1") and settings["seeds"] == [1]
    args = build_parser().parse_args([*argv, "--out", str(tmp_path / "elsewhere")])
    assert _experiment_args(args)[1] == tmp_path / "elsewhere"


def test_a_seed_the_experiment_does_not_run_is_one_line(capsys):
    argv = ["train", "--config", str(SMOKE), "--experiment", "improved_noaug", "--seed", "1"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "error: experiments.improved_noaug: seed 1 is not one it runs; allowed: 0\n"
    )
