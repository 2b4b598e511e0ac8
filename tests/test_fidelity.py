"""The input pipeline measured against PIL's kernels (what the notebooks ran)."""

import json

import pytest

from convnext_tinyimagenet import fidelity, paths
from convnext_tinyimagenet.augment import OPS
from convnext_tinyimagenet.config import load_config

from .conftest import CONFIG, SMOKE

MOVE_PIXELS = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}


def test_paper_sizes_nine_ops_exact_four_round_rotation_resamples():
    result = fidelity.measure(64, 224, {"num_ops": 2, "magnitude": 9}, n=8)
    assert result["resize"]["max_abs_diff"] <= 1 and result["resize"]["pixels_differing_pct"] > 0
    rows = {(r["op"], r["sign"]): r for r in result["ops"]}
    assert {op for op, _ in rows} == set(OPS)
    assert ("ShearX", "-") in rows and ("Posterize", "") in rows  # signed ops both ways
    summary = fidelity.summary(result)
    assert summary["ops"] == len(OPS) == 14
    assert summary["exact_ops"] == 9
    assert set(summary["rounding_ops"]) == {"Color", "Contrast", "Sharpness", "AutoContrast"}
    assert summary["larger_ops"] == ["Rotate"] and 0 < summary["larger_max_pct"] < 0.5
    for row in result["ops"]:  # more than one level apart: a share of the values that differ
        assert row["pixels_over_one_pct"] <= row["pixels_differing_pct"]
    assert 0 < summary["rounding_max_pct"] < 20
    # the bounds the README states: one grey level at most, on at most these shares of values
    bounds = {"Color": 20.0, "Contrast": 20.0, "Sharpness": 3.0, "AutoContrast": 0.2}
    for (op, sign), row in rows.items():
        if op in bounds:
            assert row["max_abs_diff"] <= 1 and row["pixels_differing_pct"] < bounds[op], (op, sign)
    for (op, _), row in rows.items():
        if op in MOVE_PIXELS - {"Rotate"}:
            assert row["max_abs_diff"] == 0, op


def test_without_randaugment_only_the_resize_is_compared():
    result = fidelity.measure(64, 32, None, n=4)
    assert result["ops"] == [] and result["resize"]["max_abs_diff"] <= 1
    assert fidelity.summary(result)["ops"] == 0
    assert fidelity.fidelity_frame(result)["Step"].tolist() == ["Resize (bilinear)"]


def test_the_step_writes_json_and_a_table_for_the_paper(tmp_path):
    cfg = load_config([CONFIG, SMOKE], [f"output_dir={tmp_path}"])
    written = fidelity.measure_input_fidelity(cfg)
    assert written[0] == paths.fidelity_summary(cfg)
    saved = json.loads(written[0].read_text())
    assert saved["input_size"] == cfg["data"]["input_size"]
    assert saved["randaugment"] == cfg["experiments"]["improved"]["augment"]["randaugment"]
    assert saved["summary"]["ops"] == 14 and saved["augment_at"] == "input"
    md, tex = written[1:]
    assert md.name == "input_fidelity.md" and "| RandAugment Rotate (negated) |" in md.read_text()
    assert r"\begin{tabular}" in tex.read_text()


@pytest.mark.parametrize("n", [2, 6])
def test_the_images_are_deterministic(n):
    first, again = fidelity.source_images(16, n), fidelity.source_images(16, n)
    assert first.shape == (n, 16, 16, 3) and (first == again).all()
