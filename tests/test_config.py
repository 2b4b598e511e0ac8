"""Tests of config/config.yaml, config/study.yaml, config/smoke.yaml, config/schema.yaml and the
config module."""

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from snakemake.utils import update_config

from convnext_tinyimagenet.cli import _load, build_parser
from convnext_tinyimagenet.config import (
    CONFIG_DIR,
    DEFAULTS,
    SCHEMA_PATH,
    ConfigError,
    apply_override,
    config_digest,
    dump_config,
    experiment_config,
    experiment_source,
    experiments_to_run,
    finish_config,
    load_config,
    resolve_variants,
    run_seed,
    run_settings,
    runs_to_do,
    validate_config,
)

from .conftest import CONFIG, ROOT, SMOKE, STUDY

# Read-only files from outside the project (../shared from the repository root).
PUBLISHED_DIR = CONFIG_DIR.parent.parent / "shared" / "published"


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config()


@pytest.fixture(scope="module")
def smoke() -> dict:
    return load_config([SMOKE])


def _raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _merged(*paths: Path) -> dict:
    """The files merged as Snakemake merges `configfile:` and `--configfile`, then the variants
    resolved as the Snakefile does."""
    cfg: dict = {}
    for path in paths:
        update_config(cfg, _raw(path))
    return cfg | {"experiments": resolve_variants(cfg["experiments"])}


def _set(cfg: dict, dotted: str, value: Any) -> dict:
    """A copy of `cfg` with one value replaced (or deleted when value is _DELETE)."""
    result = copy.deepcopy(cfg)
    *parents, last = dotted.split(".")
    node: Any = result
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return result


_DELETE = object()


def _leaves(node: Any, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1]


# --------------------------------------------------------------------------- the files


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = _raw(SCHEMA_PATH)
    assert schema["$schema"] == jsonschema.Draft202012Validator.META_SCHEMA["$schema"]
    jsonschema.Draft202012Validator.check_schema(schema)


def _object_schemas(node: Any, where: str = "#"):
    """Every schema that defines keys, except inside `if` (a condition) and `then` (a
    constraint on keys defined, and closed, around it)."""
    if isinstance(node, dict):
        if "properties" in node or "patternProperties" in node:
            yield where, node
        for key, value in node.items():
            if key not in ("if", "then"):
                yield from _object_schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _object_schemas(value, f"{where}/{index}")


def test_schema_closes_every_object_and_describes_every_key() -> None:
    schema = _raw(SCHEMA_PATH)
    objects = list(_object_schemas(schema))
    assert len(objects) > 20
    for where, node in objects:
        closed = node.get("additionalProperties") is False
        assert closed or node.get("unevaluatedProperties") is False, where
        # keys only `then` defines (the head's dropouts) are described there
        keys = {**node.get("then", {}).get("properties", {}), **node.get("properties", {})}
        for key, sub in keys.items():
            assert sub.get("description"), f"{where}/properties/{key}"


def test_the_defaults_are_config_then_study() -> None:
    assert (CONFIG, STUDY) == DEFAULTS


def test_loading_merges_as_snakemake_does(paper: dict, smoke: dict) -> None:
    assert paper == _merged(CONFIG, STUDY)
    assert json.dumps(paper) == json.dumps(_merged(CONFIG, STUDY))  # the same key order too
    assert smoke == _merged(CONFIG, STUDY, SMOKE)
    # naming a default again changes nothing (the README's `--config config/config.yaml`)
    assert load_config([CONFIG, SMOKE]) == smoke
    assert load_config([CONFIG, STUDY]) == paper


def test_study_holds_the_published_facts_and_config_none_of_them() -> None:
    study, tuned = _raw(STUDY), _raw(CONFIG)
    assert set(study) == {"published", "discrepancies"}
    assert set(study["published"]) == {"repository", "commit", "runs"}
    assert set(study["published"]["runs"]) == {"baseline", "improved"}
    assert len(study["discrepancies"]) == 7
    assert "discrepancies" not in tuned
    assert set(tuned["published"]) == {"download_dir", "use_predictions"}
    assert not set(_leaves(tuned)) & set(_leaves(study))


def test_paper_config_validates(paper: dict) -> None:
    validate_config(paper)


def test_smoke_config_merges_onto_paper_config(paper: dict, smoke: dict) -> None:
    assert smoke["data"]["source"] == "synthetic"
    assert smoke["data"]["input_size"] == 32
    assert smoke["data"]["synthetic"]["num_classes"] == 10
    # untouched siblings survive the merge
    assert smoke["data"]["synthetic"]["noise"] == paper["data"]["synthetic"]["noise"]
    assert smoke["data"]["hf"]["id"] == "zh-plus/tiny-imagenet"
    assert smoke["data"]["image_size"] == 64
    for name in ("baseline", "improved"):
        experiment = smoke["experiments"][name]
        assert experiment["model"]["pretrained"] is False
        assert experiment["model"]["tag"] == paper["experiments"][name]["model"]["tag"]
        assert experiment["train"]["early_stopping"]["max_epochs"] == 3
        assert experiment["train"]["early_stopping"]["patience"] == 5
        assert experiment["trainable"] == paper["experiments"][name]["trainable"]
    assert [group["lr"] for group in smoke["experiments"]["improved"]["trainable"]] == [
        5e-5,
        1e-4,
        3e-4,
    ]
    assert smoke["published"] == paper["published"] | {"use_predictions": False}


def test_smoke_config_holds_only_overrides(paper: dict) -> None:
    # and with which seeds the demo runs each experiment: `seeds: []` declares one without
    # running it, `seeds: [0]` runs an ablation once
    seeds = {f"experiments.{name}.seeds" for name in paper["experiments"]}
    assert set(_leaves(_raw(SMOKE))) <= set(_leaves(paper)) | seeds
    smoke = load_config([SMOKE])
    assert experiments_to_run(smoke["experiments"]) == [
        "baseline",
        "improved",
        "improved_linear",
        "improved_noaug",
        "improved_holdout",
    ]
    # the published recipes x 2 seeds, two ablations and a holdout run x 1 seed
    assert runs_to_do(smoke) == [
        ("baseline", 0), ("baseline", 1), ("improved", 0), ("improved", 1),
        ("improved_linear", 0), ("improved_noaug", 0), ("improved_holdout", 0),
    ]  # fmt: skip


def test_the_paper_config_runs_every_variant_with_three_seeds(paper: dict) -> None:
    runs = runs_to_do(paper)
    assert len(runs) == 30 and paper["seeds"] == [0, 1, 2]
    # all but the selection-bias pair, declared without seeds (config/selection.yaml runs it)
    holdout = {"baseline_holdout", "improved_holdout"}
    assert {name for name, _ in runs} == set(paper["experiments"]) - holdout
    # each run reads its experiment's source: the baseline's notebook the Hugging Face copy,
    # the improved notebook (and its variants) the original zip
    assert experiment_source(paper, "baseline") == experiment_source(paper, "baseline_in1k") == "hf"
    assert {
        experiment_source(paper, name) for name in paper["experiments"] if "improved" in name
    } == {"folder"}
    settings = run_settings(paper, "improved_noaug", 2)
    assert settings["seeds"] == [2] and settings["data"]["source"] == "folder"
    assert run_seed(settings) == 2


def test_a_seed_the_experiment_does_not_run_is_refused_in_one_line(paper: dict) -> None:
    with pytest.raises(
        ConfigError, match=r"^experiments.baseline: seed 7 is not one it runs; allowed: 0, 1, 2$"
    ):
        run_settings(paper, "baseline", 7)
    with pytest.raises(ConfigError, match=r"^seeds = \[0, 1, 2\]: a run trains one seed"):
        run_seed(paper)


def test_a_file_merges_key_by_key_and_replaces_lists_and_nulls(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text(
        "normalize: {mean: [0.5, 0.5, 0.5]}\n"
        "experiments:\n"
        "  baseline: {train: {scheduler: {name: cosine, t_max: 3, eta_min: 0.0}}}\n"
        "  improved: {train: {scheduler: null}, trainable: [{name: head, modules: [head],"
        " lr: 1.0e-4, weight_decay: 0.0}]}\n"
    )
    cfg = load_config([user])
    assert cfg["normalize"] == {"mean": [0.5, 0.5, 0.5], "std": [0.229, 0.224, 0.225]}
    assert cfg["experiments"]["baseline"]["train"]["scheduler"]["t_max"] == 3
    assert cfg["experiments"]["baseline"]["train"]["batch_size"] == 32
    assert cfg["experiments"]["improved"]["train"]["scheduler"] is None
    assert [group["name"] for group in cfg["experiments"]["improved"]["trainable"]] == ["head"]


def test_cli_config_files_merge_onto_the_defaults(smoke: dict) -> None:
    """`--config config/smoke.yaml` alone is the demo (the README's command)."""
    argv = ["train", "--experiment", "baseline", "--config", str(SMOKE)]
    assert _load(build_parser().parse_args(argv)) == smoke
    assert _load(build_parser().parse_args(argv[:3])) == load_config()


def _snakemake_dry_run(tmp_path: Path, text: str, *more: str) -> subprocess.CompletedProcess:
    """`snakemake -n --configfile user.yaml` (and `more`) on a copy of the Snakefile and
    config/."""
    shutil.copy2(ROOT / "Snakefile", tmp_path / "Snakefile")
    shutil.copytree(CONFIG_DIR, tmp_path / "config")
    (tmp_path / "user.yaml").write_text(text)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", "-n", "--configfile", "user.yaml", *more]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # jsonschema counts 32.0 as an integer; both validators refuse it
        (
            "experiments: {baseline: {train: {batch_size: 32.0}}}\n",
            "experiments.baseline.train.batch_size = 32.0: wrong type; allowed: integer",
        ),
        # a --configfile overrides config/study.yaml too, not only config/config.yaml
        (
            "published: {runs: {baseline: {best_epoch: 9}}}\n",
            "published.runs.baseline.best_epoch = 9: past the epochs listed; allowed: 1..6",
        ),
    ],
    ids=["float batch size", "study overridden"],
)
def test_the_workflow_and_the_cli_validate_alike(tmp_path: Path, text: str, expected: str) -> None:
    result = _snakemake_dry_run(tmp_path, text)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    with pytest.raises(ConfigError) as caught:
        load_config([tmp_path / "user.yaml"])
    assert str(caught.value).endswith(expected)


def test_a_workflow_config_error_is_one_line_naming_its_sources_in_merge_order(tmp_path):
    """Our files, then the --configfile, then --config: the order they merge in, and a bad
    value given with --config is not blamed on a file; no traceback."""
    result = _snakemake_dry_run(tmp_path, "seeds: [0]\n", "--config", "set=figures.dpi=x")
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert lines == [
        f"error: config/config.yaml + config/study.yaml + {tmp_path / 'user.yaml'} + --config "
        "set: figures.dpi = 'x': wrong type; allowed: integer"
    ]
    assert 'File "' not in result.stderr


# --------------------------------------------------------------------------- the published recipe

# Values read from ../shared/reference/published-recipe.md (what the notebooks ran), typed here
# independently of config/config.yaml.
PUBLISHED_RECIPE = {
    "data.image_size": 64,
    "data.input_size": 224,
    "data.hf.id": "zh-plus/tiny-imagenet",
    "data.hf.train_split": "train",
    "data.hf.val_split": "valid",
    "data.synthetic.num_classes": 200,
    "normalize.mean": [0.485, 0.456, 0.406],
    "normalize.std": [0.229, 0.224, 0.225],
    # baseline notebook
    "experiments.baseline.model.tag": "convnext_tiny.in12k_ft_in1k",
    "experiments.baseline.model.pretrained": True,
    "experiments.baseline.model.head": "linear",
    "experiments.baseline.trainable": [
        {"name": "head", "modules": ["head"], "lr": 1e-3, "weight_decay": 0.01}
    ],
    "experiments.baseline.augment.randaugment": None,
    "experiments.baseline.augment.random_erasing": None,
    "experiments.baseline.augment.at": "input",
    "experiments.baseline.train.batch_size": 32,
    "experiments.baseline.train.precision": "fp16",
    "experiments.baseline.train.label_smoothing": 0.0,
    "experiments.baseline.train.scheduler": None,
    "experiments.baseline.train.early_stopping.monitor": "val_loss_batch_mean",
    "experiments.baseline.train.early_stopping.patience": 5,
    "experiments.baseline.train.early_stopping.min_delta": 0.0,
    "experiments.baseline.train.early_stopping.max_epochs": 100,
    # improved notebook
    "experiments.improved.model.tag": "convnext_tiny.fb_in1k",
    "experiments.improved.model.pretrained": True,
    "experiments.improved.model.head": "token_attention",
    "experiments.improved.model.attention_dropout": 0.2,
    "experiments.improved.model.output_dropout": 0.2,
    "experiments.improved.trainable": [
        {"name": "stages.3", "modules": ["backbone.stages.3"], "lr": 5e-5, "weight_decay": 1e-4},
        {"name": "attention", "modules": ["attention"], "lr": 1e-4, "weight_decay": 5e-4},
        {"name": "head", "modules": ["head"], "lr": 3e-4, "weight_decay": 1e-4},
    ],
    "experiments.improved.augment.randaugment": {"num_ops": 2, "magnitude": 9},
    "experiments.improved.augment.random_erasing": {"p": 0.15},
    "experiments.improved.augment.at": "input",  # RandAugment after the resize, as published
    "experiments.improved.train.batch_size": 32,
    "experiments.improved.train.precision": "fp32",
    "experiments.improved.train.label_smoothing": 0.05,
    "experiments.improved.train.scheduler": {"name": "cosine", "t_max": 50, "eta_min": 0.0},
    "experiments.improved.train.early_stopping.monitor": "val_acc_batch_mean",
    "experiments.improved.train.early_stopping.patience": 5,
    "experiments.improved.train.early_stopping.min_delta": 0.0,
    "experiments.improved.train.early_stopping.max_epochs": None,
    # speed settings that keep the published computation
    "performance.float32_matmul_precision": "highest",  # no TF32 matmuls
    # published numbers
    "published.commit": "1269e01e9c0dbf3e1674e56722aed4a7d38f23aa",
    "published.runs.baseline.claim": 82.61,
    "published.runs.baseline.best_epoch": 1,
    "published.runs.baseline.minutes": 10.84,
    "published.runs.baseline.predictions.sha256": (
        "9944f12b6aeb0c6f660f954e7f2869f4cff95cddeab228c31a24bf9be31ec182"
    ),
    "published.runs.improved.claim": 86.30,
    # how each notebook computed its claim, and the row order of its published CSV
    "published.runs.baseline.claim_metric": "exact",
    "published.runs.improved.claim_metric": "batch_mean",
    "published.runs.baseline.source": "hf",
    "published.runs.improved.source": "folder",
    "published.runs.improved.best_epoch": 7,
    "published.runs.improved.minutes": 52.17,
    "published.runs.improved.predictions.sha256": (
        "c90fbaf5ea2529b8a7af6efb463cb8ad4343f6da336484664ba7e8a33feaa472"
    ),
}


def _get(cfg: dict, dotted: str) -> Any:
    node: Any = cfg
    for key in dotted.split("."):
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


@pytest.mark.parametrize(("key", "expected"), PUBLISHED_RECIPE.items(), ids=PUBLISHED_RECIPE)
def test_paper_config_holds_the_published_recipe(paper: dict, key: str, expected: Any) -> None:
    value = _get(paper, key)
    assert value == expected
    assert type(value) is type(expected)  # e.g. 1.0e-3, not the YAML 1.1 string '1e-3'


PUBLISHED_EPOCHS = {
    # epoch: (train loss, val loss, train acc %, val acc %)
    "baseline": {1: (0.8464, 0.8057, 80.75, 82.61), 6: (0.3062, 1.1370, 91.34, 81.20)},
    "improved": {1: (2.3775, 1.1309, 57.48, 84.45), 7: (1.6590, 1.0332, 73.90, 86.30)},
}


@pytest.mark.parametrize("name", ["baseline", "improved"])
def test_published_runs_are_consistent(paper: dict, name: str) -> None:
    run = paper["published"]["runs"][name]
    epochs = run["epochs"]
    assert len(epochs) == {"baseline": 6, "improved": 12}[name]
    for epoch, row in PUBLISHED_EPOCHS[name].items():
        assert epochs[epoch - 1] == list(row)
    # the claim is the validation accuracy of the restored epoch ...
    assert epochs[run["best_epoch"] - 1][3] == run["claim"]
    # ... which is the best epoch under the experiment's monitor ...
    stopping = paper["experiments"][name]["train"]["early_stopping"]
    val_loss = [row[1] for row in epochs]
    val_acc = [row[3] for row in epochs]
    best = val_loss.index(min(val_loss)) if "loss" in stopping["monitor"] else None
    best = val_acc.index(max(val_acc)) if "acc" in stopping["monitor"] else best
    assert best + 1 == run["best_epoch"]
    # ... and the run stopped `patience` epochs later.
    assert len(epochs) == run["best_epoch"] + stopping["patience"]


def test_verification_bands_hold_the_sampling_error(paper: dict, smoke: dict) -> None:
    """Each band is wider than the binomial 95 % error it must absorb (z = 1.96)."""
    assert paper["verification"]["claim_rounding_pp"] == 0.005  # claims have two decimals
    for cfg, n in ((paper, 10_000), (smoke, 160)):
        # the published runs have bands; the ablations have no published claim to check
        assert set(cfg["verification"]["reruns"]) == {"baseline", "improved"}
        for name, band in cfg["verification"]["reruns"].items():
            claim = cfg["published"]["runs"][name]["claim"]
            p = (band["expected"] if band["expected"] is not None else claim) / 100
            half = 100 * 1.96 * (p * (1 - p) / n) ** 0.5
            # against a claim, the claim and the rerun each carry one half-width
            sampling = half * 2**0.5 if band["expected"] is None else half
            assert sampling < band["tolerance_pp"] < 3 * sampling, name
    assert all(b["expected"] is None for b in paper["verification"]["reruns"].values())
    # the demo (97.50 % and 93.75 % on 160 synthetic images) is inside its bands
    bands = smoke["verification"]["reruns"]
    for name, accuracy in (("baseline", 97.5), ("improved", 93.75)):
        assert abs(accuracy - bands[name]["expected"]) <= bands[name]["tolerance_pp"]


@pytest.mark.parametrize("name", ["baseline", "improved"])
def test_published_predictions_are_pinned(paper: dict, name: str) -> None:
    published = paper["published"]
    predictions = published["runs"][name]["predictions"]
    assert published["commit"] in predictions["url"]
    assert predictions["url"].startswith(
        published["repository"].replace("https://github.com/", "https://raw.githubusercontent.com/")
    )
    sums_file = PUBLISHED_DIR / "SHA256SUMS"
    if not sums_file.exists():
        pytest.skip(f"{sums_file} is not available")
    sums = dict(line.split()[::-1] for line in sums_file.read_text().splitlines() if line)
    file_name = predictions["url"].rsplit("/", 1)[1]
    assert sums[file_name] == predictions["sha256"]
    digest = hashlib.sha256((PUBLISHED_DIR / file_name).read_bytes()).hexdigest()
    assert digest == predictions["sha256"]


# --------------------------------------------------------------------------- validation messages

BAD_CONFIGS = {
    "misspelt key": (
        "experiments.baseline.train.lrr",
        1e-3,
        ["experiments.baseline.train.lrr = 0.001: not allowed here", "allowed: batch_size, "],
    ),
    "misspelt top-level key": ("sed", 0, ["sed = 0: not allowed here", "seeds"]),
    # the single `seed` of earlier versions: the message lists `seeds`
    "former seed key": ("seed", 0, ["seed = 0: not allowed here", "seeds"]),
    "seeds not a list": ("seeds", 0, ["seeds = 0: wrong type; allowed: array"]),
    "no seed": ("seeds", [], ["seeds = []: should be non-empty"]),
    "repeated seed": ("seeds", [1, 1], ["seeds = [1, 1]: has non-unique elements"]),
    "wrong type": (
        "experiments.baseline.trainable.0.lr",
        "fast",
        ["experiments.baseline.trainable.0.lr = 'fast': wrong type; allowed: number"],
    ),
    "YAML 1.1 float": (
        "experiments.improved.trainable.2.lr",
        "3e-4",
        ["experiments.improved.trainable.2.lr = '3e-4'", "YAML 1.1 reads 3e-4 as text"],
    ),
    "float batch size": (
        "experiments.baseline.train.batch_size",
        32.0,
        ["experiments.baseline.train.batch_size = 32.0: wrong type; allowed: integer"],
    ),
    "boolean seed": ("seeds.0", True, ["seeds.0 = true: wrong type; allowed: integer"]),
    "zero batch size": (
        "experiments.baseline.train.batch_size",
        0,
        ["experiments.baseline.train.batch_size = 0", "minimum of 1"],
    ),
    "zero learning rate": (
        "experiments.improved.trainable.1.lr",
        0,
        ["experiments.improved.trainable.1.lr = 0", "allowed: exclusiveMinimum 0"],
    ),
    "negative weight decay": (
        "experiments.improved.trainable.0.weight_decay",
        -1e-4,
        ["experiments.improved.trainable.0.weight_decay = -0.0001", "minimum of 0"],
    ),
    "dropout of one": (
        "experiments.improved.model.attention_dropout",
        1.0,
        ["experiments.improved.model.attention_dropout = 1.0", "allowed: exclusiveMaximum 1"],
    ),
    "label smoothing of one": (
        "experiments.improved.train.label_smoothing",
        1,
        ["experiments.improved.train.label_smoothing = 1", "allowed: exclusiveMaximum 1"],
    ),
    "magnitude too high": (
        "experiments.improved.augment.randaugment.magnitude",
        31,
        ["experiments.improved.augment.randaugment.magnitude = 31", "maximum of 30"],
    ),
    "erasing probability": (
        "experiments.improved.augment.random_erasing.p",
        1.5,
        ["experiments.improved.augment.random_erasing.p = 1.5", "maximum of 1"],
    ),
    "zero max_epochs": (
        "experiments.improved.train.early_stopping.max_epochs",
        0,
        ["experiments.improved.train.early_stopping.max_epochs = 0", "minimum of 1"],
    ),
    "t_max zero": (
        "experiments.improved.train.scheduler.t_max",
        0,
        ["experiments.improved.train.scheduler.t_max = 0", "minimum of 1"],
    ),
    "input too small": ("data.input_size", 8, ["data.input_size = 8", "minimum of 32"]),
    "bad precision": (
        "experiments.improved.train.precision",
        "fp8",
        ["experiments.improved.train.precision = 'fp8': not allowed; allowed: fp16, bf16, fp32"],
    ),
    "bad monitor": (
        "experiments.baseline.train.early_stopping.monitor",
        "val_los",
        ["experiments.baseline.train.early_stopping.monitor = 'val_los'", "val_loss_batch_mean"],
    ),
    "bad source": ("data.source", "s3", ["data.source = 's3'", "hf, folder, synthetic"]),
    "bad head": (
        "experiments.baseline.model.head",
        "mlp",
        ["experiments.baseline.model.head = 'mlp'", "linear, token_attention"],
    ),
    "bad scheduler name": (
        "experiments.improved.train.scheduler.name",
        "step",
        ["experiments.improved.train.scheduler.name = 'step'", "allowed: cosine"],
    ),
    "scheduler as a string": (
        "experiments.improved.train.scheduler",
        "cosine",
        ["experiments.improved.train.scheduler = 'cosine': wrong type; allowed: object, null"],
    ),
    "randaugment as a number": (
        "experiments.improved.augment.randaugment",
        2,
        ["experiments.improved.augment.randaugment = 2", "allowed: object, null"],
    ),
    "bad sha256": (
        "published.runs.baseline.predictions.sha256",
        "9944F12B",
        ["published.runs.baseline.predictions.sha256 = '9944F12B'", "^[0-9a-f]{64}$"],
    ),
    "bad device": ("device", "gpu", ["device = 'gpu'", "cuda(:[0-9]+)?"]),
    "negative seed": ("seeds.1", -1, ["seeds.1 = -1", "minimum of 0"]),
    "short epoch row": (
        "published.runs.improved.epochs.3",
        [1.0, 1.0, 50.0],
        ["published.runs.improved.epochs.3 = [1.0, 1.0, 50.0]", "too short", "minItems 4"],
    ),
    "negative tolerance": (
        "verification.reruns.baseline.tolerance_pp",
        -1.0,
        ["verification.reruns.baseline.tolerance_pp = -1.0", "minimum of 0"],
    ),
    "expected over 100": (
        "verification.reruns.improved.expected",
        101,
        ["verification.reruns.improved.expected = 101", "maximum of 100"],
    ),
    "bad claim metric": (
        "published.runs.improved.claim_metric",
        "mean",
        ["published.runs.improved.claim_metric = 'mean'", "allowed: exact, batch_mean"],
    ),
    "bad published source": (
        "published.runs.baseline.source",
        "synthetic",
        ["published.runs.baseline.source = 'synthetic'", "allowed: hf, folder"],
    ),
    "accuracy over 100": (
        "published.runs.improved.epochs.3.3",
        101,
        ["published.runs.improved.epochs.3.3 = 101", "maximum of 100"],
    ),
    "no trainable group": (
        "experiments.baseline.trainable",
        [],
        ["experiments.baseline.trainable = []", "minItems 1"],
    ),
    "empty modules": (
        "experiments.baseline.trainable.0.modules",
        [],
        ["experiments.baseline.trainable.0.modules = []", "minItems 1"],
    ),
    "bad experiment name": (
        "experiments.Improved2",
        {},
        ["experiments.Improved2 = {}: not allowed here", "names matching ^[a-z][a-z0-9_]*$"],
    ),
    "resident data not a choice": (
        "performance.resident_data",
        "gpu",
        ["performance.resident_data = 'gpu'", "auto, True, False"],
    ),
    "zero chunk": (
        "performance.chunk_batches",
        0,
        ["performance.chunk_batches = 0", "minimum of 1"],
    ),
    "TF32 spelt wrong": (
        "performance.float32_matmul_precision",
        "tf32",
        ["performance.float32_matmul_precision = 'tf32'", "highest, high, medium"],
    ),
    "augment where": (
        "experiments.improved.augment.at",
        "output",
        ["experiments.improved.augment.at = 'output'", "input, source"],
    ),
    "missing key": ("data.hf.id", _DELETE, ["data.hf.id: missing; required here: id, "]),
    "missing section": (
        "experiments.improved.train",
        _DELETE,
        ["experiments.improved.train: missing"],
    ),
    "missing attention dropout": (
        "experiments.improved.model.output_dropout",
        _DELETE,
        ["experiments.improved.model.output_dropout: missing"],
    ),
    # the head's keys (the schema's if/then), and the semantic checks
    "dropout on a linear head": (
        "experiments.baseline.model.output_dropout",
        0.2,
        [
            "experiments.baseline.model.output_dropout = 0.2: not allowed here",
            "allowed: tag, pretrained, pretrained_file, head",
        ],
    ),
    "module in two groups": (
        "experiments.improved.trainable.1.modules",
        ["head"],
        ["experiments.improved.trainable.2.modules", "'head' is in an earlier group"],
    ),
    "duplicate group name": (
        "experiments.improved.trainable.1.name",
        "head",
        ["experiments.improved.trainable.2.name = 'head'", "unique"],
    ),
    "best epoch past the log": (
        "published.runs.baseline.best_epoch",
        7,
        ["published.runs.baseline.best_epoch = 7", "allowed: 1..6"],
    ),
    "unknown experiment in discrepancies": (
        "discrepancies.0.affects",
        ["baseline", "improvd"],
        ["discrepancies.0.affects.1 = 'improvd'", "allowed: baseline, improved"],
    ),
}


@pytest.mark.parametrize(("key", "value", "expected"), BAD_CONFIGS.values(), ids=BAD_CONFIGS)
def test_bad_config_names_key_and_value(
    paper: dict, key: str, value: Any, expected: list[str]
) -> None:
    bad = _set(paper, key, value)
    with pytest.raises(ConfigError) as caught:
        validate_config(bad, source="config/config.yaml")
    message = str(caught.value)
    assert message.startswith("config/config.yaml: ")
    assert "\n" not in message
    for part in expected:
        assert part in message


# The three one-line errors: a wrong key, a wrong type, an unknown experiment.
def test_a_wrong_key_lists_the_allowed_keys(paper: dict) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(_set(paper, "experiments.baseline.train.lrr", 1.0))
    assert str(caught.value) == (
        "config: experiments.baseline.train.lrr = 1.0: not allowed here; allowed: batch_size, "
        "eval_batch_size, precision, label_smoothing, scheduler, early_stopping, feature_cache, "
        "selection, holdout_per_class"
    )


def test_a_wrong_type_names_the_type(paper: dict) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(_set(paper, "seeds.0", "zero"))
    assert str(caught.value) == "config: seeds.0 = 'zero': wrong type; allowed: integer"


def test_an_unknown_experiment_lists_the_experiments(paper: dict) -> None:
    with pytest.raises(ConfigError) as caught:
        experiment_config(paper, "baseline_v2")
    assert str(caught.value) == (
        "experiments.baseline_v2: unknown experiment; allowed: baseline, improved, "
        "improved_in12k, baseline_in1k, improved_linear, improved_noaug, improved_no_smoothing, "
        "improved_spatial_attention, improved_head_only, improved_constant_lr, baseline_holdout, "
        "improved_holdout"
    )


def test_more_problems_are_counted(paper: dict) -> None:
    bad = _set(_set(paper, "seeds.0", "zero"), "experiments.baseline.train.batch_size", 0)
    with pytest.raises(ConfigError, match=r" \(and 1 more problems\)$"):
        validate_config(bad)


def test_folder_source_needs_a_root(paper: dict) -> None:
    cfg = _set(_set(paper, "data.source", "folder"), "data.folder.root", None)
    with pytest.raises(
        ConfigError, match=r"data\.folder\.root = null: wrong type; allowed: string"
    ):
        validate_config(cfg)
    validate_config(_set(paper, "data.source", "folder"))
    # an experiment that reads the folder needs it too (the improved run does in the paper)
    with pytest.raises(
        ConfigError,
        match=r"^config: experiments.improved.data.source = 'folder': data.folder.root is null; "
        r"allowed: the unpacked folder's path$",
    ):
        validate_config(_set(paper, "data.folder.root", None))
    hf_only = copy.deepcopy(paper)  # no experiment reads the folder
    for experiment in hf_only["experiments"].values():
        experiment.get("data", {})["source"] = "hf"
    for name in ("improved_in12k", "improved_linear", "improved_noaug", "improved_no_smoothing",
                 "improved_spatial_attention"):  # fmt: skip
        hf_only = _set(hf_only, f"experiments.{name}.data.source", "hf")
    validate_config(_set(hf_only, "data.folder.root", None))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("experiments.baseline.train.scheduler", {"name": "cosine", "t_max": 1, "eta_min": 0}),
        ("experiments.improved.augment.randaugment", None),
        ("experiments.improved.augment.random_erasing", None),
        ("experiments.improved.train.early_stopping.max_epochs", 1),
        ("experiments.baseline.model.pretrained_file", "weights/convnext.safetensors"),
        ("data.hf.revision", None),
        ("data.source", "synthetic"),
        ("device", "cuda:1"),
        ("experiments.baseline.train.precision", "bf16"),
        ("experiments.baseline.train.early_stopping.monitor", "val_acc"),
    ],
)
def test_allowed_alternatives_validate(paper: dict, key: str, value: Any) -> None:
    validate_config(_set(paper, key, value))


def test_users_can_add_experiments(paper: dict) -> None:
    extra = copy.deepcopy(paper["experiments"]["improved"])
    extra["train"]["label_smoothing"] = 0.1
    cfg = _set(paper, "experiments.improved_ls10", extra)
    validate_config(cfg)
    assert experiment_config(cfg, "improved_ls10")["train"]["label_smoothing"] == 0.1
    linear = _set(cfg, "experiments.improved_ls10.model.head", "linear")
    with pytest.raises(ConfigError, match=r"improved_ls10\.model\.attention_dropout = 0\.2"):
        validate_config(linear)  # a linear head takes no dropout keys


# --------------------------------------------------------------------------- overrides

# Top-level keys to override in `test_override_values`.
_PLAIN = {"lr": None, "x": None, "device": None, "title": None, "seed": None, "a": {"lr": None}}


@pytest.mark.parametrize(
    ("item", "keys", "value"),
    [
        ("a.lr=1e-3", ["a", "lr"], 1e-3),
        ("lr=5E-5", ["lr"], 5e-5),
        ("lr=-2.5e+4", ["lr"], -25000.0),
        ("lr=1.0e-3", ["lr"], 1e-3),
        ("lr=.5", ["lr"], 0.5),
        ("lr='1e-3'", ["lr"], "1e-3"),
        ("x=null", ["x"], None),
        ("x=", ["x"], None),  # as Snakemake's --config x=
        ("x=true", ["x"], True),
        ("x=false", ["x"], False),
        ("x=[1,2]", ["x"], [1, 2]),
        ("x={p: 0.15}", ["x"], {"p": 0.15}),
        ("device=cuda:0", ["device"], "cuda:0"),
        ("title=a=b", ["title"], "a=b"),
        (" seed = 3 ", ["seed"], 3),
    ],
)
def test_override_values(item: str, keys: list[str], value: Any) -> None:
    cfg = apply_override(_PLAIN, item)
    parsed = cfg[keys[0]] if len(keys) == 1 else cfg[keys[0]][keys[1]]
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize("item", ["seed", "=1", "a..b=1", "seed=[1"])
def test_malformed_override(item: str) -> None:
    with pytest.raises(ConfigError, match=r"^--set '"):
        apply_override(_PLAIN, item)


def test_overrides_apply_without_mutating(paper: dict) -> None:
    before = copy.deepcopy(paper)
    cfg = paper
    for item in [
        "experiments.baseline.train.batch_size=64",
        "experiments.improved.trainable.0.lr=1e-5",
        "experiments.improved.train.scheduler=null",
        "experiments.improved.augment.randaugment={num_ops: 3, magnitude: 12}",
        "experiments.baseline.train.early_stopping.max_epochs=null",
        "deterministic=true",
        "normalize.mean=[0.5, 0.5, 0.5]",
    ]:
        cfg = apply_override(cfg, item)
    assert paper == before
    validate_config(cfg)
    assert cfg["experiments"]["baseline"]["train"]["batch_size"] == 64
    assert cfg["experiments"]["improved"]["trainable"][0]["lr"] == 1e-5
    assert cfg["experiments"]["improved"]["trainable"][1]["lr"] == 1e-4
    assert cfg["experiments"]["improved"]["train"]["scheduler"] is None
    assert cfg["experiments"]["improved"]["augment"]["randaugment"] == {
        "num_ops": 3,
        "magnitude": 12,
    }
    assert cfg["experiments"]["baseline"]["train"]["early_stopping"]["max_epochs"] is None
    assert cfg["deterministic"] is True
    assert cfg["normalize"]["mean"] == [0.5, 0.5, 0.5]
    assert list(cfg) == list(paper)  # a key keeps its place


def test_load_config_applies_files_then_overrides() -> None:
    cfg = load_config(
        [SMOKE], ["experiments.baseline.train.early_stopping.max_epochs=1", "data.input_size=64"]
    )
    assert cfg["experiments"]["baseline"]["train"]["early_stopping"]["max_epochs"] == 1
    assert cfg["experiments"]["improved"]["train"]["early_stopping"]["max_epochs"] == 3
    assert cfg["data"]["input_size"] == 64
    assert cfg["data"]["source"] == "synthetic"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            "experiments.baseline.train.lrr=1",
            "experiments.baseline.train.lrr = 1: not allowed here; allowed: batch_size, ",
        ),
        ("learning_rate=1", "learning_rate = 1: not allowed here; allowed: performance, "),
        (
            "experiments.baselin.train.batch_size=8",
            "--set experiments.baselin: no such key; allowed: baseline, improved",
        ),
        ("seeds.x=1", 'seeds = {"x": 1}: wrong type; allowed: array'),
        ("experiments.baseline.train.scheduler.t_max=3", "train.scheduler.name: missing"),
        ("experiments.baseline.trainable.3.lr=1", "experiments.baseline.trainable = {"),
        ("experiments.baseline.trainable.head.lr=1", "allowed: array"),
        ("experiments.baseline.train.batch_size=0", "batch_size = 0: is less than the minimum"),
        ("seeds=", "seeds = null: wrong type; allowed: array"),
        ("seeds.0=-1", "seeds.0 = -1: is less than the minimum of 0"),
    ],
)
def test_bad_override_names_the_key(item: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config([SMOKE], [item])
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_validation_error_names_files_and_overrides() -> None:
    item = "experiments.improved.train.precision=fp8"
    with pytest.raises(ConfigError) as caught:
        load_config([SMOKE], [item])
    assert str(caught.value) == (
        f"{CONFIG} + {STUDY} + {SMOKE} + --set {item}: "
        "experiments.improved.train.precision = 'fp8': not allowed; allowed: fp16, bf16, fp32"
    )


# --------------------------------------------------------------------------- files


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"^{missing}: cannot read: .*No such file"):
        load_config([missing])


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("seed: 0\ndata:\n  source: [hf\n", "line 4"),
        ("seed: 0\ndata:\n\tsource: hf\n", "line 3"),
        ("seed: 0\nseed: 1\n", "line 2"),
    ],
    ids=["unclosed list", "tab", "duplicate key"],
)
def test_broken_yaml_names_file_and_line(tmp_path: Path, text: str, line: str) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config([broken])
    message = str(caught.value)
    assert message.startswith(f"{broken}: cannot read: ")
    assert line in message and "\n" not in message


@pytest.mark.parametrize("text", ["", "- seed\n", "just text\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config([path])


# --------------------------------------------------------------------------- helpers


def test_experiment_config(paper: dict) -> None:
    baseline = experiment_config(paper, "baseline")
    assert baseline == paper["experiments"]["baseline"]
    baseline["train"]["batch_size"] = 1
    assert paper["experiments"]["baseline"]["train"]["batch_size"] == 32


def test_config_digest(paper: dict) -> None:
    digest = config_digest(paper)
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    reordered = dict(reversed(list(copy.deepcopy(paper).items())))
    reordered["data"] = dict(reversed(list(reordered["data"].items())))
    assert list(reordered) != list(paper)
    assert config_digest(reordered) == digest
    assert config_digest(copy.deepcopy(paper)) == digest
    changed = _set(paper, "experiments.improved.trainable.0.lr", 5.1e-5)
    assert config_digest(changed) != digest
    assert config_digest(_set(paper, "seed", 1)) != digest


def test_dump_config_round_trips(tmp_path: Path, smoke: dict) -> None:
    """A run's settings are written as they are (its config.yaml); the whole config loads again
    to the same configuration."""
    path = tmp_path / "run" / "config.yaml"
    settings = run_settings(smoke, "improved_linear", 0)
    dump_config(settings, path)
    dump_config(settings, path)  # replaces an existing file
    assert _raw(path) == settings
    assert list(_raw(path)) == list(settings)  # in its key order
    assert config_digest(_raw(path)) == config_digest(settings)
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]
    dump_config(smoke, path)
    assert load_config([path]) == smoke


def test_the_written_config_of_a_variant_that_removed_keys_loads_again(tmp_path: Path) -> None:
    """A variant of the user's own that removes its parent's keys with null: the written
    config (results/config.yaml) loads again to the same configuration."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "experiments:\n  mine:\n    from: improved\n    title: mine\n"
        "    model: {head: linear, attention_dropout: null, output_dropout: null}\n"
    )
    cfg = load_config([mine])
    assert "attention_dropout" not in cfg["experiments"]["mine"]["model"]
    written = tmp_path / "config.yaml"
    dump_config(cfg, written)
    assert load_config([written]) == cfg
    dump_config(load_config([written]), written)
    assert load_config([written]) == cfg


def test_a_leading_tilde_is_the_users_home_in_every_path_key(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(
        [SMOKE], ["output_dir=~/my results", "data.cache_dir=~/cache", "data.folder.root=~/t"]
    )
    assert cfg["output_dir"] == f"{tmp_path}/my results"
    assert cfg["data"]["cache_dir"] == f"{tmp_path}/cache"
    assert cfg["data"]["folder"]["root"] == f"{tmp_path}/t"
    assert cfg["published"]["download_dir"] == "resources/published"  # relative stays relative


def test_a_control_character_in_any_value_is_refused_in_one_line(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text('output_dir: "results/a\\nb"\nexperiments: {baseline: {title: "x\\ty"}}\n')
    with pytest.raises(ConfigError) as caught:
        load_config([user])
    message = str(caught.value)
    assert message.endswith(
        "output_dir = 'results/a\\nb': holds a control character; allowed: printable text"
    )
    assert "\n" not in message


# issue 20: values that passed the schema and failed later (or never)
UNUSABLE = {
    "a NaN learning rate": (
        "experiments: {baseline: {trainable: [{name: head, modules: [head], lr: .nan, "
        "weight_decay: 0.01}]}}\n",
        "experiments.baseline.trainable.0.lr = nan: not a finite number; allowed: finite numbers",
    ),
    "an infinite tolerance": (
        "verification: {reruns: {baseline: {tolerance_pp: .inf}}}\n",
        "verification.reruns.baseline.tolerance_pp = inf: not a finite number; allowed: finite "
        "numbers",
    ),
    "a key ending in a newline": (
        'experiments: {"improved_x\\n": {from: improved, title: x}}\n',
        "experiments: key 'improved_x\\n' holds a control character; allowed: printable text",
    ),
    # epoch seeds are taken modulo 2**31 - 1: 2**31 - 1 would draw seed 0's epochs
    "a seed that draws another's epochs": (
        "seeds: [0, 2147483647]\n",
        "seeds.1 = 2147483647: is greater than the maximum of 2147483646; allowed: maximum "
        "2147483646",
    ),
    # it passed, trained, then failed in the per-class figure and the verification table
    "a published recipe that does not run": (
        "experiments: {baseline: {seeds: []}}\n",
        "experiments.baseline.seeds = []: the paper compares each published recipe; allowed: "
        "a seed or more",
    ),
    # 1,200 variants in a chain ended in a RecursionError
    "a chain of variants too long to resolve": (
        yaml.safe_dump(
            {
                "experiments": {
                    f"v{i}": {"from": f"v{i - 1}" if i else "improved", "title": "v"}
                    for i in range(1200)
                }
            }
        ),
        "a chain of over 100 variants; allowed: a chain of at most 100 variants",
    ),
}


# a 400-byte "billion laughs" under an unknown key took 1.7 GB and minutes to print
BOMB = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
BOMB += [
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
]
UNUSABLE["an alias bomb"] = (
    "unknown:\n" + "".join(f"  {line}\n" for line in BOMB),
    "its aliases expand to over 100,000 values",
)
# under the limit but long: the message shows its first 80 characters
UNUSABLE["a long value under an unknown key"] = (
    f"unknown: {list(range(5000))}\n",
    "unknown = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 2: "
    "not allowed here",
)


@pytest.mark.parametrize(("text", "expected"), UNUSABLE.values(), ids=UNUSABLE)
def test_an_unusable_value_is_refused_at_load_in_one_line(tmp_path: Path, text, expected):
    user = tmp_path / "user.yaml"
    user.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config([user])
    message = str(caught.value)
    assert expected in message and "\n" not in message and len(message) < 1000


def test_set_changes_one_value_from_the_workflows_command_line(paper: dict) -> None:
    """`snakemake --config set=figures.dpi=99` (a `--config figures=...` would replace all of
    `figures`); several are separated by `;`; `set` is gone from the finished config."""
    merged = _raw(CONFIG)
    update_config(merged, _raw(STUDY))  # the files as the Snakefile merges them
    finished = finish_config(merged | {"set": "figures.dpi=99"})
    assert finished["figures"] == paper["figures"] | {"dpi": 99} and "set" not in finished
    finished = finish_config(
        merged | {"set": "seeds=[0]; experiments.improved.train.label_smoothing=0.1"}
    )
    assert finished["seeds"] == [0]
    assert finished["experiments"]["improved_noaug"]["train"]["label_smoothing"] == 0.1
    with pytest.raises(ConfigError, match=r"figures.dpix = 99: not allowed here; allowed: dpi"):
        finish_config(merged | {"set": "figures.dpix=99"})
