"""Compute accounting: the device time each run took, from its provenance.json and metrics.jsonl.

A run's time is its last training session (train.started to train.finished), plus the epochs of
the sessions before a resume (their `seconds` in metrics.jsonl), plus its evaluation. Time
outside the epochs of an earlier session (start-up, an epoch cut short) is not recorded anywhere
and is not counted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.errors import ArtifactError
from convnext_tinyimagenet.report.tables import save_table
from convnext_tinyimagenet.run_folder import read_json, read_metrics

# experiment -> seed -> {"provenance": path, "metrics": path}
Runs = Mapping[str, Mapping[int, Mapping[str, Path]]]


class ComputeError(ArtifactError):
    """A run's provenance lacks a time the accounting needs, in one line."""


def _timestamp(provenance: Mapping, section: str, key: str) -> dt.datetime:
    """`provenance[section][key]` as a datetime; ComputeError naming the key when absent."""
    value = (provenance.get(section) or {}).get(key)
    if value is None:
        raise ComputeError(
            f"provenance.json has no {section}.{key}; rerun the {section} command to record it"
        )
    try:
        return dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ComputeError(f"provenance.json {section}.{key} is not ISO 8601: {value!r}") from None


def _section_seconds(provenance: Mapping, section: str) -> float:
    """Seconds from `section`.started to `section`.finished; ComputeError if negative."""
    started = _timestamp(provenance, section, "started")
    seconds = (_timestamp(provenance, section, "finished") - started).total_seconds()
    if seconds < 0:
        raise ComputeError(f"provenance.json {section}.finished is before {section}.started")
    return seconds


def run_device_seconds(provenance: Mapping, metrics: Sequence[Mapping]) -> float:
    """Seconds a run held its device: the last training session, the epochs up to and including
    train.resumed_after_epoch (the earlier sessions, which its timestamps miss), and the
    evaluation."""
    seconds = _section_seconds(provenance, "train") + _section_seconds(provenance, "evaluate")
    resumed = provenance["train"].get("resumed_after_epoch")
    if resumed is not None:
        seconds += sum(float(row["seconds"]) for row in metrics if int(row["epoch"]) <= resumed)
    return seconds


def device_label(provenance: Mapping) -> str:
    """The training device: the GPU's name on CUDA, else the device type (e.g. "cpu")."""
    device = (provenance.get("train") or {}).get("device") or {}
    kind = str(device.get("device", "unknown"))
    return str(device.get("name") or kind) if kind.startswith("cuda") else kind


def _run_row(experiment: str, seed: int, files: Mapping[str, Path]) -> dict:
    provenance = read_json(files["provenance"])
    metrics = read_metrics(files["metrics"]).to_dict("records")
    try:
        seconds = run_device_seconds(provenance, metrics)
    except ComputeError as error:
        raise ComputeError(f"{files['provenance']}: {error}") from None
    return {
        "experiment": experiment,
        "seed": seed,
        "device": device_label(provenance),
        "seconds": seconds,
        "hours": seconds / 3600,
    }


def compute_record(runs: Runs) -> dict:
    """Every run's device time (seconds and hours), the totals and the devices used."""
    rows = [
        _run_row(experiment, seed, files)
        for experiment, seeds in runs.items()
        for seed, files in sorted(seeds.items())
    ]
    total = sum(row["seconds"] for row in rows)
    return {
        "runs": rows,
        "total_seconds": total,
        "total_hours": total / 3600,
        "devices": sorted({row["device"] for row in rows}),
    }


def _times(seconds: float, hours: float) -> list[str]:
    return [f"{seconds:,.0f}", f"{hours:.3f}"]


def compute_frame(record: Mapping) -> pd.DataFrame:
    """One row per run (experiment, seed, device, seconds, device-hours) and a Total row."""
    rows = [
        [run["experiment"], str(run["seed"]), run["device"], *_times(run["seconds"], run["hours"])]
        for run in record["runs"]
    ]
    times = _times(record["total_seconds"], record["total_hours"])
    rows.append(["Total", "", ", ".join(record["devices"]), *times])
    return pd.DataFrame(rows, columns=["Experiment", "Seed", "Device", "Seconds", "Device-hours"])


def make_compute_table(runs: Runs, json_path: Path, md: Path, tex: Path) -> list[Path]:
    """Write the compute record (:func:`compute_record`) as JSON and as a table."""
    record = compute_record(runs)
    written = atomic.write_json(json_path, record)
    return [written, *save_table(compute_frame(record), md, tex, align="lrlrr")]


def projected_hours(
    minutes_by_recipe: Mapping[str, float], runs: Sequence[tuple[str, str]]
) -> float:
    """Projected hours of `runs`, each (experiment, the recipe it is timed by), from the
    measured minutes per recipe."""
    unmeasured = sorted({recipe for _, recipe in runs} - set(minutes_by_recipe))
    if unmeasured:
        raise ComputeError(f"no measured minutes for the recipe(s) {', '.join(unmeasured)}")
    return sum(minutes_by_recipe[recipe] for _, recipe in runs) / 60


def timed_by(cfg: Mapping, name: str) -> str:
    """The published run experiment `name` is timed by: itself when it is one, else the first
    published run up its chain of `from` parents; ComputeError when the chain reaches none."""
    runs, chain = cfg["published"]["runs"], [name]
    while chain[-1] not in runs:
        parent = cfg["experiments"][chain[-1]].get("from")
        if parent is None or parent in chain:
            raise ComputeError(f"experiment {name} derives from no published run ({chain})")
        chain.append(parent)
    return chain[-1]


def study_projection(cfg: Mapping, runs: Sequence[tuple[str, int]]) -> dict:
    """The projected device time of `runs` (config.runs_to_do): each run timed by the
    published run its recipe derives from (:func:`timed_by`), at that run's measured minutes
    (`published.runs.<run>.minutes`, the notebooks' own timings)."""
    minutes = {run: spec["minutes"] for run, spec in cfg["published"]["runs"].items()}
    pairs = [(name, timed_by(cfg, name)) for name, _ in runs]
    counts = {recipe: sum(1 for _, r in pairs if r == recipe) for recipe in minutes}
    hours = projected_hours(minutes, pairs)
    return {"minutes": minutes, "runs": counts, "total_minutes": hours * 60, "total_hours": hours}
