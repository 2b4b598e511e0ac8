"""The benchmark runs on a CPU at small sizes (no assertion about speed: benchmarks judge that)."""

import json

import pytest
import torch

from convnext_tinyimagenet.bench import BenchSizes, format_table, run_bench, write_result

from .conftest import smoke_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("input_size", [64, 96])
def test_bench_measures_both_pipelines_and_reports_conditions(tmp_path, smoke_cache, input_size):
    sizes = BenchSizes(
        num_classes=4, train_per_class=16, val_per_class=4, input_size=input_size,
        loader_passes=1, step_batches=1, baseline_epochs=2, workers=1,
    )  # fmt: skip
    result = run_bench(smoke_config(smoke_cache), sizes, torch.device("cpu"))
    whats = [row["what"] for row in result["rows"]]
    option = ["improved: data loading, augment.at source (option, other numerics)"]
    assert whats == [
        "baseline: data loading",
        "improved: data loading",
        *(option if input_size != 64 else []),  # the option only differs when resizing
        "improved: training steps",
        "validation: forward passes",
        "baseline: 2 epochs end to end",
    ]
    for row in result["rows"]:
        assert row["reference"] > 0 and row["ours"] > 0 and row["n"] > 0
        assert row["ratio"] == pytest.approx(row["ours"] / row["reference"])
    for row in result["rows"][:2]:  # loading rows also count CPU seconds (workers included)
        assert row["ratio_per_cpu"] == pytest.approx(
            row["ours_per_cpu_second"] / row["reference_per_cpu_second"]
        )
        assert row["n"] == 4 * 16  # one whole pass
    minutes = result["projection"]["minutes"]
    assert result["projection"]["epochs"] == {"baseline": 6, "improved": 12}  # as published
    assert minutes["both_ours"] == pytest.approx(
        minutes["baseline_ours"] + minutes["improved_ours"]
    )
    assert all(value > 0 for value in minutes.values())
    assert result["projection"]["published_minutes"] == pytest.approx(10.84 + 52.17)
    table = format_table(result)
    assert f"input {input_size}x{input_size}, batch 32" in table and "torch" in table
    assert "Projected full reproduction" in table
    write_result(result, tmp_path / "bench.json")
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["sizes"]["input_size"] == input_size
    assert saved["performance"] == smoke_config(smoke_cache)["performance"]
