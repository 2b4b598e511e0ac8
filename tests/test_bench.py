"""The benchmark runs on a CPU at small sizes (no assertion about speed: benchmarks judge that)."""

import json

import pytest
import torch
from benchmarks.bench import BenchSizes, format_table, run_bench, write_result

from .conftest import smoke_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("input_size", "options"), [(64, None), (96, True)])
def test_bench_measures_both_pipelines_and_reports_conditions(
    tmp_path, smoke_cache, input_size, options
):
    sizes = BenchSizes(
        num_classes=4, train_per_class=16, val_per_class=4, input_size=input_size,
        loader_passes=1, step_batches=1, baseline_epochs=2, workers=1,
    )  # fmt: skip
    precision = torch.get_float32_matmul_precision()
    result = run_bench(smoke_config(smoke_cache), sizes, torch.device("cpu"), options=options)
    assert torch.get_float32_matmul_precision() == precision  # the TF32 option was undone
    whats = [row["what"] for row in result["rows"]]
    source = ["improved: data loading, augment.at source (option, other numerics)"]
    precisions = [
        "improved: training steps, TF32 matmuls (option, other numerics)",
        "improved: training steps, bf16 autocast (option, other numerics)",
    ]
    assert whats == [
        "baseline: data loading",
        "improved: data loading",
        *(source if input_size != 64 else []),  # the option only differs when resizing
        "improved: training steps",
        *(precisions if options else []),  # by default on a GPU only
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
    with_option = result["projection"].get("both_ours_with_option", {})
    assert sorted(with_option) == (["TF32 matmuls", "bf16 autocast"] if options else [])
    for label, value in with_option.items():
        row = next(r for r in result["rows"] if r.get("option") == label)
        assert (
            row["reference"] == result["rows"][whats.index("improved: training steps")]["reference"]
        )  # the same published reference
        assert value > minutes["baseline_ours"]
    assert result["projection"]["published_minutes"] == pytest.approx(10.84 + 52.17)
    table = format_table(result)
    assert f"input {input_size}x{input_size}, batch 32" in table and "torch" in table
    assert "Projected full reproduction" in table
    assert ("steps in bf16 autocast (an option)" in table) == bool(options)
    write_result(result, tmp_path / "bench.json")
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["sizes"]["input_size"] == input_size
    assert saved["performance"] == smoke_config(smoke_cache)["performance"]
