"""Tables: the cells and columns the writers put in Markdown and LaTeX, values read from config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from convnext_tinyimagenet.config import experiment_seeds, experiments_to_run
from convnext_tinyimagenet.report import tables
from convnext_tinyimagenet.run_folder import ResultFileError

from .conftest import smoke_config

# 156 / 160 correct, as evaluation.summarize_predictions writes it (Wilson 95 % interval in %).
BASELINE_SUMMARY = {
    "experiment": "baseline",
    "n": 160,
    "correct": 156,
    "accuracy": 97.5,
    "accuracy_batch_mean": 97.5,
    "wilson95": [93.74901071333326, 99.02360074537376],
    "per_class": {"s000": 100.0, "s001": 93.75, "s002": 87.5},
    "epochs": 3,
    "best_epoch": 3,
}
IMPROVED_SUMMARY = BASELINE_SUMMARY | {
    "experiment": "improved",
    "correct": 150,
    "accuracy": 93.75,
    "wilson95": [88.87839668, 96.56830212],
    "epochs": 12,
    "best_epoch": 7,
}
PUBLISHED = {
    "baseline": {"accuracy": 82.61, "accuracy_batch_mean": 82.61, "n": 10000, "claim": 82.61},
    "improved": {"accuracy": 86.31, "accuracy_batch_mean": 86.3019, "n": 10000, "claim": 86.30},
}


def make_cfg(tmp_path: Path, *overrides: str) -> dict:
    return smoke_config(tmp_path / "cache", *overrides)


@pytest.fixture
def cfg(tmp_path: Path) -> dict:
    return make_cfg(tmp_path)


def write_summaries(out: Path) -> dict[str, Path]:
    """Each run's summary.json under `out/<run>/`; run -> its path, as the rule pairs them."""
    written = {}
    for name, summary in (("baseline", BASELINE_SUMMARY), ("improved", IMPROVED_SUMMARY)):
        written[name] = out / name / "summary.json"
        written[name].parent.mkdir(parents=True, exist_ok=True)
        written[name].write_text(json.dumps(summary))
    return written


def claims(cfg: dict) -> dict[str, float]:
    return {run: spec["claim"] for run, spec in cfg["published"]["runs"].items()}


def titles(cfg: dict) -> dict[str, str]:
    return {name: exp["title"] for name, exp in cfg["experiments"].items()}


def results_table(cfg: dict, summaries: dict[str, Path], published: Path | None, out: Path):
    """make_results_table as its rule calls it, writing out/results.{md,tex}."""
    return tables.make_results_table(
        summaries,
        published,
        out / "results.md",
        out / "results.tex",
        claims=claims(cfg),
        titles=titles(cfg),
        seeds={"baseline": 0, "improved": 2},  # each experiment's first seed, as the rule
    )


# --------------------------------------------------------------------------- writers


def markdown_rows(text: str) -> list[list[str]]:
    """The cells of a pipe table, header first; a cell's escaped pipe reads as a pipe."""
    lines = [line for line in text.splitlines() if line.strip()]
    rows = [
        [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in lines
    ]
    assert all(set(cell) <= set(":-") for cell in rows[1])  # the alignment rule
    return [rows[0], *rows[2:]]


def markdown_align(text: str) -> str:
    """The alignment rule of a pipe table as a column spec: l, c or r per column."""
    rule = text.splitlines()[1].strip("|").split("|")
    return "".join(
        "c" if r.startswith(":") and r.endswith(":") else "r" if r.endswith(":") else "l"
        for r in rule
    )


def latex_rows(text: str) -> tuple[str, list[list[str]]]:
    """The column spec and the cells of a booktabs tabular (header first), rules checked."""
    spec = re.match(r"\\begin\{tabular\}\{(.*)\}\n", text)
    lines = text.splitlines()
    rules = [line for line in lines if line in (r"\toprule", r"\midrule", r"\bottomrule")]
    assert (
        spec
        and rules == [r"\toprule", r"\midrule", r"\bottomrule"]
        and lines[-1] == r"\end{tabular}"
    )
    rows = [line.removesuffix(r"\\").rstrip() for line in lines if line.endswith(r"\\")]
    return spec.group(1), [[c.strip() for c in re.split(r"(?<!\\)&", row)] for row in rows]


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("convnext_tiny.fb_in1k", r"convnext\_tiny.fb\_in1k"),
        ("86.30 %", r"86.30 \%"),
        ("R&D", r"R\&D"),
        ("$5 #1 {x}", r"\$5 \#1 \{x\}"),
        ("a~b^c", r"a\textasciitilde{}b\textasciicircum{}c"),
        ("C:\\dir_1", r"C:\textbackslash{}dir\_1"),  # the backslash is not escaped twice
        ("12k -> 1k | <", r"12k -\textgreater{} 1k \textbar{} \textless{}"),  # OT1 glyphs
        ("plain text, 0.5", "plain text, 0.5"),
    ],
)
def test_latex_escape(text: str, escaped: str) -> None:
    assert tables.latex_escape(text) == escaped


def test_latex_is_a_bare_booktabs_tabular_of_escaped_cells() -> None:
    frame = pd.DataFrame({"Name_x": ["a_b", "[c]"], "Share (%)": ["50 %", "12k -> 1k"]})
    spec, rows = latex_rows(tables.latex(frame))
    assert spec == "ll"
    assert rows == [
        [r"Name\_x", r"Share (\%)"],
        [r"a\_b", r"50 \%"],
        ["{}[c]", r"12k -\textgreater{} 1k"],  # a leading [ is not the previous \\'s argument
    ]


def test_latex_paragraph_columns_are_ragged_right() -> None:
    frame = pd.DataFrame({"Topic": ["AMP"], "Text": ["long text"], "Width": ["3"]})
    spec, rows = latex_rows(tables.latex(frame, align="lp{3cm}r"))
    assert spec == r"l>{\raggedright\arraybackslash}p{3cm}r"
    assert rows[1] == ["AMP", "long text", "3"]


def test_markdown_cells_and_alignment() -> None:
    frame = pd.DataFrame({"Run": ["a|b", "c"], "Accuracy": [97.5, 93.75], "Note": [None, "86.30"]})
    text = tables.markdown(frame)
    assert markdown_rows(text) == [
        ["Run", "Accuracy", "Note"],
        ["a|b", "97.5", ""],  # the pipe escaped, None empty
        ["c", "93.75", "86.30"],  # text stays text: no number reformatting
    ]
    assert markdown_align(text) == "lrl"  # numbers right by default
    assert markdown_align(tables.markdown(frame, "cp{1cm}r")) == "clr"  # p{..} reads left


def test_save_table_writes_exactly_the_given_files(tmp_path: Path) -> None:
    frame = pd.DataFrame({"Topic": ["x"], "Text": ["long"]})
    md, tex = tmp_path / "a" / "one.md", tmp_path / "b" / "two.tex"
    assert tables.save_table(frame, md, tex, align="lp{3cm}") == [md, tex]
    assert md.read_text() == tables.markdown(frame, "lp{3cm}")
    assert tex.read_text() == tables.latex(frame, "lp{3cm}")
    assert [p.name for p in md.parent.iterdir()] == ["one.md"]
    assert [p.name for p in tex.parent.iterdir()] == ["two.tex"]


@pytest.mark.parametrize("align", ["l", "lrr", "lx", "l{r}"])
def test_save_table_rejects_bad_align(tmp_path: Path, align: str) -> None:
    frame = pd.DataFrame({"a": ["1"], "b": ["2"]})
    with pytest.raises(ValueError, match="column spec"):
        tables.save_table(frame, tmp_path / "t.md", tmp_path / "t.tex", align=align)
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- results


def test_results_frame_without_published_summary(cfg: dict) -> None:
    frame = tables.results_frame(
        {"baseline": BASELINE_SUMMARY, "improved": IMPROVED_SUMMARY}, None, claims(cfg), titles(cfg)
    )
    assert frame.iloc[0].tolist() == [
        cfg["experiments"]["baseline"]["title"],
        "n/a",  # no seed given
        "82.61",
        "n/a",
        "97.50 [93.75, 99.02]",
        "160",
        "3",
        "3",
    ]
    assert frame.iloc[1].tolist()[2:] == ["86.30", "n/a", "93.75 [88.88, 96.57]", "160", "12", "7"]


def test_results_frame_without_claim_or_title_reads_na_and_name() -> None:
    frame = tables.results_frame({"improved": IMPROVED_SUMMARY}, None, {"baseline": 82.61}, {})
    assert frame.iloc[0].tolist()[:3] == ["improved", "n/a", "n/a"]


def test_results_frame_with_published_summary(cfg: dict) -> None:
    frame = tables.results_frame({"improved": IMPROVED_SUMMARY}, PUBLISHED, claims(cfg), {})
    assert frame["Published CSV (%): exact (batch mean)"].tolist() == ["86.31 (86.30)"]
    # A run the published summary lacks reads n/a.
    frame = tables.results_frame({"improved": IMPROVED_SUMMARY}, {"baseline": {}}, {}, {})
    assert frame["Published CSV (%): exact (batch mean)"].tolist() == ["n/a"]


def test_make_results_table_no_published_summary(cfg: dict, tmp_path: Path) -> None:
    summaries = write_summaries(tmp_path / "runs")
    md, tex = results_table(cfg, summaries, None, tmp_path / "tables")
    assert (md, tex) == (tmp_path / "tables" / "results.md", tmp_path / "tables" / "results.tex")
    title = cfg["experiments"]["baseline"]["title"]
    row = [title, "0", "82.61", "n/a", "97.50 [93.75, 99.02]", "160", "3", "3"]
    assert markdown_rows(md.read_text())[1] == row
    assert markdown_rows(md.read_text())[2][1] == "2"  # the improved run shown is seed 2's
    spec, rows = latex_rows(tex.read_text())
    assert spec == r">{\raggedright\arraybackslash}p{0.25\linewidth}rrrrrrr"  # titles wrap
    assert rows[0][4] == r"Rerun (\%) [Wilson 95 \%]"
    assert rows[1] == [tables.latex_escape(title), *row[1:]]


def test_make_results_table_reads_published_summary(cfg: dict, tmp_path: Path) -> None:
    summaries = write_summaries(tmp_path / "runs")
    published = tmp_path / "published" / "summary.json"
    with pytest.raises(ResultFileError) as info:
        results_table(cfg, summaries, published, tmp_path / "tables")
    assert str(published) in str(info.value)
    assert "snakemake summarize_published" in str(info.value)
    assert not (tmp_path / "tables").exists()

    published.parent.mkdir(parents=True)
    published.write_text(json.dumps(PUBLISHED))
    md, _ = results_table(cfg, summaries, published, tmp_path / "tables")
    rows = markdown_rows(md.read_text())
    assert rows[1][2:5] == ["82.61", "82.61 (82.61)", "97.50 [93.75, 99.02]"]
    assert rows[2][2:5] == ["86.30", "86.31 (86.30)", "93.75 [88.88, 96.57]"]


def test_make_results_table_missing_summary_names_file(cfg: dict, tmp_path: Path) -> None:
    summaries = write_summaries(tmp_path / "runs")
    summaries["improved"].unlink()
    with pytest.raises(ResultFileError, match="run_experiment") as info:
        results_table(cfg, summaries, None, tmp_path / "tables")
    assert str(summaries["improved"]) in str(info.value)


# --------------------------------------------------------------------------- classes

# Insertion order is not alphabetical, so only an explicit tie-break by name sorts the ties.
TIED = {
    "l": 90.0,
    "j": 0.0,
    "g": 100.0,
    "e": 50.0,
    "c": 100.0,
    "a": 50.0,
    "k": 80.0,
    "i": 50.0,
    "b": 100.0,
    "h": 25.0,
    "f": 75.0,
    "d": 0.0,
}


def test_class_frame_orders_by_accuracy_then_name() -> None:
    frame = tables.class_frame({"per_class": TIED}, k=3)
    assert frame.values.tolist() == [
        ["top", "1", "b", "100.00"],
        ["top", "2", "c", "100.00"],
        ["top", "3", "g", "100.00"],
        ["bottom", "10", "h", "25.00"],
        ["bottom", "11", "d", "0.00"],
        ["bottom", "12", "j", "0.00"],
    ]


def test_class_frame_top_and_bottom_five_do_not_overlap() -> None:
    per_class = {name: TIED[name] for name in "abcdef"}
    frame = tables.class_frame({"per_class": per_class})
    assert frame["Rank"].tolist() == ["1", "2", "3", "4", "5", "6"]
    assert frame["Class"].tolist() == ["b", "c", "f", "a", "e", "d"]
    assert frame["Group"].tolist() == ["top"] * 5 + ["bottom"]


def test_a_class_as_good_as_the_best_is_never_one_of_the_worst() -> None:
    """The demo's notebooks listed "bottom-5" classes at 100 %: ties with the best stay out."""
    per_class = {name: 100.0 for name in "abcdefgh"} | {"x": 90.0}
    frame = tables.class_frame({"per_class": per_class})
    assert frame.values.tolist()[-1] == ["bottom", "9", "x", "90.00"]
    assert frame["Group"].tolist() == ["top"] * 5 + ["bottom"]
    assert (
        tables.class_frame({"per_class": dict.fromkeys("abcdefgh", 100.0)})["Group"].tolist()
        == ["top"] * 5
    )


def test_make_class_table(tmp_path: Path) -> None:
    summary = write_summaries(tmp_path / "runs")["baseline"]
    md, tex = tables.make_class_table(summary, tmp_path / "c.md", tmp_path / "c.tex")
    assert (md, tex) == (tmp_path / "c.md", tmp_path / "c.tex")
    assert markdown_rows(md.read_text())[1:] == [
        ["top", "1", "s000", "100.00"],
        ["top", "2", "s001", "93.75"],
        ["top", "3", "s002", "87.50"],
    ]
    assert markdown_align(md.read_text()) == "lrlr"
    spec, rows = latex_rows(tex.read_text())
    assert (spec, rows[1]) == ("lrlr", ["top", "1", "s000", "100.00"])


# --------------------------------------------------------------------------- recipe


RECIPE_KEYS = ("from", "data", "model", "trainable", "augment", "train")


def recipe_sections(cfg: dict) -> dict[str, dict]:
    """What rule make_recipe_table passes: each running experiment's recipe and parent."""
    return {
        name: {
            key: cfg["experiments"][name][key]
            for key in RECIPE_KEYS
            if key in cfg["experiments"][name]
        }
        for name in experiments_to_run(cfg["experiments"])
    }


def recipe_frame(cfg: dict) -> pd.DataFrame:
    """The recipe of `cfg`, from the sections its rule passes."""
    return tables.recipe_frame(recipe_sections(cfg), cfg["data"], cfg["normalize"], seeds_of(cfg))


def seeds_of(cfg: dict) -> dict[str, list[int]]:
    """What rule make_recipe_table passes: each running experiment's seeds."""
    return {name: experiment_seeds(cfg, name) for name in experiments_to_run(cfg["experiments"])}


def recipe(cfg: dict) -> dict[str, dict[str, str]]:
    """Setting -> experiment -> cell."""
    return recipe_frame(cfg).set_index("Setting").to_dict(orient="index")


def _published_runs(row: dict[str, str]) -> dict[str, str]:
    return {name: row[name] for name in ("baseline", "improved")}


def test_recipe_values_come_from_config(cfg: dict) -> None:
    table = {setting: _published_runs(row) for setting, row in recipe(cfg).items()}
    assert table["Variant of"] == {"baseline": "none", "improved": "none"}
    assert table["Pretrained weights (timm tag)"] == {
        "baseline": "convnext_tiny.in12k_ft_in1k",
        "improved": "convnext_tiny.fb_in1k",
    }
    assert table["AdamW lr / weight decay: stages.3"] == {
        "baseline": "frozen",
        "improved": "5e-05 / 0.0001 (backbone.stages.3)",
    }
    for name in ("baseline", "improved"):
        exp = cfg["experiments"][name]
        for group in exp["trainable"]:
            cell = table[f"AdamW lr / weight decay: {group['name']}"][name]
            assert cell.startswith(f"{group['lr']} / {group['weight_decay']} (")
        train = exp["train"]
        assert table["Label smoothing"][name] == str(train["label_smoothing"])
        assert table["Precision"][name] == train["precision"]
        monitor = train["early_stopping"]["monitor"]
        assert table["Early stopping: monitor"][name] == f"{monitor} on the validation images"
        assert table["Early stopping: patience"][name] == str(train["early_stopping"]["patience"])
    assert table["Head"] == {"baseline": "linear", "improved": "token_attention"}
    assert table["Attention dropout"] == {"baseline": "n/a", "improved": "0.2"}
    assert table["LR scheduler (per epoch)"] == {
        "baseline": "none",
        "improved": "cosine (t_max=50, eta_min=0.0)",
    }
    assert table["RandAugment"]["improved"] == "num_ops=2, magnitude=9"
    assert table["RandomErasing"] == {"baseline": "none", "improved": "p=0.15"}
    assert table["Augmented at"] == {"baseline": "n/a", "improved": "input size (as published)"}


def test_recipe_has_a_column_per_running_experiment_with_its_resolved_settings(cfg: dict) -> None:
    """The demo runs two of the variants; each column differs from its parent's in the rows of
    what the variant changes, and in those only."""
    frame = recipe_frame(cfg)
    running = ["baseline", "improved", "improved_linear", "improved_noaug", "improved_holdout"]
    assert frame.columns.tolist() == ["Setting", *running]
    table = frame.set_index("Setting")
    assert table.loc["Variant of"].tolist() == ["none", "none", *["improved"] * 3]
    changed = {
        "improved_linear": {
            "Variant of": "improved",
            "Head": "linear",
            "Attention dropout": "n/a",
            "Output dropout": "n/a",
            "AdamW lr / weight decay: attention": "frozen",
        },
        "improved_noaug": {
            "Variant of": "improved",
            "RandAugment": "none",
            "RandomErasing": "none",
            "Augmented at": "n/a",
        },
        "improved_holdout": {
            "Variant of": "improved",
            "Early stopping: monitor": "val_acc_batch_mean on 8 held-out training images per class",
        },
    }
    for name, expected in changed.items():
        differs = table[name] != table["improved"]
        assert table.loc[differs, name].to_dict() == expected


def test_recipe_follows_config_changes(tmp_path: Path) -> None:
    cfg = make_cfg(
        tmp_path,
        "experiments.improved.train.label_smoothing=0.1",
        "experiments.baseline.train.early_stopping.max_epochs=null",
        "data.source=hf",
        "experiments.improved.augment.at=source",
        "seeds=[7]",
    )
    table = recipe(cfg)
    # the seeds of each: the demo's ablations run seed 0 only, their own list
    assert table["Seeds"] == {
        "baseline": "7", "improved": "7", "improved_linear": "0", "improved_noaug": "0",
        "improved_holdout": "0",
    }  # fmt: skip
    assert table["Augmented at"]["improved"] == "source size (option)"
    assert table["Label smoothing"]["improved"] == "0.1"
    assert table["Label smoothing"]["improved_noaug"] == "0.1"  # a variant follows its parent
    assert table["Early stopping: max epochs"]["baseline"] == "none"
    assert table["Data source"]["baseline"] == "hf: zh-plus/tiny-imagenet@main"


def parents_of(cfg: dict) -> dict[str, dict]:
    """What rule make_recipe_table passes: the recipe each running variant varies."""
    sections = recipe_sections(cfg)
    names = {section["from"] for section in sections.values() if section.get("from")}
    return {
        name: {
            key: cfg["experiments"][name][key]
            for key in RECIPE_KEYS
            if key in cfg["experiments"][name]
        }
        for name in names
    }


def make_recipe_tables(cfg: dict, folder: Path) -> list[Path]:
    return tables.make_recipe_table(
        folder / "recipe.md",
        folder / "recipe.tex",
        folder / "variants.md",
        folder / "variants.tex",
        experiments=recipe_sections(cfg),
        parents=parents_of(cfg),
        data=cfg["data"],
        normalize=cfg["normalize"],
        seeds=seeds_of(cfg),
    )


def test_make_recipe_table_shows_the_recipes_that_are_no_variant_and_escapes_tags(
    cfg: dict, tmp_path: Path
) -> None:
    md, tex, variants_md, variants_tex = make_recipe_tables(cfg, tmp_path)
    assert (md, tex) == (tmp_path / "recipe.md", tmp_path / "recipe.tex")
    tag = ["Pretrained weights (timm tag)", "convnext_tiny.in12k_ft_in1k", "convnext_tiny.fb_in1k"]
    assert tag in markdown_rows(md.read_text())
    spec, rows = latex_rows(tex.read_text())
    assert spec == "lll"  # the setting, the baseline, the improved recipe: legible in the paper
    assert rows[0] == ["Setting", "baseline", "improved"]
    assert [tables.latex_escape(cell) for cell in tag] == rows[1]  # no "Variant of" row
    assert (variants_md, variants_tex) == (tmp_path / "variants.md", tmp_path / "variants.tex")


def test_the_variants_table_holds_each_variants_changes_to_its_recipe(
    cfg: dict, tmp_path: Path
) -> None:
    """The demo's three variants against improved, which they vary: only what they change, with
    the parent's value and their own (the same seeds here: no "Seeds" row)."""
    *_, variants_md, variants_tex = make_recipe_tables(cfg, tmp_path)
    rows = markdown_rows(variants_md.read_text())
    assert rows[0] == ["Variant", "Variant of", "Setting", "Recipe's value", "Variant's value"]
    assert rows[1:] == [
        ["improved_linear", "improved", "Head", "token_attention", "linear"],
        ["improved_linear", "improved", "Attention dropout", "0.2", "n/a"],
        ["improved_linear", "improved", "Output dropout", "0.2", "n/a"],
        ["improved_linear", "improved", "AdamW lr / weight decay: attention",
         "0.0001 / 0.0005 (attention)", "frozen"],
        ["improved_noaug", "improved", "RandAugment", "num_ops=2, magnitude=9", "none"],
        ["improved_noaug", "improved", "RandomErasing", "p=0.15", "none"],
        ["improved_noaug", "improved", "Augmented at", "input size (as published)", "n/a"],
        ["improved_holdout", "improved", "Early stopping: monitor",
         "val_acc_batch_mean on the validation images",
         "val_acc_batch_mean on 8 held-out training images per class"],
    ]  # fmt: skip
    spec, tex_rows = latex_rows(variants_tex.read_text())
    assert spec == "lllll" and tex_rows[1][0] == r"improved\_linear"


def test_a_variant_of_a_recipe_that_does_not_run_is_read_against_it(tmp_path: Path) -> None:
    """A parent with seeds: [] is declared without running: its variants' changes are read
    against its section all the same, and its seeds read "not run". (A published recipe must
    run, so the config refuses this one at load; the table is built from the rule's params.)"""
    cfg = make_cfg(tmp_path)
    cfg["experiments"]["improved"]["seeds"] = []
    *_, variants_md, _ = make_recipe_tables(cfg, tmp_path)
    rows = markdown_rows(variants_md.read_text())
    assert ["improved_noaug", "improved", "RandomErasing", "p=0.15", "none"] in rows
    assert ["improved_noaug", "improved", "Seeds", "not run", "0"] in rows


def test_a_variant_that_changes_nothing_reads_one_row_saying_so(cfg: dict) -> None:
    same = {"from": "improved"} | recipe_sections(cfg)["improved"]
    experiments = {"improved": recipe_sections(cfg)["improved"], "improved_same": same}
    frame = tables.variants_frame(
        experiments,
        parents_of(cfg),
        cfg["data"],
        cfg["normalize"],
        {"improved": [0], "improved_same": [0]},
    )
    assert frame.values.tolist() == [["improved_same", "improved", "nothing", "n/a", "n/a"]]


# --------------------------------------------------------------------------- discrepancies


def test_discrepancies_table(cfg: dict, tmp_path: Path) -> None:
    frame = tables.discrepancies_frame(cfg["discrepancies"])
    assert len(frame) == len(cfg["discrepancies"])
    first = cfg["discrepancies"][0]
    assert frame.iloc[0].tolist() == [
        "D1",  # the verification table's "Affected by" names it so
        first["topic"],
        first["readme"],
        first["ran"],
        ", ".join(first["affects"]),
    ]
    md, tex = tables.make_discrepancies_table(
        tmp_path / "d.md", tmp_path / "d.tex", discrepancies=cfg["discrepancies"]
    )
    assert (md, tex) == (tmp_path / "d.md", tmp_path / "d.tex")
    assert markdown_rows(md.read_text())[1:] == frame.values.tolist()
    text = tex.read_text()
    spec, rows = latex_rows(text)
    assert spec.count(r">{\raggedright\arraybackslash}p{") == 4
    assert len(rows) == 1 + len(cfg["discrepancies"])
    assert any(r"86.31 \% (8,631 / 10,000)" in cell for row in rows for cell in row)
    assert "%" not in text.replace(r"\%", "")
