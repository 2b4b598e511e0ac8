"""Compute accounting from hand-written provenance and metrics, checked by hand arithmetic, and
the README's projection of the study's GPU time."""

import json
import re

import pytest

from convnext_tinyimagenet.config import load_config, runs_to_do
from convnext_tinyimagenet.report import compute

from .conftest import ROOT


def provenance(train, evaluate, *, resumed=None, device=None):
    """A provenance record with train and evaluate (started, finished) times."""
    device = device or {"device": "cpu", "name": "x86_64"}
    return {
        "train": {
            "started": train[0],
            "finished": train[1],
            "resumed_after_epoch": resumed,
            "device": device,
        },
        "evaluate": {"started": evaluate[0], "finished": evaluate[1]},
    }


def at(clock):
    return f"2026-11-30T{clock}+00:00"


EPOCHS = [{"epoch": 1, "seconds": 3.0}, {"epoch": 2, "seconds": 4.5}, {"epoch": 3, "seconds": 99}]


def test_seconds_of_one_session():
    record = provenance((at("06:50:33"), at("06:50:43")), (at("06:50:45"), at("06:50:50")))
    assert compute.run_device_seconds(record, EPOCHS) == 10 + 5


def test_a_resumed_run_adds_the_earlier_epochs():
    record = provenance(
        (at("06:50:33"), at("06:50:43")), (at("06:50:45"), at("06:50:50")), resumed=2
    )
    assert compute.run_device_seconds(record, EPOCHS) == 10 + 5 + 3.0 + 4.5


@pytest.mark.parametrize(
    ("section", "key"), [("train", "started"), ("evaluate", "finished"), ("evaluate", None)]
)
def test_a_missing_time_names_its_key(section, key):
    record = provenance((at("06:50:33"), at("06:50:43")), (at("06:50:45"), at("06:50:50")))
    if key is None:
        del record[section]
        key = "started"
    else:
        del record[section][key]
    with pytest.raises(compute.ComputeError, match=rf"no {section}\.{key}"):
        compute.run_device_seconds(record, EPOCHS)


def test_a_finish_before_the_start_is_an_error():
    record = provenance((at("06:50:43"), at("06:50:33")), (at("06:50:45"), at("06:50:50")))
    with pytest.raises(compute.ComputeError, match=r"train\.finished is before train\.started"):
        compute.run_device_seconds(record, EPOCHS)


def write_run(root, name, record, epochs):
    folder = root / name
    folder.mkdir()
    (folder / "provenance.json").write_text(json.dumps(record))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    return {"provenance": folder / "provenance.json", "metrics": folder / "metrics.jsonl"}


@pytest.fixture
def runs(tmp_path):
    """base seed 0 on the CPU: 5400 s training + 60 s evaluation = 5460 s; variant seed 1 on a
    GPU, resumed after epoch 2: 1800 s + 0 s + 600 + 1200 s of earlier epochs = 3600 s."""
    cpu = provenance((at("06:00:00"), at("07:30:00")), (at("07:31:00"), at("07:32:00")))
    gpu = provenance(
        (at("08:00:00"), at("08:30:00")),
        (at("08:31:00"), at("08:31:00")),
        resumed=2,
        device={"device": "cuda:0", "name": "NVIDIA H200"},
    )
    epochs = [
        {"epoch": 1, "seconds": 600},
        {"epoch": 2, "seconds": 1200},
        {"epoch": 3, "seconds": 7},
    ]
    return {
        "base": {0: write_run(tmp_path, "base", cpu, epochs[:1])},
        "variant": {1: write_run(tmp_path, "variant", gpu, epochs)},
    }


def test_compute_record(runs):
    record = compute.compute_record(runs)
    assert [(r["experiment"], r["seed"], r["device"]) for r in record["runs"]] == [
        ("base", 0, "cpu"),
        ("variant", 1, "NVIDIA H200"),
    ]
    assert [r["seconds"] for r in record["runs"]] == [5460, 3600]
    assert [r["hours"] for r in record["runs"]] == [5460 / 3600, 1.0]
    assert record["total_seconds"] == 9060
    assert record["total_hours"] == pytest.approx(9060 / 3600)
    assert record["devices"] == ["NVIDIA H200", "cpu"]


def test_a_missing_time_names_the_file(runs):
    path = runs["base"][0]["provenance"]
    record = json.loads(path.read_text())
    del record["evaluate"]["finished"]
    path.write_text(json.dumps(record))
    with pytest.raises(
        compute.ComputeError, match=rf"{re.escape(str(path))}: .*no evaluate\.finished"
    ):
        compute.compute_record(runs)


def test_compute_table(runs, tmp_path):
    paths = [tmp_path / "out" / name for name in ("compute.json", "compute.md", "compute.tex")]
    assert compute.make_compute_table(runs, *paths) == paths
    assert json.loads(paths[0].read_text()) == compute.compute_record(runs)
    md = paths[1].read_text().splitlines()
    assert "Device-hours" in md[0]
    assert [cell.strip() for cell in md[-1].strip("|").split("|")] == [
        "Total",
        "",
        "NVIDIA H200, cpu",
        "9,060",
        "2.517",  # 9060 / 3600 = 2.5167
    ]
    assert "| base " in md[2] and "5,460" in md[2] and "1.517" in md[2]  # 5460 / 3600 = 1.5167
    tex = paths[2].read_text()
    assert "\\toprule" in tex and "Total &  & NVIDIA H200, cpu & 9,060 & 2.517" in tex


def test_projected_hours():
    minutes = {"baseline": 30.0, "improved": 90.0}
    runs = [("baseline", "baseline"), ("improved", "improved"), ("improved_noaug", "improved")]
    assert compute.projected_hours(minutes, runs) == (30 + 90 + 90) / 60
    assert compute.projected_hours(minutes, []) == 0
    with pytest.raises(compute.ComputeError, match=r"recipe\(s\) other"):
        compute.projected_hours(minutes, [("x", "other")])


def test_the_readmes_projection_is_computed_from_the_config():
    """README.md's projected GPU time of the study, from the published runs' own minutes."""
    cfg = load_config()
    projection = compute.study_projection(cfg, runs_to_do(cfg))
    assert projection["runs"] == {"baseline": 6, "improved": 24}
    assert projection["minutes"] == {"baseline": 10.84, "improved": 52.17}
    assert projection["total_minutes"] == pytest.approx(6 * 10.84 + 24 * 52.17)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"about {projection['total_hours']:.1f} hours" in readme
    assert f"({projection['total_minutes']:,.0f} GPU-minutes)" in readme
    for recipe, runs in projection["runs"].items():
        minutes = projection["minutes"][recipe]
        assert f"{runs} {recipe}-type runs × {minutes:g} min" in readme
    # one seed of each experiment (config/one-seed.yaml): a third of it
    one_seed = load_config([ROOT / "config" / "one-seed.yaml"])
    assert len(runs_to_do(one_seed)) == 10
    third = compute.study_projection(one_seed, runs_to_do(one_seed))["total_hours"]
    assert third == pytest.approx(projection["total_hours"] / 3)


def test_a_variant_is_timed_by_the_published_run_it_derives_from():
    cfg = load_config()
    assert compute.timed_by(cfg, "improved_spatial_attention") == "improved"
    assert compute.timed_by(cfg, "baseline_in1k") == "baseline"
    orphan = cfg | {"experiments": cfg["experiments"] | {"lone": {"title": "x"}}}
    with pytest.raises(compute.ComputeError, match=r"^experiment lone derives from no published"):
        compute.timed_by(orphan, "lone")
