"""Short end-to-end runs of both experiments on synthetic data, resume, and failure behaviour."""

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from convnext_tinyimagenet.data.store import load_store
from convnext_tinyimagenet.train.runner import RunError, evaluate_experiment, train_experiment

from .conftest import CONFIG, SMOKE, image_folder, smoke_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory, smoke_cache):
    """Both experiments trained and evaluated once on the smoke config."""
    root = tmp_path_factory.mktemp("runs")
    cfg = smoke_config(smoke_cache)
    out = {}
    for name in ("baseline", "improved"):
        out[name] = root / name
        train_experiment(cfg, name, out[name], progress=False)
        evaluate_experiment(cfg, name, out[name], progress=False)
    return cfg, out


@pytest.mark.parametrize("name", ["baseline", "improved"])
def test_short_runs_learn_the_synthetic_task(runs, name):
    _, out = runs
    summary = json.loads((out[name] / "summary.json").read_text())
    assert summary["accuracy"] >= 90.0
    low, high = summary["wilson95"]
    assert low <= summary["accuracy"] <= high


@pytest.mark.parametrize("name", ["baseline", "improved"])
def test_run_leaves_metrics_predictions_and_provenance(runs, name):
    cfg, out = runs
    run = out[name]
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    for key in ("train_loss", "val_loss", "val_acc", "val_acc_batch_mean", "lr", "seconds"):
        assert all(key in r for r in history)
    groups = {"baseline": {"head"}, "improved": {"stages.3", "attention", "head"}}[name]
    assert set(history[0]["lr"]) == groups

    store = load_store(cfg["data"], progress=False)
    predictions = pd.read_csv(run / "predictions.csv")
    assert list(predictions["image_id"]) == list(store.val.image_ids)
    assert (predictions["label"].to_numpy() == store.val.labels).all()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["correct"] == int(predictions["correct"].sum())
    assert (
        summary["best_epoch"]
        == max((r for r in history if r["best"]), key=lambda r: r["epoch"])["epoch"]
    )
    assert len(summary["per_class"]) == len(store.classes)

    prov = json.loads((run / "provenance.json").read_text())
    for section in ("train", "evaluate"):
        record = prov[section]
        assert [record["seed"]] == cfg["seeds"]
        assert record["versions"]["torch"] and record["device"]["device"] == "cpu"
        assert record["data"]["fingerprint"] == store.fingerprint
        assert record["started"] <= record["finished"]
        assert "commit" in record["git"]
    assert prov["train"]["precision"] == "fp32"  # fp16 falls back on the CPU
    assert prov["train"]["performance"] == cfg["performance"] | {"data_on": "host"}
    assert (run / "config.yaml").is_file() and (run / "model.safetensors").is_file()


def test_batch_mean_accuracy_is_computed_at_the_training_batch_size(runs):
    _, out = runs
    predictions = pd.read_csv(out["improved"] / "predictions.csv")
    correct = predictions["correct"].to_numpy(float)
    means = [correct[i : i + 32].mean() for i in range(0, len(correct), 32)]
    summary = json.loads((out["improved"] / "summary.json").read_text())
    assert summary["accuracy_batch_mean"] == pytest.approx(100 * np.mean(means))


def _digest(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_rerun_of_a_finished_run_changes_nothing(runs):
    cfg, out = runs
    before = _digest(out["baseline"])
    history = train_experiment(cfg, "baseline", out["baseline"], progress=False)
    assert len(history) == 3
    after = _digest(out["baseline"])
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed <= {"provenance.json", "config.yaml"}
    assert before["metrics.jsonl"] == after["metrics.jsonl"]


def test_a_new_title_or_validation_batch_reuses_the_finished_run(runs, smoke_cache, tmp_path):
    """Not part of the run's identity: the finished checkpoint is found, nothing retrains."""
    _, out = runs
    run = tmp_path / "baseline"
    shutil.copytree(out["baseline"], run)
    before = (run / "metrics.jsonl").read_bytes()
    changed = smoke_config(smoke_cache, "experiments.baseline.title=Another title",
                           "experiments.baseline.train.eval_batch_size=16")  # fmt: skip
    history = train_experiment(changed, "baseline", run, progress=False)
    assert len(history) == 3 and (run / "metrics.jsonl").read_bytes() == before
    assert len(list((run / "checkpoints").iterdir())) == 1
    summary = evaluate_experiment(changed, "baseline", run, progress=False)
    assert summary["title"] == "Another title"


def _drop_results(run: Path) -> None:
    """What Snakemake does before it reruns run_experiment: delete the rule's outputs (not the
    checkpoints, which no rule declares)."""
    for path in run.iterdir():
        if path.is_file():
            path.unlink()


def test_a_changed_config_trains_afresh_and_keeps_the_earlier_checkpoints(
    runs, smoke_cache, tmp_path
):
    _, out = runs
    run = tmp_path / "baseline"
    shutil.copytree(out["baseline"], run)
    (earlier,) = (run / "checkpoints").iterdir()
    before = _digest(earlier)
    _drop_results(run)
    changed = smoke_config(smoke_cache, "experiments.baseline.train.early_stopping.max_epochs=1")
    history = train_experiment(changed, "baseline", run, progress=False)
    assert len(history) == 1  # not resumed from the 3-epoch run
    assert _digest(earlier) == before
    assert len(list((run / "checkpoints").iterdir())) == 2


@pytest.mark.parametrize("command", [train_experiment, evaluate_experiment])
def test_a_folder_holding_another_runs_results_is_refused(runs, smoke_cache, tmp_path, command):
    """`train --set ...` (or evaluate) into the workflow's run folder: refused in one line, the
    folder untouched (a run's files are one run's)."""
    _, out = runs
    run = tmp_path / "baseline"
    shutil.copytree(out["baseline"], run)
    before = _digest(run)
    changed = smoke_config(smoke_cache, "experiments.baseline.trainable.0.lr=0.05")
    with pytest.raises(RunError, match="other settings") as refused:
        command(changed, "baseline", run, progress=False)
    assert "\n" not in str(refused.value) and str(run) in str(refused.value)
    assert _digest(run) == before


def test_a_second_writer_of_a_run_folder_is_refused(runs, tmp_path):
    """One writer per run folder: while a process holds its lock, train and evaluate stop."""
    cfg, out = runs
    run = tmp_path / "baseline"
    shutil.copytree(out["baseline"], run)
    before = _digest(run)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from filelock import FileLock; "
         "lock = FileLock(sys.argv[1]); lock.acquire(); print('locked', flush=True); "
         "time.sleep(60)", str(run / ".lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        for command in (train_experiment, evaluate_experiment):
            with pytest.raises(Exception, match="another process is writing") as refused:
                command(cfg, "baseline", run, progress=False)
            assert "\n" not in str(refused.value)
    finally:
        holder.kill()
        holder.wait()
    assert _digest(run) == before


def test_no_gpu_and_a_long_run_stop_before_training(smoke_cache, tmp_path):
    """`device: auto` on a machine without a GPU: a run projected at over an hour on this CPU
    stops in one line with the projection and the two ways on, before any epoch."""
    cfg = smoke_config(smoke_cache, "data.input_size=224",
                       "experiments.improved.train.early_stopping.max_epochs=1000")  # fmt: skip
    with pytest.raises(RunError) as refused:
        train_experiment(cfg, "improved", tmp_path / "run", progress=False)
    message = str(refused.value)
    assert "\n" not in message and "no GPU found (device: auto)" in message
    assert "480 images, 1000 epochs" in message and "set device: cpu" in message
    assert not list((tmp_path / "run").glob("checkpoints/*/*"))  # no epoch ran


def test_a_changed_dataset_trains_again(tmp_path):
    """The run's identity covers its data: after one image of the folder changed, the same
    settings train afresh (a new checkpoint folder) instead of resuming the old data's run, and
    provenance records the data it trained on; with the old results still in the folder, the
    run is refused instead of mixing the two."""
    root = image_folder(tmp_path / "tiny-imagenet-200", 32)
    cfg = smoke_config(tmp_path / "cache", "data.source=folder", f"data.folder.root={root}",
                       "data.image_size=32", "experiments.baseline.train.holdout_per_class=2",
                       "experiments.baseline.train.early_stopping.max_epochs=1")  # fmt: skip
    run = tmp_path / "run"
    train_experiment(cfg, "baseline", run, progress=False)
    first = json.loads((run / "provenance.json").read_text())["train"]["data"]["fingerprint"]
    changed = root / "train" / "n00000001" / "images" / "n00000001_0.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(changed)
    with pytest.raises(RunError, match="other data"):
        train_experiment(cfg, "baseline", run, progress=False)
    _drop_results(run)
    train_experiment(cfg, "baseline", run, progress=False)
    second = json.loads((run / "provenance.json").read_text())["train"]
    assert second["data"]["fingerprint"] != first and second["resumed_after_epoch"] is None
    assert len(list((run / "checkpoints").iterdir())) == 2


def test_missing_dataset_stops_evaluation_and_leaves_results(runs, tmp_path):
    from convnext_tinyimagenet.data.store import DataError

    _, out = runs
    before = _digest(out["improved"])
    broken = smoke_config(
        tmp_path / "cache",
        "experiments.improved.data.source=folder",  # the experiment's own source wins
        f"data.folder.root={tmp_path / 'nowhere'}",
    )
    with pytest.raises(DataError, match="nowhere"):
        evaluate_experiment(broken, "improved", out["improved"], progress=False)
    assert _digest(out["improved"]) == before


def test_a_first_run_that_fails_leaves_no_empty_folder(smoke_cache, tmp_path):
    """`train` into a new folder that stops early (no dataset, offline) leaves nothing behind;
    a folder that was there stays."""
    from convnext_tinyimagenet.data.store import DataError

    nowhere = f"data.folder.root={tmp_path / 'nowhere'}"
    broken = smoke_config(smoke_cache, "data.source=folder", nowhere)
    for out in (tmp_path / "new" / "run", tmp_path / "existing"):
        existed = out.name == "existing"
        if existed:
            out.mkdir()
        with pytest.raises(DataError, match="nowhere"):
            train_experiment(broken, "baseline", out, progress=False)
        assert out.exists() is existed and (not existed or list(out.iterdir()) == [out / ".lock"])


def test_evaluate_without_training_names_the_missing_model(smoke_cache, tmp_path):
    with pytest.raises(RunError, match=r"model\.safetensors"):
        evaluate_experiment(smoke_config(smoke_cache), "baseline", tmp_path, progress=False)


def _cli(out: Path, cache: Path, *command: str) -> list[str]:
    return [
        sys.executable, "-m", "convnext_tinyimagenet", *command,
        "--config", str(CONFIG), "--config", str(SMOKE), "--experiment", "improved",
        "--out", str(out), "--no-progress",
        "--set", f"data.cache_dir={cache}", "--set", "deterministic=true",
        "--set", "experiments.improved.train.early_stopping.max_epochs=3",
    ]  # fmt: skip


def _train_and_evaluate(out: Path, cache: Path) -> None:
    for command in ("train", "evaluate"):
        subprocess.run(_cli(out, cache, command), check=True, capture_output=True)


def _metrics_without_timings(path: Path) -> list[dict]:
    timing = {"seconds", "train_seconds", "val_seconds", "images_per_second"}
    return [
        {k: v for k, v in json.loads(line).items() if k not in timing}
        for line in path.read_text().splitlines()
    ]


def test_killed_run_resumes_to_the_same_result(tmp_path, smoke_cache):
    """SIGKILL after epoch 1 is checkpointed; rerunning the command ends where a clean run ends."""
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    _train_and_evaluate(reference, smoke_cache)

    process = subprocess.Popen(_cli(resumed, smoke_cache, "train"))
    checkpoints = resumed / "checkpoints"
    deadline = time.monotonic() + 300
    latest = None
    while time.monotonic() < deadline and process.poll() is None:
        found = list(checkpoints.glob("*/latest.json"))
        if found and json.loads(found[0].read_text())["epoch"] >= 1:
            latest = found[0]
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = json.loads(latest.read_text())["epoch"]
    assert killed_at < 3 and not (resumed / "model.safetensors").exists()

    _train_and_evaluate(resumed, smoke_cache)
    prov = json.loads((resumed / "provenance.json").read_text())
    assert prov["train"]["resumed_after_epoch"] == killed_at
    assert _metrics_without_timings(resumed / "metrics.jsonl") == _metrics_without_timings(
        reference / "metrics.jsonl"
    )
    assert (resumed / "predictions.csv").read_bytes() == (
        reference / "predictions.csv"
    ).read_bytes()


def test_evaluation_batch_size_changes_no_metric(runs, smoke_cache, tmp_path):
    """Batch-mean figures come from per-image results at the training batch size."""
    _, out = runs
    run = tmp_path / "improved"
    shutil.copytree(out["improved"], run)
    other = smoke_config(smoke_cache, "experiments.improved.train.eval_batch_size=7")
    summary = evaluate_experiment(other, "improved", run, progress=False)
    reference = json.loads((out["improved"] / "summary.json").read_text())
    for key in ("accuracy", "accuracy_batch_mean", "top5", "correct"):
        assert summary[key] == reference[key], key
    assert summary["loss"] == pytest.approx(reference["loss"], rel=1e-5)


def test_the_model_is_the_best_epochs_not_the_last(tmp_path, smoke_cache, monkeypatch):
    """Early stopping restores the best epoch (both notebooks did): with the monitored value
    scripted so that epoch 2 of 3 is best, model.safetensors holds epoch 2's weights, and the
    evaluation scores that model."""
    from safetensors.torch import load_file

    from convnext_tinyimagenet.train import runner

    scripted = iter([1.0, 0.5, 0.9])  # baseline monitor: val_loss_batch_mean, lower is better
    real = runner.summarize

    def summarize(per_image, batch_size, prefix):
        return real(per_image, batch_size, prefix) | {"val_loss_batch_mean": next(scripted)}

    monkeypatch.setattr(runner, "summarize", summarize)
    cfg = smoke_config(smoke_cache, "experiments.baseline.train.early_stopping.patience=5")
    history = train_experiment(cfg, "baseline", tmp_path, progress=False)
    assert [r["best"] for r in history] == [True, True, False] and len(history) == 3
    (ckdir,) = (tmp_path / "checkpoints").iterdir()
    model = load_file(tmp_path / "model.safetensors")
    best = load_file(ckdir / "best-002.safetensors")
    (last_file,) = [p for p in ckdir.glob("*.safetensors") if not p.name.startswith("best-")]
    last = load_file(last_file)
    assert model.keys() == best.keys() == last.keys()
    assert all(torch.equal(model[k], best[k]) for k in model)
    assert not all(torch.equal(model[k], last[k]) for k in model)  # epoch 3 trained on

    summary = evaluate_experiment(cfg, "baseline", tmp_path, progress=False)
    assert summary["best_epoch"] == 2
    assert summary["accuracy"] == pytest.approx(history[1]["val_acc"])  # epoch 2's model
