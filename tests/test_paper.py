"""The paper's macros (numbers.tex, inputs.tex) and its build by the workflow's rules.

Results, tables and figures here are small stand-ins written by the tests themselves. The build
tests run rules make_paper_inputs and build_paper (latexmk) with Snakemake in a copy of the
workflow whose results folder holds the stand-ins (skipped only where latexmk is not installed;
CI installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib
import pytest
import yaml

from convnext_tinyimagenet.config import experiment_seeds, experiment_source, load_config
from convnext_tinyimagenet.report import paper
from convnext_tinyimagenet.run_folder import run_dir

from .conftest import ROOT, SMOKE

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PAPER_DIR = ROOT / "paper"
HAVE_LATEXMK = shutil.which("latexmk") is not None and shutil.which("pdflatex") is not None
needs_latexmk = pytest.mark.skipif(not HAVE_LATEXMK, reason="latexmk/pdflatex not installed")

# Hand-made summaries: 156/160 and 150/160 correct (the smoke demo's shape).
BASELINE = {
    "experiment": "baseline",
    "title": "Baseline (frozen backbone, linear head)",
    "n": 160,
    "correct": 156,
    "accuracy": 97.5,
    "accuracy_batch_mean": 97.5,
    "batch_size_for_mean": 32,
    "top5": 98.75,
    "wilson95": [93.74901071333326, 99.02360074537376],
    "per_class": {"s000": 100.0, "s001": 93.75, "s002": 87.5, "s003": 100.0},
    "epochs": 3,
    "best_epoch": 2,
}
IMPROVED = {
    "experiment": "improved",
    "title": "Improved (last stage tuned, token attention head, RandAugment, RandomErasing)",
    "n": 160,
    "correct": 150,
    "accuracy": 93.75,
    "accuracy_batch_mean": 93.75,
    "batch_size_for_mean": 32,
    "top5": 99.375,
    "wilson95": [88.87842459710525, 96.57003332538804],
    "per_class": {"s000": 75.0, "s001": 100.0, "s002": 87.5, "s003": 100.0},
    "epochs": 4,
    "best_epoch": 4,
}
# The shape of the published summary: exact counts recomputed from the published CSVs.
PUBLISHED = {
    "baseline": {
        "accuracy": 82.61,
        "accuracy_batch_mean": 82.61,
        "n": 10000,
        "correct": 8261,
        "claim": 82.61,
    },
    "improved": {
        "accuracy": 86.31,
        "accuracy_batch_mean": 86.3019,
        "n": 10000,
        "correct": 8631,
        "claim": 86.30,
    },
}
DATA = {
    "source": "synthetic",
    "params": {"num_classes": 4, "train_per_class": 40, "val_per_class": 40},
    "fingerprint": "80056ca76b4470329b55966cd1f69ca8cbb046ef68c5ff4a5a159e808ce51610",
    "image_size": 64,
    "num_classes": 4,
    "num_train": 160,
    "num_val": 160,
}
PROVENANCE = {
    "train": {
        "versions": {"python": "3.11.7", "torch": "2.4.1", "timm": "1.0.9"},
        "device": {"device": "cpu", "name": "x86_64"},
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "precision": "fp32",
    }
}


def config(*overrides: str) -> dict:
    """The smoke config (the workflow tests' too), reading the published predictions."""
    return load_config([SMOKE], ["published.use_predictions=true", *overrides])


def paper_config(cfg: dict) -> paper.PaperConfig:
    """What rule make_paper_inputs hands the package from `cfg` (its params)."""
    pair = [name for name in cfg["experiments"] if name in cfg["published"]["runs"]]
    return paper.PaperConfig(
        experiments={name: cfg["experiments"][name] for name in pair},  # the rule's PUBLISHED_PAIR
        published_runs=cfg["published"]["runs"],
        published_repository=cfg["published"]["repository"],
        published_commit=cfg["published"]["commit"],
        figures=cfg["figures"],
        figure_experiment=pair[-1],  # the rule's FIGURE_EXPERIMENT
        input_size=cfg["data"]["input_size"],
        seeds=cfg["seeds"],
        output_dir=cfg["output_dir"],
    )


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def tiny_pdf(path: Path, width: float, height: float) -> None:
    """A small stand-in figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.plot([1, 2, 3], [3, 1, 2])
    ax.set_title(path.stem)
    fig.savefig(path)
    plt.close(fig)


def tabular(header: list[str], rows: list[list[str]]) -> str:
    """A booktabs tabular with plain `l` columns, as the tables step writes them."""
    lines = [
        rf"\begin{{tabular}}{{{'l' * len(header)}}}",
        r"\toprule",
        " & ".join(paper.tex_escape(cell) for cell in header) + r" \\",
        r"\midrule",
        *(" & ".join(paper.tex_escape(cell) for cell in row) + r" \\" for row in rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


# fidelity.py's summary of the input pipeline against PIL's kernels (values as measured at 224)
FIDELITY = {
    "images": 32,
    "resize": {"pixels_differing_pct": 21.45, "mean_abs_diff": 0.214, "max_abs_diff": 1},
    "summary": {
        "ops": 14,
        "exact_ops": 9,
        "rounding_max_pct": 14.385,
        "larger_ops": ["Rotate"],
        "larger_max_pct": 0.0563,
    },
}


def stand_in_tables(cfg: dict) -> dict[str, str]:
    """Tables shaped like the real ones (the recipe and discrepancies from the config)."""
    names = list(cfg["experiments"])
    recipe = [["model", *(cfg["experiments"][n]["model"]["tag"] for n in names)]]
    recipe += [
        [key, *(str(cfg["experiments"][n]["train"][key]) for n in names)]
        for key in ("batch_size", "precision", "label_smoothing", "scheduler")
    ]
    discrepancies = [
        [f"D{i}", d["topic"], d["readme"], d["ran"], ", ".join(d["affects"])]
        for i, d in enumerate(cfg["discrepancies"], 1)
    ]
    results = [
        [n, f"{s['accuracy']:.2f}", f"{PUBLISHED[n]['claim']:.2f}"]
        for n, s in (("baseline", BASELINE), ("improved", IMPROVED))
    ]
    verification = [
        [f"{n}: claim", f"{PUBLISHED[n]['claim']:.2f}", f"{PUBLISHED[n]['accuracy']:.2f}", "pass"]
        for n in ("baseline", "improved")
    ]
    tables = {
        "results": tabular(["run", "rerun %", "published %"], results),
        "verification": tabular(["claim", "published", "recomputed", "verdict"], verification),
        "recipe": tabular(["setting", *names], recipe),
        "discrepancies": tabular(
            ["", "topic", "README says", "notebooks ran", "affects"], discrepancies
        ),
        "input_fidelity": tabular(
            ["step", "differing %", "largest"],
            [["Resize", "21.45", "1"], ["Rotate +", "0.06", "64"]],
        ),
    }
    for name, summary in (("baseline", BASELINE), ("improved", IMPROVED)):
        rows = [["top", c, f"{a:.2f}"] for c, a in summary["per_class"].items()]
        tables[f"classes_{name}"] = tabular(["", "class", "accuracy %"], rows)
    return tables | study_tables()


def study_tables() -> dict[str, str]:
    """Stand-ins for the study's tables (tables/ablation.tex, compute.tex, variants.tex)."""
    ablation = [["improved_linear", "91.25 [85.9, 94.7]", "-2.50 [-6.9, 1.9]", "0.31"]]
    variants = [["improved_linear", "improved", "Head", "token_attention", "linear"]]
    compute = [["baseline/seed0", "0.03"], ["improved/seed0", "0.05"], ["all runs", "0.08"]]
    return {
        "ablation": tabular(["experiment", "accuracy %", "effect", "McNemar p"], ablation),
        "compute": tabular(["run", "device-hours"], compute),
        "variants": tabular(["variant", "of", "setting", "its recipe's", "its own"], variants),
    }


# the shape of study/difference.tex (report.study.difference_tex): one item per variant
DIFFERENCE = (
    "\\begin{itemize}\n  \\item {}Linear head, against Improved, on 1 seed: lower, "
    "95 \\% interval [-6.9, +1.9] points; not resolved.\n\\end{itemize}\n"
)


def _predictions(path: Path, ids: list[str], correct: list[bool]) -> Path:
    rows = ["image_id,index,label,prediction,correct,top5,confidence"]
    rows += [
        f"{i},{k},0,{0 if c else 1},{c},True,0.5"
        for k, (i, c) in enumerate(zip(ids, correct, strict=True))
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_results(out: Path, cfg: dict) -> dict[str, Any]:
    """Stand-ins for every file the paper reads or includes, where the rules write them under
    the output folder `out`; returns make_paper_inputs' keyword arguments naming them."""
    files: dict[str, Any] = {"summaries": [], "metrics": [], "provenance": [], "predictions": []}
    ids = [f"{k:016x}" for k in range(160)]
    for name, summary in (("baseline", BASELINE), ("improved", IMPROVED)):
        run = Path(run_dir(out, name, experiment_seeds(cfg, name)[0]))  # its first seed's run
        files["summaries"].append(write_json(run / "summary.json", summary))
        correct = [k < summary["correct"] for k in range(160)]  # the same 160 images
        files["predictions"].append(_predictions(run / "predictions.csv", ids, correct))
        files["provenance"].append(write_json(run / "provenance.json", PROVENANCE))
        rows = [{"epoch": e, "seconds": 30.0} for e in range(1, summary["epochs"] + 1)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        files["metrics"].append(run / "metrics.jsonl")
    source = experiment_source(cfg, "baseline")  # the first published recipe's: one per source
    files["data"] = write_json(out / "data" / source / "data.json", DATA)
    files["fidelity"] = write_json(out / "fidelity" / "input_pipeline.json", FIDELITY)
    files["published"] = write_json(out / "published" / "summary.json", PUBLISHED)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    for name, text in stand_in_tables(cfg).items():
        (out / "tables" / f"{name}.tex").write_text(text, encoding="utf-8")
    (out / "study").mkdir(parents=True, exist_ok=True)
    (out / "study" / "difference.tex").write_text(DIFFERENCE, encoding="utf-8")
    tiny_pdf(out / "figures" / "learning_curves.pdf", 8, 3)
    tiny_pdf(out / "figures" / "ablation_effects.pdf", 4, 2)
    tiny_pdf(out / "figures" / "per_class_accuracy.pdf", 8, 2.5)
    tiny_pdf(out / "figures" / "improved" / "correct_wrong.pdf", 8, 4)
    tiny_pdf(out / "figures" / "improved" / "class_grid.pdf", 8, 4)
    return files


def included(out: Path) -> list[Path]:
    """The stand-in tables, text and figures under `out` (what paper.tex includes), tables
    first."""
    tex = sorted(out.glob("tables/*.tex")) + sorted(out.glob("study/*.tex"))
    return tex + sorted(out.glob("figures/**/*.pdf"))


@pytest.fixture
def results(tmp_path) -> tuple[dict, dict[str, Any]]:
    """(config, make_paper_inputs' file arguments) with the stand-ins under tmp_path/results."""
    cfg = config()
    return cfg, write_results(tmp_path / "results", cfg)


def all_macros(cfg: dict, published=PUBLISHED) -> dict[str, str]:
    return paper.macros(
        paper_config(cfg),
        {"baseline": BASELINE, "improved": IMPROVED},
        published,
        DATA,
        provenance={"baseline": PROVENANCE, "improved": PROVENANCE},
        metrics={"baseline": [{"seconds": 60.0}] * 3, "improved": [{"seconds": 90.0}] * 4},
        fidelity=FIDELITY,
    )


def test_fidelity_macros_come_from_the_measurement():
    values = all_macros(config())
    assert values["FidelityExactOps"] == "9" and values["FidelityOps"] == "14"
    assert values["FidelityRoundingPct"] == "14.4" and values["FidelityLargerPct"] == "0.06"
    assert values["ResizeMaxDiff"] == "1" and values["ResizeDifferingPct"] == "21.4"
    assert values["FidelityImages"] == "32"
    assert values["FidelityLargerClause"] == (
        r"and in Rotate at most 0.06\pct{} of values differ by more (another neighbour is sampled)"
    )
    none_larger = {**FIDELITY, "summary": {**FIDELITY["summary"], "larger_ops": []}}
    assert paper._fidelity_macros(none_larger)["FidelityLargerClause"] == (
        "and no value differs by more"
    )


# --------------------------------------------------------------------------- macros


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BaselineRerunAcc", "97.50"),
        ("BaselineRerunLow", "93.75"),
        ("BaselineRerunHigh", "99.02"),
        ("BaselineRerunTopFive", "98.75"),
        ("BaselineRerunCorrect", "156"),
        ("BaselineEpochs", "3"),
        ("BaselineBestEpoch", "2"),
        ("BaselinePublishedClaim", "82.61"),
        ("BaselinePublishedExact", "82.61"),
        ("ImprovedRerunAcc", "93.75"),
        ("ImprovedRerunTopFive", "99.38"),
        ("ImprovedPublishedClaim", "86.30"),  # YAML 86.30 is the float 86.3: two decimals kept
        ("ImprovedPublishedExact", "86.31"),
        ("ImprovedPublishedBatchMean", "86.30"),
        ("ImprovedPublishedBatchMeanFine", "86.3019"),
        ("ImprovedPublishedCorrect", "8,631"),
        ("ImprovedPublishedN", "10,000"),
        ("ImprovedPublishedBatches", "313"),  # 10,000 / 32 -> 313 batches
        ("ImprovedPublishedLastBatch", "16"),  # 10,000 - 312 * 32
        ("ImprovedPublishedEpochs", "12"),
        ("ImprovedPublishedBestEpoch", "7"),
        ("RerunDifference", "$-$3.75"),
        ("PublishedDifference", "+3.69"),
        ("PublishedExactDifference", "+3.70"),
        ("BaselineRerunMinusClaim", "+14.89"),
        ("PublishedAvailable", "true"),
        ("BaselineTag", r"convnext\_tiny.in12k\_ft\_in1k"),
        ("ImprovedTag", r"convnext\_tiny.fb\_in1k"),
        ("BaselineMonitor", r"val\_loss\_batch\_mean"),
        ("BaselineHeadLr", r"$10^{-3}$"),
        ("BaselineHeadWeightDecay", "0.01"),
        ("ImprovedStagesThreeLr", r"$5\times10^{-5}$"),
        ("ImprovedAttentionWeightDecay", r"$5\times10^{-4}$"),
        ("ImprovedLabelSmoothing", "0.05"),
        ("ImprovedRandomErasingP", "0.15"),
        ("ImprovedAttentionDropout", "0.2"),
        ("ImprovedSchedulerTmax", "50"),
        ("BaselineStepsPerEpoch", "5"),  # 160 train images / batch 32
        ("TrainImages", "160"),
        ("ValImages", "160"),
        ("NumClasses", "4"),
        ("InputSize", "32"),
        ("Seeds", "0, 1"),  # config/smoke.yaml's seeds
        ("SeedCount", "2"),
        ("ImageSize", "64"),
        ("IsSynthetic", "true"),
        ("ConfigName", "smoke"),
        ("DataDescription", "synthetic images (smoke config), not TinyImageNet"),
        ("DataFingerprint", "80056ca76b44"),
        ("ClassesBetter", "1"),
        ("ClassesWorse", "1"),
        ("ClassesTied", "2"),
        ("BaselineRerunMinutes", "3.00"),  # 3 epochs x 60 s
        ("ImprovedRerunMinutesPerEpoch", "1.50"),
        ("TorchVersion", "2.4.1"),
        ("GitCommit", "0123456"),
        ("GitState", "clean"),
        ("BaselineDevice", "cpu (x86\\_64)"),
        ("SampleSeed", "42"),
        ("GridClasses", "10"),
    ],
)
def test_macro_values(name, expected):
    assert all_macros(config())[name] == expected


def test_macros_without_published_summary_read_na():
    values = all_macros(config(), published=None)
    for name in ("ImprovedPublishedExact", "BaselinePublishedCorrect", "PublishedExactDifference"):
        assert values[name] == "n/a"
    assert values["PublishedAvailable"] == "false"
    # the README's claims live in the config, so they stay
    assert values["BaselinePublishedClaim"] == "82.61"


def test_macros_describe_real_data():
    cfg = load_config()
    info = {**DATA, "source": "hf", "id": "zh-plus/tiny-imagenet", "num_train": 100_000}
    info |= {"num_val": 10_000, "num_classes": 200}
    values = paper.macros(
        paper_config(cfg), {"baseline": BASELINE, "improved": IMPROVED}, None, info
    )
    assert values["DataDescription"] == "TinyImageNet (zh-plus/tiny-imagenet)"
    assert values["ConfigName"] == "paper"
    assert values["IsSynthetic"] == "false"
    assert values["TrainImages"] == "100,000"
    assert values["BaselineStepsPerEpoch"] == "3,125"  # 100,000 / 32
    assert values["ImprovedMaxEpochs"] == "none"
    assert values["BaselineDevice"] == "n/a"  # no provenance given
    assert (values["Seeds"], values["SeedCount"]) == ("0, 1, 2", "3")  # config.yaml's seeds


def test_macro_names_are_letters_only_and_prefixed():
    values = all_macros(config())
    assert all(re.fullmatch(r"[A-Za-z]+", name) for name in values)
    assert len(values) > 100
    # every per-experiment macro exists for both experiments
    baseline = {n.removeprefix("Baseline") for n in values if n.startswith("Baseline")}
    improved = {n.removeprefix("Improved") for n in values if n.startswith("Improved")}
    assert {"RerunAcc", "RerunLow", "RerunHigh", "Tag", "PublishedClaim"} <= baseline & improved


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("baseline", "Baseline"),
        ("stages.3", "StagesThree"),
        ("attention_dropout", "AttentionDropout"),
        ("run-12", "RunOneTwo"),
    ],
)
def test_camel(name, expected):
    assert paper.camel(name) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("convnext_tiny.fb_in1k", r"convnext\_tiny.fb\_in1k"),
        ("86.30 %", r"86.30 \%"),
        ("a & b #1 $x$ {y}", r"a \& b \#1 \$x\$ \{y\}"),
        ("~^\\", r"\textasciitilde{}\textasciicircum{}\textbackslash{}"),
        ("12k -> 1k | x < y", r"12k -\textgreater{} 1k \textbar{} x \textless{} y"),
    ],
)
def test_tex_escape(text, expected):
    assert paper.tex_escape(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1e-3, "$10^{-3}$"), (5e-5, r"$5\times10^{-5}$"), (0.01, "0.01"), (0, "0"), (None, "n/a")],
)
def test_number(value, expected):
    assert paper.number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(3.694, "+3.69"), (-0.42, "$-$0.42"), (0, "+0.00")]
)
def test_signed(value, expected):
    assert paper.tex_signed(value) == expected


def test_write_macros(tmp_path):
    path = paper.write_macros({"BaselineRerunAcc": "97.50", "Tag": r"a\_b"}, tmp_path / "n.tex")
    lines = path.read_text().splitlines()
    assert lines[1:] == [r"\newcommand{\BaselineRerunAcc}{97.50}", r"\newcommand{\Tag}{a\_b}"]
    with pytest.raises(ValueError, match="Top5"):
        paper.write_macros({"Top5": "1"}, tmp_path / "bad.tex")
    assert not (tmp_path / "bad.tex").exists()


# --------------------------------------------------------------------------- numbers.tex


def test_make_paper_inputs_writes_the_macros(results, tmp_path):
    cfg, files = results
    numbers = tmp_path / "paper" / "numbers.tex"
    assert paper.make_paper_inputs(numbers, paper_config(cfg), **files) == numbers
    text = numbers.read_text()
    assert r"\newcommand{\BaselineRerunAcc}{97.50}" in text
    assert r"\newcommand{\ImprovedPublishedExact}{86.31}" in text
    assert r"\newcommand{\BaselineRerunMinutes}{1.50}" in text  # 3 epochs x 30 s
    assert r"\newcommand{\FidelityExactOps}{9}" in text  # from fidelity/input_pipeline.json
    assert r"\newcommand{\PublishedCommit}{1269e01}" in text  # config published.commit
    assert r"\newcommand{\SeedCount}{2}" in text  # config seeds
    assert [p.name for p in numbers.parent.iterdir()] == ["numbers.tex"]  # no temporary file


@pytest.mark.parametrize("same_images", [True, False])
def test_the_difference_interval_pairs_runs_that_scored_the_same_images(
    results, tmp_path, same_images
):
    """One interval for the gap, in the text as in the verification table: paired image by
    image (rows matched on image_id) where both runs scored the same images. Fagerland et al.'s
    Cavo example: both right 59, improved only 6, baseline only 16, neither 80: -11.86 to -0.46."""
    cfg, files = results
    improved = [True] * 59 + [True] * 6 + [False] * 16 + [False] * 80
    baseline = [True] * 59 + [False] * 6 + [True] * 16 + [False] * 80
    ids = [f"{k:016x}" for k in range(161)]
    other = ids if same_images else [f"{k + 1000:016x}" for k in range(161)]
    files["predictions"] = [
        _predictions(tmp_path / "b.csv", ids, baseline),
        _predictions(tmp_path / "i.csv", other[::-1], improved[::-1]),  # another row order
    ]
    text = paper.make_paper_inputs(tmp_path / "n.tex", paper_config(cfg), **files).read_text()
    if same_images:
        assert r"\newcommand{\RerunDifferenceLow}{$-$11.86}" in text
        assert r"\newcommand{\RerunDifferenceHigh}{$-$0.46}" in text
        assert "paired proportions (the same images)" in text
    else:
        assert "two independent proportions" in text


@pytest.mark.parametrize(
    "key", ["summaries", "metrics", "provenance", "predictions", "data", "fidelity", "published"]
)
def test_missing_input_is_named_in_one_line(results, tmp_path, key):
    cfg, files = results
    missing = files[key][-1] if isinstance(files[key], list) else files[key]
    missing.unlink()
    numbers = tmp_path / "numbers.tex"
    with pytest.raises(paper.MissingInputError) as error:
        paper.make_paper_inputs(numbers, paper_config(cfg), **files)
    assert str(missing) in str(error.value)
    assert "\n" not in str(error.value)
    assert not numbers.exists()


def test_published_summary_not_needed_when_unused(results, tmp_path):
    cfg, files = results
    files.pop("published").unlink()
    numbers = paper.make_paper_inputs(tmp_path / "numbers.tex", paper_config(cfg), **files)
    assert r"\newcommand{\ImprovedPublishedExact}{n/a}" in numbers.read_text()


def test_one_result_file_per_experiment(results, tmp_path):
    cfg, files = results
    with pytest.raises(ValueError, match="1 summary files for the 2 experiments"):
        paper.make_paper_inputs(
            tmp_path / "numbers.tex",
            paper_config(cfg),
            **{**files, "summaries": files["summaries"][:1]},
        )


# --------------------------------------------------------------------------- the TeX source


def test_paper_types_no_number():
    """Numbers in the paper's text come from macros; digits only in names and layout."""
    text = (PAPER_DIR / "paper.tex").read_text(encoding="utf-8")
    body = text.split(r"\begin{document}", 1)[1]
    body = re.sub(r"(?<!\\)%.*", "", body)  # comments
    allowed = [
        r"ImageNet-1(2)?k",  # dataset names
        r"SHA-?256(SUMS)?",  # the checksum's name and its file
        r"top-5",  # the metric's name
        r"\{0\.\d+(,0\.\d+)*\}",  # figure heights and table column widths (fractions)
        r"0\.\d+\\linewidth",  # layout widths
    ]
    for pattern in allowed:
        body = re.sub(pattern, "", body)
    assert re.findall(r".{0,30}\d.{0,30}", body) == []


def test_paper_uses_only_defined_macros(results, tmp_path):
    cfg, _ = results
    out = tmp_path / "results"
    paths = paper.input_macros(out, out / "paper" / "numbers.tex", included(out))
    text = (PAPER_DIR / "paper.tex").read_text(encoding="utf-8")
    used = set(re.findall(r"\\([A-Z][A-Za-z]+)", text)) - {"FloatBarrier"}  # from placeins
    assert used <= set(all_macros(cfg)) | set(paths)
    assert {name for name in paths if name in text} == set(paths)  # it includes every file


def test_paper_names_no_result_path():
    """paper.tex includes every generated file through the macros rule make_paper_inputs
    writes (inputs.tex): the rules are the one place a result's path is written."""
    text = (PAPER_DIR / "paper.tex").read_text(encoding="utf-8")
    code = re.sub(r"(?<!\\)%.*", "", text)  # comments
    for path in ("tables/", "figures/", "paper/numbers", "paper/inputs", "improved/"):
        assert path not in code


# --------------------------------------------------------------------------- inputs.tex


def test_input_macros_name_each_file_by_its_path_under_the_output_folder(results, tmp_path):
    cfg, _ = results
    out = tmp_path / "results"
    values = paper.input_macros(out, out / "paper" / "numbers.tex", included(out))
    assert values == {
        "PaperNumbers": "paper/numbers.tex",
        "AblationTable": "tables/ablation.tex",
        "ClassesBaselineTable": "tables/classes_baseline.tex",
        "ClassesImprovedTable": "tables/classes_improved.tex",
        "ComputeTable": "tables/compute.tex",
        "DiscrepanciesTable": "tables/discrepancies.tex",
        "InputFidelityTable": "tables/input_fidelity.tex",
        "RecipeTable": "tables/recipe.tex",
        "ResultsTable": "tables/results.tex",
        "VariantsTable": "tables/variants.tex",
        "VerificationTable": "tables/verification.tex",
        "DifferenceTable": "study/difference.tex",  # generated text, read by \input
        "AblationEffectsFigure": "figures/ablation_effects.pdf",
        # the experiment's folder is not in the name: paper.tex does not choose the run
        "ClassGridFigure": "figures/improved/class_grid.pdf",
        "CorrectWrongFigure": "figures/improved/correct_wrong.pdf",
        "LearningCurvesFigure": "figures/learning_curves.pdf",
        "PerClassAccuracyFigure": "figures/per_class_accuracy.pdf",
    }
    assert not set(values) & set(all_macros(cfg))  # no clash with the numbers' macros


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["figures/a/grid.pdf", "figures/b/grid.pdf"], r"both be the paper's \\GridFigure"),
        (["figures/curves.png"], "only .tex, .pdf files"),
        (["tables/my results.tex"], "letters, digits"),
        (["tables/100%.tex"], "letters, digits"),
    ],
)
def test_input_macros_refuse_what_tex_cannot_name(tmp_path, files, message):
    with pytest.raises(ValueError, match=message):
        paper.input_macros(tmp_path, tmp_path / "numbers.tex", [tmp_path / f for f in files])


def test_write_paper_inputs(results, tmp_path):
    out = tmp_path / "results"
    inputs = out / "paper" / "inputs.tex"
    numbers = out / "paper" / "numbers.tex"
    assert paper.write_paper_inputs(inputs, out, numbers=numbers, included=included(out)) == inputs
    lines = inputs.read_text().splitlines()
    assert r"\newcommand{\PaperNumbers}{paper/numbers.tex}" in lines
    assert r"\newcommand{\ResultsTable}{tables/results.tex}" in lines
    assert r"\newcommand{\ClassGridFigure}{figures/improved/class_grid.pdf}" in lines


# --------------------------------------------------------------------------- build (the rules)

OUT = "results/demo"  # config/smoke.yaml's output_dir, relative to the workflow
WORKFLOW_FILES = ("Snakefile", "rules", "config", "paper")


def paper_workflow(
    workdir: Path, *, use_predictions: bool = True, out: str = OUT, home: Path | None = None
) -> Path:
    """A copy of the workflow whose output folder `out` (with `~`: under `home`) holds
    stand-ins for everything the paper's rules read; config/test.yaml sets
    published.use_predictions and the output folder."""
    for name in WORKFLOW_FILES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, workdir / name)
    flag = "true" if use_predictions else "false"
    test = {"published": {"use_predictions": use_predictions}, "output_dir": out}
    (workdir / "config" / "test.yaml").write_text(yaml.safe_dump(test))
    assert f"use_predictions: {flag}" in (workdir / "config" / "test.yaml").read_text()
    folder = home / out.removeprefix("~/") if out.startswith("~/") else workdir / out
    write_results(folder, config())
    return workdir


def snakemake(
    workdir: Path, *args: str, out: str = OUT, home: Path | None = None
) -> subprocess.CompletedProcess:
    """Make the PDF with only the paper's two rules: every other rule's output is a stand-in."""
    target = str(home / out.removeprefix("~/")) if out.startswith("~/") else out
    command = [
        *(sys.executable, "-m", "snakemake", f"{target}/paper.pdf", "--cores", "1"),
        *("--configfile", "config/smoke.yaml", "config/test.yaml"),
        *("--allowed-rules", "make_paper_inputs", "build_paper", *args),
    ]
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path}  # the rules' scripts run the project's python
    env |= {"HOME": str(home)} if home else {}
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env)


@needs_latexmk
def test_any_output_folder_a_user_may_type_builds_the_paper(tmp_path):
    """Spaces, quotes, `$(...)` and a leading `~`: every value reaches the shell quoted, and
    latexmk, which quotes paths its own way, sees only plain relative ones."""
    home, out = tmp_path / "home", "~/my paper $(touch PWNED) 'x' ;y"
    (tmp_path / "workflow").mkdir()
    workdir = paper_workflow(tmp_path / "workflow", out=out, home=home)
    built(snakemake(workdir, out=out, home=home))
    folder = home / out.removeprefix("~/")
    assert (folder / "paper.pdf").read_bytes().startswith(b"%PDF")
    assert not list(tmp_path.rglob("PWNED")) and not (workdir / "~").exists()
    assert "$(touch PWNED)" in str(folder)  # the folder is named as typed


def built(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="module")
def paper_build(tmp_path_factory) -> Path:
    """The workflow copy after its rules built the PDF (reading the published predictions)."""
    workdir = paper_workflow(tmp_path_factory.mktemp("workflow"))
    built(snakemake(workdir))
    return workdir


def pdf_text(pdf: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    command = ["pdftotext", "-layout", str(pdf), "-"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@needs_latexmk
def test_build_paper_pdf_holds_generated_numbers(paper_build):
    workdir = paper_build
    pdf = workdir / OUT / "paper.pdf"
    text = pdf_text(pdf)
    for number in ("97.50", "93.75", "82.61", "86.30", "86.31", "86.3019", "8,631", "+3.69"):
        assert number in text
    assert "synthetic images (smoke config)" in text
    prose = " ".join(text.split())
    assert "with the seeds 0, 1 (2 runs each" in prose  # \Seeds, \SeedCount
    assert "Linear head, against Improved, on 1 seed" in prose  # study/difference.tex
    # what this build did, not the paper config's: its own config, its resize, its precision;
    # no rerun-minus-claim on synthetic data
    assert "upscales" not in prose and "resizes every image to 32×32 and fine-tunes" in prose
    assert "mixed precision (this build ran it in fp32)" in prose  # fp16 falls back on a CPU
    assert "Recipe of each run as this build ran it (results/demo/config.yaml)" in prose
    assert "rerun minus claim" not in prose
    assert "paired proportions (the same images)" in prose
    assert "n/a" not in text
    assert "??" not in text  # no unresolved reference
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    assert "[none]" not in fonts  # no unnamed bitmap (PK) font: every TeX font is Type 1
    # everything the build writes is under the output folder: the demo's and the paper run's
    # PDFs never share working files, and paper/ holds only the source
    assert (workdir / OUT / "paper" / "build" / "paper.log").is_file()
    assert [p.name for p in (workdir / "paper").iterdir()] == ["paper.tex"]


@needs_latexmk
def test_build_paper_declares_every_file_tex_reads(paper_build):
    """TeX's own record of the files it read (latexmk -recorder): each one under the output
    folder is an input of build_paper, so a changed table or figure rebuilds the PDF."""
    workdir = paper_build
    summary = built(snakemake(workdir, "--detailed-summary")).stdout
    header, *rows = [line.split("\t") for line in summary.splitlines() if "\t" in line]
    row = next(row for row in rows if row[0] == f"{OUT}/paper.pdf")
    declared = set(row[header.index("input-file(s)")].split(","))
    fls = (workdir / OUT / "paper" / "build" / "paper.fls").read_text().splitlines()
    working = f"{OUT}/paper/build/"  # where latexmk runs: its .aux, .out and paper.tex's copy
    read = {
        os.path.normpath(Path(working) / line.removeprefix("INPUT "))
        for line in fls
        if line.startswith("INPUT")
    }
    results = {path for path in read if path.startswith(f"{OUT}/") and not path.startswith(working)}
    # inputs.tex, numbers.tex, 10 tables, the difference section, 5 figures
    assert len(results) == 18
    assert results == declared - {"paper/paper.tex"}


@needs_latexmk
def test_rule_names_the_included_files(paper_build):
    """inputs.tex holds the paths of the rule's inputs, the sample figures of the run it chose
    (the last experiment) under names that leave the run out."""
    lines = (paper_build / OUT / "paper" / "inputs.tex").read_text().splitlines()
    assert r"\newcommand{\CorrectWrongFigure}{figures/improved/correct_wrong.pdf}" in lines
    assert r"\newcommand{\VerificationTable}{tables/verification.tex}" in lines
    for study in (
        r"\newcommand{\AblationTable}{tables/ablation.tex}",
        r"\newcommand{\DifferenceTable}{study/difference.tex}",
        r"\newcommand{\ComputeTable}{tables/compute.tex}",
        r"\newcommand{\AblationEffectsFigure}{figures/ablation_effects.pdf}",
    ):
        assert study in lines
    # the header, numbers.tex, 10 tables, the difference section, 5 figures
    assert len(lines) == 1 + 17


@needs_latexmk
def test_changed_citation_in_config_rewrites_the_numbers(tmp_path):
    """published.commit is cited in the text: a new one reruns the macros and the PDF."""
    workdir = paper_workflow(tmp_path)
    built(snakemake(workdir))
    assert "Nothing to be done" in built(snakemake(workdir, "--dry-run")).stdout
    with (workdir / "config" / "test.yaml").open("a") as config_file:
        config_file.write("  commit: abcdef0123456789abcdef0123456789abcdef01\n")
    planned = built(snakemake(workdir, "--dry-run")).stdout
    assert "make_paper_inputs" in planned and "build_paper" in planned


@needs_latexmk
def test_build_paper_without_published_predictions(tmp_path):
    workdir = paper_workflow(tmp_path, use_predictions=False)
    built(snakemake(workdir))
    text = pdf_text(workdir / OUT / "paper.pdf")
    for number in ("97.50", "82.61", "86.30"):
        assert number in text
    prose = " ".join(text.split())
    assert "did not read the published predictions" in prose
    assert "exact accuracies are not reported in this build" in prose


@needs_latexmk
def test_build_paper_prints_the_latex_error(tmp_path):
    workdir = paper_workflow(tmp_path)
    source = workdir / "paper" / "paper.tex"
    source.write_text(source.read_text().replace(r"\maketitle", r"\maketitle\NoSuchMacro"))
    result = snakemake(workdir)
    assert result.returncode != 0
    assert "! Undefined control sequence." in result.stderr
    assert r"\NoSuchMacro" in result.stderr  # the line TeX stopped on
    assert not (workdir / OUT / "paper.pdf").exists()
