"""The input pipeline measured against PIL's kernels (what the notebooks ran)."""

import json

import pytest

from convnext_tinyimagenet.config import load_config
from convnext_tinyimagenet.data.augment import OPS
from convnext_tinyimagenet.tools import fidelity

from .conftest import SMOKE

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


def measure_as_the_rule(cfg: dict, out):
    """measure_input_fidelity with the values its rule passes, writing into `out`."""
    return fidelity.measure_input_fidelity(
        out / "input_pipeline.json",
        out / "input_fidelity.md",
        out / "input_fidelity.tex",
        image_size=cfg["data"]["image_size"],
        input_size=cfg["data"]["input_size"],
        augment={name: exp["augment"] for name, exp in cfg["experiments"].items()},
    )


def test_writes_the_measurement_and_a_table_for_the_paper(tmp_path):
    cfg = load_config([SMOKE])
    written = measure_as_the_rule(cfg, tmp_path)
    names = ("input_pipeline.json", "input_fidelity.md", "input_fidelity.tex")
    assert written == [tmp_path / name for name in names]
    saved = json.loads(written[0].read_text())
    assert saved["input_size"] == cfg["data"]["input_size"]
    assert saved["randaugment"] == cfg["experiments"]["improved"]["augment"]["randaugment"]
    assert saved["summary"]["ops"] == 14 and saved["augment_at"] == "input"
    md, tex = written[1:]
    assert "| RandAugment Rotate (negated) " in md.read_text()  # a row's first cell
    assert r"\begin{tabular}" in tex.read_text()


def test_the_first_randaugment_in_order_is_measured(tmp_path):
    first = {"randaugment": {"num_ops": 1, "magnitude": 3}, "at": "source"}
    last = {"randaugment": {"num_ops": 2, "magnitude": 9}}
    augment = {"a": {"randaugment": None}, "b": first, "c": last}
    written = fidelity.measure_input_fidelity(
        tmp_path / "f.json",
        tmp_path / "f.md",
        tmp_path / "f.tex",
        image_size=16,
        input_size=24,
        augment=augment,
    )
    saved = json.loads(written[0].read_text())
    assert saved["randaugment"] == first["randaugment"] and saved["augment_at"] == "source"
    assert (saved["image_size"], saved["input_size"]) == (16, 24)


def test_without_any_randaugment_only_the_resize_is_written(tmp_path):
    written = fidelity.measure_input_fidelity(
        tmp_path / "f.json",
        tmp_path / "f.md",
        tmp_path / "f.tex",
        image_size=16,
        input_size=24,
        augment={"a": {"randaugment": None}},
    )
    saved = json.loads(written[0].read_text())
    assert saved["ops"] == [] and saved["augment_at"] is None and saved["randaugment"] is None
    assert len(written[1].read_text().splitlines()) == 3  # header, rule, the resize


@pytest.mark.parametrize("n", [2, 6])
def test_the_images_are_deterministic(n):
    first, again = fidelity.source_images(16, n), fidelity.source_images(16, n)
    assert first.shape == (n, 16, 16, 3) and (first == again).all()
