"""The benchmark runs on a CPU at small sizes (no assertion about speed: benchmarks judge that)."""

import json

import pytest
import torch

from convnext_tinyimagenet.bench import BenchSizes, format_table, run_bench, write_result

from .conftest import smoke_config

pytestmark = pytest.mark.slow


def test_bench_measures_both_pipelines_and_reports_conditions(tmp_path, smoke_cache):
    sizes = BenchSizes(
        num_classes=4, train_per_class=16, val_per_class=4, input_size=32,
        loader_batches=2, step_batches=1, baseline_epochs=2, workers=1,
    )  # fmt: skip
    result = run_bench(smoke_config(smoke_cache), sizes, torch.device("cpu"))
    whats = [row["what"] for row in result["rows"]]
    assert whats == [
        "baseline: data loading",
        "improved: data loading",
        "improved: training steps",
        "baseline: 2 epochs end to end",
    ]
    for row in result["rows"]:
        assert row["reference"] > 0 and row["ours"] > 0 and row["n"] > 0
        assert row["ratio"] == pytest.approx(row["ours"] / row["reference"])
    table = format_table(result)
    assert "input 32x32, batch 32" in table and "torch" in table
    write_result(result, tmp_path / "bench.json")
    assert json.loads((tmp_path / "bench.json").read_text())["sizes"]["input_size"] == 32
