"""The whole workflow on the smoke config, end to end, in a copy of the repository's workflow."""

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
from PIL import Image

from .conftest import ROOT, SHARED_PUBLISHED, image_folder

pytestmark = pytest.mark.slow
WORKFLOW_FILES = ("Snakefile", "rules", "config", "notebooks", "paper")
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def copy_workflow(target: Path, cache: Path, extra: tuple[str, ...] = ()) -> Path:
    """A copy of the workflow whose config/test.yaml puts the data cache in `cache`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (*WORKFLOW_FILES, *extra):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy2(source, target / name)
    (target / "config" / "test.yaml").write_text(f"data:\n  cache_dir: {cache}\n")
    return target


def snakemake(
    workdir: Path, *args: str, configs: tuple[str, ...] = ("config/test.yaml",), check: bool = True
) -> subprocess.CompletedProcess:
    env_path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    result = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", "--configfile", "config/smoke.yaml", *configs, *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": env_path},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stderr[-6000:]}")
    return result


def run_with_a_dry_run_inside(workdir: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Run the workflow; while a training job runs, a second `snakemake --dry-run` with other
    settings (seeds, a figure option) plans beside it. Returns the run and what the dry run
    printed and found (whether the training job was still running)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    command = [*SNAKEMAKE, "--cores", "2", "--configfile", "config/smoke.yaml", "config/test.yaml"]
    with subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as running:
        logs = workdir / "results/demo/logs/run_experiment"
        while running.poll() is None and not list(logs.glob("*/seed*.log")):
            time.sleep(0.2)
        (workdir / "config" / "other.yaml").write_text("seeds: [7]\nfigures: {dpi: 99}\n")
        other = ("config/test.yaml", "config/other.yaml")
        during = snakemake(workdir, "--dry-run", configs=other, check=False)
        seen = {"still running": running.poll() is None, "printed": during.stdout + during.stderr}
        stdout, stderr = running.communicate()
    result = subprocess.CompletedProcess(command, running.returncode, stdout, stderr)
    if result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{stderr[-6000:]}")
    return result, seen


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """The smoke workflow run once to completion (with a dry run of other settings beside it)."""
    cache = tmp_path_factory.mktemp("cache")
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"), cache)
    result, seen = run_with_a_dry_run_inside(workdir)
    return workdir, result, cache, seen


def test_a_dry_run_during_a_run_changes_nothing_of_it(workflow):
    """Loading the workflow writes nothing: the run's config, paper and runs keep its seeds."""
    workdir, _, _, seen = workflow
    assert seen["still running"], "the dry run came after the run: nothing was tested"
    # it loaded its own settings: it planned with them, or (Snakemake marks the running jobs'
    # outputs incomplete) stopped at those, as a dry run beside a run does
    assert "seed=7" in seen["printed"] or "incomplete" in seen["printed"], seen["printed"][-3000:]
    out = workdir / "results/demo"
    assert yaml.safe_load((out / "config.yaml").read_text())["seeds"] == [0, 1]
    assert yaml.safe_load((out / "config.yaml").read_text())["figures"]["dpi"] == 150
    assert r"\newcommand{\Seeds}{0, 1}" in (out / "paper/numbers.tex").read_text()
    assert not list(out.glob("*/seed7"))


def test_all_outputs_exist(workflow):
    workdir, _, _, _ = workflow
    out = workdir / "results" / "demo"
    # every run: the published recipes with both seeds, the ablations and a holdout run with seed 0
    runs = sorted(p.parent.relative_to(out) for p in out.glob("*/seed*/summary.json"))
    assert [str(run) for run in runs] == [
        "baseline/seed0", "baseline/seed1", "improved/seed0", "improved/seed1",
        "improved_holdout/seed0", "improved_linear/seed0", "improved_noaug/seed0",
    ]  # fmt: skip
    for run in runs:
        for name in ("experiment.ipynb", "experiment.html", "predictions.csv", "summary.json"):
            assert (out / run / name).stat().st_size > 0
    for experiment in ("baseline", "improved"):
        for figure in ("correct_wrong", "class_grid"):
            assert (out / "figures" / experiment / f"{figure}.png").stat().st_size > 0
    tables = ("results", "recipe", "discrepancies", "classes_baseline", "classes_improved")
    for table in (*tables, "ablation", "compute", "variants"):
        assert (out / "tables" / f"{table}.md").is_file()
        assert (out / "tables" / f"{table}.tex").is_file()
    assert (out / "figures" / "learning_curves.pdf").is_file()


def test_html_notebooks_embed_their_figures(workflow):
    workdir, _, _, _ = workflow
    for experiment in ("baseline", "improved"):
        html = (workdir / "results/demo" / experiment / "seed0/experiment.html").read_text()
        assert len(re.findall(r"data:image/png;base64,", html)) >= 3  # curves and two grids
        assert "Best and worst classes" in html


def test_paper_pdf_holds_the_run_accuracies(workflow):
    if shutil.which("latexmk") is None or shutil.which("pdftotext") is None:
        pytest.skip("latexmk/pdftotext missing: .ci/run installs them (Debian texlive, poppler)")
    workdir, _, _, _ = workflow
    pdf = workdir / "results/demo/paper.pdf"  # under the demo's output_dir, not in paper/
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    for experiment in ("baseline", "improved"):
        run = workdir / "results/demo" / experiment / "seed0"  # the first seed's run
        summary = json.loads((run / "summary.json").read_text())
        assert f"{summary['accuracy']:.2f}" in text
    # the generated section: one sentence per ablation, and the total compute
    assert "One change at a time" in text
    assert "Improved recipe without augmentation, against Improved" in " ".join(text.split())
    total = json.loads((workdir / "results/demo/study/compute.json").read_text())["total_hours"]
    assert "Device time of every run" in text and f"\n{total:.3f}\n" in text


@pytest.mark.parametrize("given", [(), ("--config", "paper_pdf=True")])
def test_noop_rerun_does_nothing(workflow, given):
    """Every documented way to run the demo (`make demo` passes paper_pdf) agrees on one config:
    a rerun with nothing changed does nothing, write_config included."""
    workdir, _, _, _ = workflow
    result = snakemake(workdir, "--dry-run", *given)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_forcerun_of_a_figure_does_not_retrain(workflow):
    workdir, _, _, _ = workflow
    result = snakemake(workdir, "--dry-run", "--forcerun", "plot_learning_curves")
    planned = result.stdout + result.stderr
    assert "plot_learning_curves" in planned
    assert "run_experiment" not in planned


def test_changing_a_plot_option_reruns_only_figures(workflow):
    workdir, _, _, _ = workflow
    (workdir / "config" / "dpi.yaml").write_text("figures:\n  dpi: 99\n")
    result = snakemake(workdir, "--dry-run", configs=("config/test.yaml", "config/dpi.yaml"))
    planned = result.stdout + result.stderr
    assert "plot_learning_curves" in planned
    assert "run_experiment" not in planned and "prepare_data" not in planned


@pytest.mark.parametrize(
    ("setting", "reruns"),
    [
        # every setting the run reads reruns its job; display and speed settings then resume
        # its finished checkpoint (test_performance: the digest is unchanged) and only
        # evaluate and render again
        ("performance:\n  channels_last: false\n  chunk_batches: 2\n", True),
        ("performance:\n  float32_matmul_precision: high\n", True),  # TF32: other numerics
        ("experiments:\n  baseline:\n    title: Another title\n", True),
        ("experiments:\n  improved:\n    train: {eval_batch_size: 64}\n", True),
        ("deterministic: true\n", True),  # other kernels
        ("figures:\n  dpi: 99\n", False),  # the notebook's grids do not read the dpi
        ("published:\n  repository: https://example.org/fork\n", False),
    ],
)
def test_which_settings_rerun_the_experiment_job(workflow, setting, reruns):
    workdir, _, _, _ = workflow
    (workdir / "config" / "speed.yaml").write_text(setting)
    result = snakemake(workdir, "--dry-run", configs=("config/test.yaml", "config/speed.yaml"))
    assert ("run_experiment" in result.stdout + result.stderr) is reruns


@pytest.mark.parametrize(
    ("setting", "rule"),
    [
        # what the paper's macros read: a change there rewrites numbers.tex and nothing upstream
        ("published:\n  commit: 0123456789abcdef0123456789abcdef01234567\n", "make_paper_inputs"),
        ("discrepancies: []\n", "make_discrepancies_table"),
    ],
)
def test_a_changed_value_reruns_the_rules_that_read_it(workflow, setting, rule):
    workdir, _, _, _ = workflow
    (workdir / "config" / "value.yaml").write_text(setting)
    result = snakemake(workdir, "--dry-run", configs=("config/test.yaml", "config/value.yaml"))
    planned = result.stdout + result.stderr
    assert rule in planned
    assert "run_experiment" not in planned and "prepare_data" not in planned


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `folder`: its modification time and content."""
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file() and ".snakemake" not in path.parts
    }


def test_loading_or_dry_running_the_workflow_writes_nothing(workflow, tmp_path):
    workdir, _, _, _ = workflow
    (workdir / "config" / "seed.yaml").write_text("seeds: [7]\n")
    before = snapshot(workdir)
    # other settings while the run's results exist: a dry run plans, and changes nothing
    snakemake(workdir, "--dry-run", configs=("config/test.yaml", "config/seed.yaml"))
    snakemake(workdir, "--dry-run", "--config", "deterministic=True")
    snakemake(workdir, "--lint", check=False)
    assert snapshot(workdir) == before
    fresh = copy_workflow(tmp_path / "fresh", tmp_path / "cache")
    snakemake(fresh, "--dry-run")
    assert not (fresh / "results").exists()


def test_the_pdf_is_a_config_value(workflow):
    workdir, _, _, _ = workflow
    (workdir / "config" / "nopdf.yaml").write_text("paper_pdf: false\n")
    without = snakemake(
        workdir, "--dry-run", "--forceall", configs=("config/test.yaml", "config/nopdf.yaml")
    )
    with_pdf = snakemake(workdir, "--dry-run", "--forceall")
    assert "build_paper" not in without.stdout + without.stderr
    assert "build_paper" in with_pdf.stdout + with_pdf.stderr


def test_training_jobs_leave_a_benchmark_file(workflow):
    workdir, _, _, _ = workflow
    for run in ("baseline/seed0", "baseline/seed1", "improved/seed0", "improved_noaug/seed0"):
        tsv = workdir / "results/demo/benchmarks/run_experiment" / f"{run}.tsv"
        header, values = tsv.read_text().splitlines()[:2]
        assert header.split("\t")[0] == "s" and float(values.split("\t")[0]) > 0


def test_the_rendered_notebook_is_a_document(workflow):
    workdir, _, _, _ = workflow
    for experiment, other in (("baseline", "improved"), ("improved", "baseline")):
        path = workdir / "results/demo" / experiment / "seed1/experiment.ipynb"
        nb = json.loads(path.read_text())
        outputs = [o for cell in nb["cells"] for o in cell.get("outputs", [])]
        assert not [o for o in outputs if o.get("name") == "stderr"]  # no warnings
        text = json.dumps(nb)
        assert f"How it differs from `{other}`" in text
        assert "Against the published claim" in text and "agrees with" in text
        # papermill's settings cell: kept in the notebook, not shown in its HTML
        injected = [
            c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
        ]
        assert len(injected) == 1 and "settings = " in "".join(injected[0]["source"])
        html = path.with_suffix(".html").read_text()
        assert "injected-parameters" not in html  # nbconvert names each cell's tags


def test_a_failing_notebook_cell_fails_the_rule_and_names_the_cell(workflow, tmp_path):
    _, _, cache, _ = workflow
    broken = copy_workflow(tmp_path / "broken", cache)
    notebook = broken / "notebooks" / "experiment.ipynb"
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if "nb.train(" in "".join(cell["source"]):
            cell["source"] = ['raise RuntimeError("forced failure in the training cell")\n']
    notebook.write_text(json.dumps(nb))
    result = snakemake(broken, "--until", "run_experiment", check=False)
    assert result.returncode != 0
    logs = sorted((broken / "results/demo/logs/run_experiment").glob("*/seed*.log"))
    text = "".join(log.read_text() for log in logs)
    assert "forced failure in the training cell" in text
    assert re.search(r'Exception encountered at "In \[\d+\]"', text)  # papermill names the cell
    assert "run_experiment" in result.stderr + result.stdout


def test_verify_passes_and_a_tampered_result_fails_the_check(workflow):
    workdir, _, _, _ = workflow
    out = workdir / "results" / "demo"
    result = json.loads((out / "verification.json").read_text())
    assert result["verdict"] == "pass"
    assert result["published"]["status"] == "not checked"  # the smoke config reads no CSVs
    assert result["checksums"]["problems"] == []
    # every seed of each published recipe is checked against its band
    assert list(result["reruns"]["runs"]) == [
        "baseline/seed0", "baseline/seed1", "improved/seed0", "improved/seed1"
    ]  # fmt: skip
    sums = (out / "SHA256SUMS").read_text()
    for covered in ("baseline/seed1/predictions.csv", "tables/verification.tex", "experiment.html"):
        assert covered in sums
    record, config = "results/demo/verification.json", "results/demo/config.yaml"
    command = [sys.executable, "-m", "convnext_tinyimagenet", "verify", "--check", record]
    assert len(result["inputs"]["checksummed"]) == len(sums.splitlines())
    # a line deleted from SHA256SUMS: the check knows the list
    changed_line = next(line for line in sums.splitlines() if "tables/recipe.md" in line)
    sums_stat = (out / "SHA256SUMS").stat()
    (out / "SHA256SUMS").write_text(sums.replace(changed_line + "\n", ""))
    try:
        check = subprocess.run(
            [*command, "--config", config], cwd=workdir, capture_output=True, text=True
        )
    finally:
        (out / "SHA256SUMS").write_text(sums)
        os.utime(out / "SHA256SUMS", ns=(sums_stat.st_atime_ns, sums_stat.st_mtime_ns))
    assert (
        check.returncode == 1 and "results/demo/tables/recipe.md: not in SHA256SUMS" in check.stdout
    )
    rerun = snakemake(workdir, "--forcerun=verify", "verify")  # the check alone, nothing else
    assert "verification passed" in rerun.stdout + rerun.stderr
    assert "run_experiment" not in rerun.stdout + rerun.stderr

    tampered = out / "tables" / "results.md"
    original, stat = tampered.read_bytes(), tampered.stat()
    tampered.write_bytes(original + b"\n")
    try:
        check = subprocess.run(
            [*command, "--config", config],
            cwd=workdir,
            capture_output=True,
            text=True,
        )
    finally:
        tampered.write_bytes(original)
        os.utime(tampered, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert check.returncode == 1
    assert "results/demo/tables/results.md: changed" in check.stdout


PUBLISHED_FILES = ("baseline_validation_predictions.csv", "improvement_validation_predictions.csv")


@pytest.mark.skipif(
    not all((SHARED_PUBLISHED / name).is_file() for name in PUBLISHED_FILES),
    reason=f"the published prediction CSVs are not in {SHARED_PUBLISHED}",
)
def test_a_published_file_changed_after_its_check_is_refused_by_the_next_check(workflow, tmp_path):
    """A CSV edited after a passing check: the plain command notices (its fetch job watches the
    file's sha256, rules/published.smk), checks it again and refuses it in one line naming the
    file and both hashes; the file stays where the user put it."""
    _, _, cache, _ = workflow
    workdir = copy_workflow(tmp_path / "published", cache)
    downloads = workdir / "resources" / "published"
    downloads.mkdir(parents=True)
    (workdir / "config" / "published.yaml").write_text("published:\n  use_predictions: true\n")
    configs = ("config/test.yaml", "config/published.yaml")
    target = ("--cores", "2", "verify_published")  # an option ends --configfile's file list
    # one file placed by hand, the other to fetch (offline here: that fails), and the placed
    # one must survive the failed fetch of its sibling
    placed = downloads / PUBLISHED_FILES[0]
    shutil.copy(SHARED_PUBLISHED / PUBLISHED_FILES[0], placed)
    snakemake(workdir, *target, configs=configs, check=False)
    assert placed.read_bytes() == (SHARED_PUBLISHED / PUBLISHED_FILES[0]).read_bytes()
    shutil.copy(SHARED_PUBLISHED / PUBLISHED_FILES[1], downloads / PUBLISHED_FILES[1])
    passed = snakemake(workdir, *target, configs=configs)
    assert "verification passed" in passed.stdout + passed.stderr
    again = snakemake(workdir, "--dry-run", "verify_published", configs=configs)
    assert "Nothing to be done" in again.stdout + again.stderr
    path = downloads / PUBLISHED_FILES[1]
    lines = path.read_text().splitlines(keepends=True)
    assert lines[1] == "0,0,0,True\n"
    lines[1] = "0,0,1,False\n"  # one prediction changed, still self-consistent
    path.write_text("".join(lines))
    refused = snakemake(workdir, *target, configs=configs, check=False)  # the plain command
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "refused" in output and PUBLISHED_FILES[1] in output
    pin = hashlib.sha256((SHARED_PUBLISHED / PUBLISHED_FILES[1]).read_bytes()).hexdigest()
    assert hashlib.sha256(path.read_bytes()).hexdigest() in output and pin in output
    assert path.read_text() == "".join(lines)  # refused, and kept as it is


def test_a_failed_verification_exits_non_zero_and_keeps_its_verdict(workflow, tmp_path):
    """Snakemake deletes a failed job's outputs: the verdict JSON survives under logs/."""
    workdir, _, _, _ = workflow
    copy = tmp_path / "failing"
    shutil.copytree(workdir, copy, symlinks=True)
    (copy / "config" / "fail.yaml").write_text(
        "verification:\n  reruns:\n    baseline: {expected: 10.0, tolerance_pp: 1.0}\n"
    )
    configs = ("config/test.yaml", "config/fail.yaml")
    result = snakemake(copy, "--cores", "2", "verify", configs=configs, check=False)
    assert result.returncode != 0
    assert not (copy / "results/demo/verification.json").exists()
    verdict = json.loads((copy / "results/demo/logs/verify.json").read_text())
    assert verdict["verdict"] == "FAIL"
    assert "FAIL" in (copy / "results/demo/logs/verify.log").read_text()


def test_the_report_gathers_figures_tables_notebooks_and_the_paper(workflow):
    workdir, _, _, _ = workflow
    report = workdir / "results" / "demo" / "report.html"
    snakemake(workdir, "--report", str(report))
    html = report.read_text(errors="replace")
    for expected in ("learning_curves.png", "verification.md", "experiment.html", "summary.json"):
        assert expected in html, expected
    # every table (README.md: "every figure, table and notebook"), the study's section too
    tables = sorted(path.name for path in (workdir / "results/demo/tables").glob("*.md"))
    assert len(tables) == 13  # 8 tables and one class table per experiment (5)
    for expected in (*tables, "difference.md", "ablation_effects.png"):
        assert expected in html, expected
    if shutil.which("latexmk"):
        assert "paper.pdf" in html


def test_one_run_is_a_target(workflow):
    """results/README.md: `snakemake results/<experiment>/seed<N>/summary.json` makes one run."""
    workdir, _, _, _ = workflow
    target = "results/demo/improved/seed1/summary.json"
    result = snakemake(workdir, "--dry-run", "--forcerun=run_experiment", target)
    planned = re.findall(r"experiment=(\w+), seed=(\d+)", result.stdout)
    assert planned == [("improved", "1")]


def kill_everything(process: subprocess.Popen) -> None:
    """SIGKILL to `process`, its process group and every descendant, as a power loss would end
    them: the notebook's kernel runs in a session of its own (jupyter_client starts it so), out
    of the group's reach."""
    descendants = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):  # ended on its own meanwhile
            child.kill()
    process.wait()
    _, alive = psutil.wait_procs(descendants, timeout=30)
    assert not alive, f"still running after SIGKILL: {alive}"


def test_a_workflow_killed_mid_training_ends_as_an_uninterrupted_one(workflow, tmp_path):
    """The crash drill: the whole workflow killed (SIGKILL) while a training job is between
    epochs, then the same command again. A killed Snakemake leaves its lock, which takes one
    `--unlock`; the default profile's rerun-incomplete then reruns the job without being asked,
    and the run resumes after its last complete epoch and ends byte for byte where the
    uninterrupted run (the fixture's) ended."""
    reference, _, cache, _ = workflow
    workdir = copy_workflow(tmp_path / "crash", cache, extra=("profiles",))
    run = "results/demo/baseline/seed0"
    target = f"{run}/summary.json"
    plain = ("--cores", "2", target)  # an option ends --configfile's file list
    command = [*SNAKEMAKE, "--configfile", "config/smoke.yaml", "config/test.yaml", *plain]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    log = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=log, stderr=log, start_new_session=True
    )
    latest, deadline = None, time.monotonic() + 300
    while latest is None and time.monotonic() < deadline and process.poll() is None:
        for path in (workdir / run / "checkpoints").glob("*/latest.json"):
            if json.loads(path.read_text())["epoch"] >= 1:  # written last, atomically
                latest = path
        time.sleep(0.02)
    assert process.poll() is None, "the workflow ended before it could be killed"
    kill_everything(process)
    killed_at = json.loads(latest.read_text())["epoch"]
    assert killed_at < 3 and not (workdir / target).exists()

    locked = snakemake(workdir, *plain, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snakemake(workdir, "--unlock")
    snakemake(workdir, *plain)  # the same command: no --rerun-incomplete
    provenance = json.loads((workdir / run / "provenance.json").read_text())
    assert provenance["train"]["resumed_after_epoch"] == killed_at
    for name in ("predictions.csv", "summary.json"):
        assert (workdir / run / name).read_bytes() == (reference / run / name).read_bytes()


def test_the_improved_run_reads_the_zip_unless_the_folder_is_in_place(tmp_path):
    """Paper config: the baseline reads the Hugging Face copy, the improved recipe (and its
    variants) the original zip, fetched and unpacked in the DAG; a folder unpacked by hand is
    read as it is, neither fetched nor unpacked again."""
    workdir = copy_workflow(tmp_path / "paper", tmp_path / "cache")
    paper = ("--cores", "1", "--dry-run", "--configfile", "config/config.yaml")

    def planned() -> dict[str, int]:
        result = subprocess.run([*SNAKEMAKE, *paper], cwd=workdir, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.M)}

    jobs = planned()
    assert (jobs["prepare_data"], jobs["run_experiment"]) == (2, 30)  # hf and folder
    assert jobs["fetch_tinyimagenet"] == jobs["unpack_tinyimagenet"] == 1
    wnids = workdir / "resources" / "tiny-imagenet-200" / "wnids.txt"
    wnids.parent.mkdir(parents=True)
    wnids.write_text("n01443537\n")  # placed by hand
    jobs = planned()
    assert "fetch_tinyimagenet" not in jobs and "unpack_tinyimagenet" not in jobs
    assert jobs["prepare_data"] == 2
    assert wnids.read_text() == "n01443537\n"


def test_a_changed_image_folder_is_noticed(tmp_path):
    """The folder source's files are watched: after one image changed, the plain command plans
    prepare_data again (whose new data.json reruns every run that reads the folder)."""
    workdir = copy_workflow(tmp_path / "wf", tmp_path / "cache")
    root = image_folder(tmp_path / "tiny-imagenet-200", 32)
    (workdir / "config" / "folder.yaml").write_text(
        f"data: {{source: folder, image_size: 32, folder: {{root: {root}}}}}\n"
        "experiments: {improved: {data: {source: folder}}}\n"
    )
    configs = ("config/test.yaml", "config/folder.yaml")
    target = "results/demo/data/folder/data.json"
    snakemake(workdir, "--cores=1", target, configs=configs)
    assert "Nothing to be done" in snakemake(workdir, "-n", target, configs=configs).stdout
    changed = root / "train" / "n00000001" / "images" / "n00000001_0.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(changed)
    planned = snakemake(workdir, "-n", configs=configs).stdout
    assert re.search(r"^prepare_data\s+1$", planned, re.M), planned


def readme_demo_commands() -> list[str]:
    """The commands of README.md's block "The same on the demo's results, offline"."""
    text = (ROOT / "README.md").read_text()
    block = text.split("**The same on the demo's results, offline**", 1)[1]
    block = block.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readmes_demo_commands_work_offline_as_printed(workflow):
    """Each demo form in the README, as printed, on the demo's results: the checks run (and
    pass), each Snakemake command plans (a dry run: they rebuild what they name)."""
    workdir, _, _, _ = workflow
    shutil.copytree(ROOT / "profiles", workdir / "profiles", dirs_exist_ok=True)
    commands = readme_demo_commands()
    assert len(commands) == 6 and all("profiles/demo" in c or "--check" in c for c in commands)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    for command in commands:
        argv = shlex.split(command)
        argv = [sys.executable, *argv[1:]] if argv[0] == "python" else [*SNAKEMAKE, *argv[1:]]
        if "snakemake" in argv:
            argv.append("--dry-run")
        done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, env=env)
        assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        if "--check" in command:
            assert "verification passed" in done.stdout


# one file of each kind the workflow writes (results/README.md: a deleted one is remade)
REMADE = (
    "config.yaml", "data/synthetic/data.json", "baseline/seed0/experiment.ipynb",
    "baseline/seed0/experiment.html", "baseline/seed0/model.safetensors",
    "baseline/seed0/provenance.json", "improved/seed1/metrics.jsonl", "figures/learning_curves.pdf",
    "figures/improved/class_grid.png", "tables/classes_baseline.tex", "tables/input_fidelity.md",
    "fidelity/input_pipeline.json", "study/study.json", "study/difference.md", "study/compute.json",
    "paper/numbers.tex", "paper/inputs.tex", "SHA256SUMS", "verification.json",
)  # fmt: skip


def test_every_deleted_result_file_is_remade_by_the_plain_command(workflow, tmp_path):
    workdir, _, _, _ = workflow
    out = workdir / "results" / "demo"
    kept = tmp_path / "kept"
    for name in REMADE:
        (kept / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(out / name, kept / name)  # with its modification time
        (out / name).unlink()
    try:
        planned = snakemake(workdir, "--dry-run").stdout
    finally:
        for name in REMADE:
            shutil.copy2(kept / name, out / name)
    outputs = set(re.findall(r"^    output: (.*)$", planned, re.MULTILINE))
    made = {path.strip() for line in outputs for path in line.split(", ")}
    assert not [name for name in REMADE if f"results/demo/{name}" not in made]
    assert "Nothing to be done" in snakemake(workdir, "--dry-run").stdout  # all back in place


def test_set_changes_one_value_from_the_command_line(workflow):
    workdir, _, _, _ = workflow
    planned = snakemake(workdir, "--dry-run", "--config", "set=figures.dpi=99").stdout
    assert "plot_learning_curves" in planned and "run_experiment" not in planned
    wrong = snakemake(workdir, "--dry-run", "--config", "set=figures.dpix=99", check=False)
    assert wrong.returncode != 0
    assert "figures.dpix = 99: not allowed here; allowed: dpi" in wrong.stdout + wrong.stderr


@pytest.mark.skipif(
    not all((SHARED_PUBLISHED / name).is_file() for name in PUBLISHED_FILES),
    reason=f"the published prediction CSVs are not in {SHARED_PUBLISHED}",
)
def test_files_placed_by_hand_survive_every_rerun_of_their_fetch(tmp_path):
    """The published CSVs and the zip placed by hand are no rule's output (their fetch rules
    make receipts): another output folder, another seed or a changed fetch script reruns the
    fetch, which checks them and deletes nothing; a wrong zip is refused and stays."""
    workdir = copy_workflow(tmp_path / "placed", tmp_path / "cache")
    downloads = workdir / "resources" / "published"
    downloads.mkdir(parents=True)
    for name in PUBLISHED_FILES:
        shutil.copy(SHARED_PUBLISHED / name, downloads / name)
    zip_path = workdir / "resources" / "tiny-imagenet-200.zip"
    zip_path.write_bytes(b"placed by hand")
    (workdir / "config" / "published.yaml").write_text("published:\n  use_predictions: true\n")
    (workdir / "config" / "other.yaml").write_text("output_dir: results/other\nseeds: [3]\n")
    configs = ("config/test.yaml", "config/published.yaml")
    target = ("--cores", "1", "verify_published")  # an option ends --configfile's file list
    assert "verification passed" in snakemake(workdir, *target, configs=configs).stdout
    for script in ("fetch_published.py", "fetch_tinyimagenet.py"):
        with (workdir / "rules" / "scripts" / script).open("a") as handle:
            handle.write("# changed\n")
    for extra in ((), ("config/other.yaml",)):
        rerun = snakemake(workdir, *target, configs=(*configs, *extra))
        assert "fetch_published" in rerun.stdout + rerun.stderr  # the receipts, again
        assert "verification passed" in rerun.stdout
    fetch = snakemake(workdir, "--cores", "1", "fetch_tinyimagenet", configs=(), check=False)
    assert fetch.returncode != 0 and "refused" in fetch.stdout + fetch.stderr
    assert zip_path.read_bytes() == b"placed by hand"
    for name in PUBLISHED_FILES:
        assert (downloads / name).read_bytes() == (SHARED_PUBLISHED / name).read_bytes()


def test_the_documented_disk_use_of_a_run_is_what_a_run_leaves(workflow):
    """docs/reproducing.md's MB per run (model, best and last checkpoints: full size in the
    demo too) and its totals for the paper config's 30 runs and one-seed.yaml's 10."""
    workdir, _, _, _ = workflow
    text = " ".join((ROOT / "docs" / "reproducing.md").read_text().split())
    found = re.search(
        r"(\d+) MB per baseline run and (\d+)-(\d+) MB per improved run.*?"
        r"30 runs \(10 experiments × 3 seeds\) take about (\d+) GB.*?about ([\d.]+) GB",
        text,
    )
    assert found, "docs/reproducing.md no longer states the disk use of a run"
    baseline, low, high, total, one_seed = (float(value) for value in found.groups())

    def megabytes(run: Path) -> float:
        return sum(f.stat().st_size for f in run.rglob("*") if f.is_file()) / 1e6

    out = workdir / "results" / "demo"
    for run in out.glob("baseline/seed*"):
        assert megabytes(run) == pytest.approx(baseline, rel=0.05), run
    for run in out.glob("improved*/seed*"):
        assert low * 0.97 <= megabytes(run) <= high * 1.03, run
    # the paper config: 2 frozen-backbone experiments, 8 of the improved family
    per_seed = 2 * baseline + 8 * (low + high) / 2
    assert total == pytest.approx(3 * per_seed / 1e3, abs=0.6)
    assert one_seed == pytest.approx(per_seed / 1e3, abs=0.3)
