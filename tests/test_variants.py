"""Variants as data: an experiment declared as its parent (`from`) plus the keys it changes,
resolved by config.resolve_variants when the config is loaded (the CLI and the Snakefile)."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from convnext_tinyimagenet import notebook as nb
from convnext_tinyimagenet.config import (
    ConfigError,
    dump_config,
    experiments_to_run,
    finish_config,
    load_config,
    resolve_variants,
    run_identity,
    run_settings,
)

from .conftest import CONFIG, ROOT, SMOKE


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config()


_DELETE = object()


def _changed(section: dict, changes: dict[str, Any]) -> dict:
    """A copy of `section` with `changes` (dotted key -> value, or _DELETE) applied."""
    result = copy.deepcopy(section)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = result
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return result


# --------------------------------------------------------------------------- the paper's variants

# What each declared variant changes of its parent, typed here from the issue and
# ../shared/reference/published-recipe.md, independently of config/config.yaml.
VARIANTS = {
    "improved_in12k": ("improved", {"model.tag": "convnext_tiny.in12k_ft_in1k"}),
    "baseline_in1k": ("baseline", {"model.tag": "convnext_tiny.fb_in1k"}),
    "improved_linear": (
        "improved",
        {
            "model.head": "linear",
            "model.attention_dropout": _DELETE,
            "model.output_dropout": _DELETE,
            # the improved run's groups but the attention's, which goes with the block
            "trainable": [
                {
                    "name": "stages.3",
                    "modules": ["backbone.stages.3"],
                    "lr": 5e-5,
                    "weight_decay": 1e-4,
                },
                {"name": "head", "modules": ["head"], "lr": 3e-4, "weight_decay": 1e-4},
            ],
        },
    ),
    "improved_noaug": ("improved", {"augment.randaugment": None, "augment.random_erasing": None}),
    "improved_no_smoothing": ("improved", {"train.label_smoothing": 0.0}),
    "improved_spatial_attention": (
        "improved",
        {"model.head": "spatial_attention", "model.attention_heads": 8},
    ),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_each_variant_is_its_parent_with_only_its_changes(paper: dict, name: str) -> None:
    parent, changes = VARIANTS[name]
    section = paper["experiments"][name]
    assert section["from"] == parent
    assert section["title"] not in (paper["experiments"][parent]["title"], "")
    own = {"title": section["title"], "from": parent}
    inherited = _changed(paper["experiments"][parent], changes | {"title": _DELETE})
    assert section == own | inherited


def test_the_published_runs_are_no_variants(paper: dict) -> None:
    for name in ("baseline", "improved"):
        assert not {"from", "seeds"} & set(paper["experiments"][name])


def test_the_paper_runs_every_ablation_and_the_demo_six(paper: dict) -> None:
    # the selection-bias pair is declared without seeds (config/selection.yaml runs it)
    holdout = ["baseline_holdout", "improved_holdout"]
    running = [name for name in paper["experiments"] if name not in holdout]
    assert experiments_to_run(paper["experiments"]) == running
    assert len(running) == 10 and all(paper["experiments"][n]["seeds"] == [] for n in holdout)
    demo = load_config([SMOKE])["experiments"]
    assert experiments_to_run(demo) == [
        "baseline",
        "improved",
        "improved_linear",
        "improved_noaug",
        "improved_holdout",
    ]
    # the demo's two settings reach the variants through their parents
    for name in ("improved_linear", "improved_noaug", "baseline_in1k"):
        assert demo[name]["model"]["pretrained"] is False
        assert demo[name]["train"]["early_stopping"]["max_epochs"] == 3


def test_a_variant_has_the_identity_of_its_recipe_written_in_full(paper: dict) -> None:
    """Its title, parent and seeds count no more than the baseline's title does."""
    full = {k: v for k, v in paper["experiments"]["improved_noaug"].items() if k != "from"}
    one_seed = paper | {"seeds": [0]}  # an identity is a run's: one seed
    cfg = one_seed | {"experiments": paper["experiments"] | {"written_out": full}}
    assert run_identity(cfg, "written_out") == run_identity(one_seed, "improved_noaug")
    assert run_identity(one_seed, "improved_noaug") != run_identity(one_seed, "improved")
    assert run_identity(one_seed, "improved") != run_identity(paper | {"seeds": [1]}, "improved")


@pytest.mark.parametrize("name", ["improved_linear", "improved_noaug"])
def test_a_runs_saved_settings_load_back_to_the_same_section(
    tmp_path: Path, paper: dict, name: str
) -> None:
    """What a run folder's config.yaml holds (resolved, `from` kept) reads back unchanged."""
    path = tmp_path / "config.yaml"
    dump_config(run_settings(paper, name, 0), path)
    assert load_config([path])["experiments"][name] == paper["experiments"][name]


def test_the_notebook_says_what_a_variant_changes(paper: dict) -> None:
    reference = {"name": "improved", "settings": paper["experiments"]["improved"]}
    text = nb.introduction(run_settings(paper, "improved_linear", 0), "improved_linear", reference)
    changes = text.split("How it differs from `improved`:")[1].strip().splitlines()
    assert [line.split(":")[0] for line in changes] == ["- head", "- what trains"]
    table = nb.settings_table(run_settings(paper, "improved_linear", 0), "improved_linear")
    assert table["value"]["from"] == "improved"


# --------------------------------------------------------------------------- merge semantics

RECIPE = {
    "model": {"tag": "a.b", "head": "token_attention", "attention_dropout": 0.2},
    "trainable": [{"name": "head"}, {"name": "attention"}],
    "augment": {"randaugment": {"num_ops": 2, "magnitude": 9}, "at": "input"},
}


def test_mappings_merge_and_lists_and_values_replace() -> None:
    experiments = {
        "root": {"title": "Root", "seeds": [0], **RECIPE},
        "leaf": {"from": "mid", "title": "Leaf", "augment": {"at": "source"}},
        "mid": {"from": "root", "title": "Mid", "trainable": [{"name": "head"}]},
    }
    before = copy.deepcopy(experiments)
    resolved = resolve_variants(experiments)
    assert experiments == before  # nothing mutated
    assert resolved["root"] == experiments["root"]
    # declared before its parent, two steps from the root: the mid's list, the leaf's value
    assert resolved["leaf"] == {
        "from": "mid",
        "title": "Leaf",  # title and seeds are not inherited
        "model": RECIPE["model"],
        "trainable": [{"name": "head"}],
        "augment": {"randaugment": {"num_ops": 2, "magnitude": 9}, "at": "source"},
    }


def test_null_removes_an_optional_key_and_sets_a_nullable_one() -> None:
    """`attention_dropout` is required only for an attention head; `randaugment` always."""
    experiments = {
        "root": {"title": "Root", **RECIPE},
        "plain": {"from": "root", "title": "Plain", "model": {"attention_dropout": None}},
        "noaug": {"from": "root", "title": "No aug", "augment": {"randaugment": None}},
    }
    resolved = resolve_variants(experiments)
    assert resolved["plain"]["model"] == {"tag": "a.b", "head": "token_attention"}
    assert resolved["noaug"]["augment"] == {"randaugment": None, "at": "input"}


def test_overrides_reach_a_parents_variants_and_a_variants_inherited_keys() -> None:
    cfg = load_config([], ["experiments.improved.train.label_smoothing=0.1"])
    assert cfg["experiments"]["improved_noaug"]["train"]["label_smoothing"] == 0.1
    assert cfg["experiments"]["improved_no_smoothing"]["train"]["label_smoothing"] == 0.0
    cfg = load_config([], ["experiments.improved_noaug.train.early_stopping.patience=2"])
    assert cfg["experiments"]["improved_noaug"]["train"]["early_stopping"]["patience"] == 2
    assert cfg["experiments"]["improved"]["train"]["early_stopping"]["patience"] == 5


# --------------------------------------------------------------------------- errors, one line each


def _load(tmp_path: Path, text: str) -> str:
    """The ConfigError of loading the defaults with `text` merged onto them, its source cut."""
    user = tmp_path / "user.yaml"
    user.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config([user])
    message = str(caught.value)
    assert "\n" not in message
    return message.split(f"{user}: ", 1)[1]


ALL = "baseline, improved, improved_in12k, baseline_in1k, improved_linear, improved_noaug, "
ALL += "improved_no_smoothing, improved_spatial_attention, improved_head_only, "
ALL += "improved_constant_lr, baseline_holdout, improved_holdout"
ERRORS = {
    "unknown parent": (
        "experiments: {improved_noaug: {from: improvd}}\n",
        f"experiments.improved_noaug.from = 'improvd': unknown experiment; allowed: {ALL}",
    ),
    "cycle": (
        "experiments: {improved: {from: improved_noaug}}\n",
        "experiments.improved_noaug.from = 'improved': a cycle, improved -> improved_noaug -> "
        "improved; allowed: a chain of from that ends at an experiment without one",
    ),
    "its own parent": (
        "experiments: {extra: {from: extra, title: Extra}}\n",
        "experiments.extra.from = 'extra': a cycle, extra -> extra; allowed: a chain of from "
        "that ends at an experiment without one",
    ),
    "unknown key": (
        "experiments: {improved_noaug: {augment: {randaugmnt: null}}}\n",
        "experiments.improved_noaug.augment.randaugmnt = null: not allowed here; allowed: at, "
        "randaugment, random_erasing",
    ),
    "no title": (
        "experiments: {extra: {from: improved}}\n",
        "experiments.extra.title: missing; required here: title, model, trainable, augment, train",
    ),
    "dropouts needed again": (
        "experiments: {improved_linear: {model: {head: token_attention}}}\n",
        "experiments.improved_linear.model.attention_dropout: missing; required here: "
        "attention_dropout, output_dropout (and 1 more problems)",
    ),
    "a seed twice": (
        "experiments: {improved_noaug: {seeds: [1, 1]}}\n",
        "experiments.improved_noaug.seeds = [1, 1]: has non-unique elements; allowed: "
        "uniqueItems True",
    ),
    # a parent's problem is named where it is, and counted once, not once per variant
    "inherited problem": (
        "experiments: {improved: {train: {precision: fp8}}}\n",
        "experiments.improved.train.precision = 'fp8': not allowed; allowed: fp16, bf16, fp32",
    ),
}


@pytest.mark.parametrize(("text", "expected"), ERRORS.values(), ids=ERRORS)
def test_variant_errors_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    assert _load(tmp_path, text) == expected


def test_the_workflow_resolves_as_the_cli_does(tmp_path: Path) -> None:
    """The Snakefile calls finish_config: the demo's dry run plans the four runs it names, and a
    cycle stops it with the CLI's message."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--configfile", str(SMOKE)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    planned = re.findall(r"rule run_experiment:.*?experiment=(\w+), seed=(\d+)", run.stdout, re.S)
    assert sorted(planned) == [
        ("baseline", "0"), ("baseline", "1"), ("improved", "0"), ("improved", "1"),
        ("improved_holdout", "0"), ("improved_linear", "0"), ("improved_noaug", "0"),
    ]  # fmt: skip
    user = tmp_path / "user.yaml"
    user.write_text(yaml.safe_dump({"experiments": {"improved": {"from": "improved_noaug"}}}))
    run = subprocess.run([*command, str(user)], cwd=ROOT, capture_output=True, text=True, env=env)
    assert run.returncode != 0
    assert "a cycle, improved -> improved_noaug -> improved" in run.stdout + run.stderr
    # issue 20: Snakemake's loader kept the last of a key written twice; the CLI refused it
    user.write_text("figures: {dpi: 100}\nfigures: {dpi: 200}\n")
    run = subprocess.run([*command, str(user)], cwd=ROOT, capture_output=True, text=True, env=env)
    assert run.returncode != 0
    assert f"{user}: cannot read: duplicate key 'figures'" in run.stdout + run.stderr


def test_finish_config_resolves_then_validates(paper: dict) -> None:
    raw = yaml.safe_load(CONFIG.read_text())["experiments"]
    assert raw["improved_noaug"] == {
        "from": "improved",
        "title": "Improved recipe without augmentation",
        "augment": {"randaugment": None, "random_erasing": None},
    }
    assert finish_config(paper | {"experiments": raw}) == paper
