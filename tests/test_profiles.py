"""Snakemake profiles: the SLURM one plans the workflow (a dry run needs no cluster), and the
default one lets a bare `snakemake TARGET` run without `--cores`."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT
from .test_workflow import copy_workflow

SLURM = ROOT / "profiles" / "slurm" / "config.yaml"
DEFAULT = ROOT / "profiles" / "default" / "config.yaml"


@pytest.fixture(scope="module")
def slurm_profile() -> dict:
    return yaml.safe_load(SLURM.read_text())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of the workflow and its profiles, its data cache in a temporary folder."""
    cache = tmp_path_factory.mktemp("cache")
    return copy_workflow(tmp_path_factory.mktemp("workflow"), cache, extra=("profiles",))


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env_path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": env_path},
    )


def test_slurm_profile_uses_the_pinned_slurm_executor(slurm_profile):
    assert slurm_profile["executor"] == "slurm"
    requirements = (ROOT / "envs" / "requirements.txt").read_text()
    assert re.search(r"^snakemake-executor-plugin-slurm==[\d.]+$", requirements, re.MULTILINE)


def test_slurm_profile_maps_the_gpu_of_training_jobs(slurm_profile):
    training = slurm_profile["set-resources"]["run_experiment"]
    # the plugin turns `gpu: N` into `sbatch --gpus=N`, a GPU gres into `--gres`; never both
    gres = str(training.get("gres", ""))
    assert (int(training.get("gpu", 0)) >= 1) != ("gpu" in gres)
    for key in ("runtime", "mem_mb", "cpus_per_task", "slurm_partition"):
        assert key in training, key
    assert "slurm_partition" in slurm_profile["default-resources"]


def planned_training(workdir: Path, *configs: str) -> list[tuple[str, str]]:
    """The (experiment, seed) of each training job a SLURM dry run plans, each checked to ask
    for one GPU on a partition of its own."""
    configs = ("--configfile", *configs) if configs else ()
    result = snakemake(workdir, "--profile", "profiles/slurm", "--dry-run", *configs)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-6000:]
    jobs = re.findall(r"^rule (\w+):$(.*?)(?=^rule |\Z)", text, re.MULTILINE | re.DOTALL)
    training = [body for name, body in jobs if name == "run_experiment"]
    for body in training:
        resources = re.search(r"resources: (.*)", body)[1]
        assert "gpu=1" in resources.split(", ")
        assert "slurm_partition=gpu" in resources.split(", ")
    assert re.search(rf"^run_experiment\s+{len(training)}$", text, re.MULTILINE)  # job stats
    return [re.search(r"experiment=(\w+), seed=(\d+)", body).groups() for body in training]


def test_slurm_dry_run_plans_the_training_jobs_on_gpus(workdir):
    planned = planned_training(workdir, "config/smoke.yaml", "config/test.yaml")
    # the demo's runs: baseline and improved with 2 seeds; two ablations and a holdout run with 1
    assert sorted(planned) == [
        ("baseline", "0"), ("baseline", "1"), ("improved", "0"), ("improved", "1"),
        ("improved_holdout", "0"), ("improved_linear", "0"), ("improved_noaug", "0"),
    ]  # fmt: skip


def test_slurm_dry_run_of_the_paper_config_plans_one_gpu_job_per_variant_and_seed(workdir):
    planned = planned_training(workdir)  # config/config.yaml alone: the paper's study
    experiments = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["experiments"]
    running = [name for name, section in experiments.items() if section.get("seeds") != []]
    assert len(planned) == 30 == len(running) * 3
    assert sorted(planned) == sorted((name, str(seed)) for name in running for seed in range(3))


def test_the_selection_config_adds_the_holdout_pair_to_the_paper_study(workdir):
    # docs/statistics.md: --configfile config/selection.yaml runs the selection-bias pair too
    planned = planned_training(workdir, "config/selection.yaml")
    holdout = [("baseline_holdout", "0"), ("improved_holdout", "0")]
    assert len(planned) == 32 and sorted(set(planned) - set(planned_training(workdir))) == holdout


def test_default_profile_runs_a_target_without_cores(workdir):
    assert yaml.safe_load(DEFAULT.read_text())["cores"] == "all"
    # no --cores: the workflow profile (profiles/default) supplies it
    result = snakemake(
        workdir, "make_recipe_table", "--configfile", "config/smoke.yaml", "config/test.yaml"
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert (workdir / "results" / "demo" / "tables" / "recipe.md").is_file()
