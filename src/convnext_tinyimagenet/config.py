"""Load, merge, override, validate and fingerprint the YAML configuration.

`config/config.yaml` is the paper's configuration; an override file such as `config/smoke.yaml`
holds only what differs and is deep-merged onto it, as Snakemake does with `--configfile`.
`--set key.path=value` overrides come last. The merged result is checked against
`config/schema.yaml` (the same JSON Schema Snakemake validates with) and then by a few semantic
checks the schema cannot express. Every failure is one `ConfigError` line that names the file(s),
the dotted key, the value and what is allowed.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.errors import ArtifactError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
DEFAULT_CONFIG = CONFIG_DIR / "config.yaml"
SCHEMA_PATH = CONFIG_DIR / "schema.yaml"

# YAML 1.1 (PyYAML, and Snakemake through it) reads `1e-3` as a *string*: its float needs a dot
# and a signed exponent (`1.0e-3`). Command-line overrides also accept the YAML 1.2 spellings.
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_MAX_VALUE_CHARS = 80


class ConfigError(ArtifactError):
    """A configuration problem, in one line: the key (dotted path), its value, what is allowed."""


class _FileLoader(yaml.SafeLoader):
    """PyYAML's safe loader that rejects a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


class _OverrideLoader(yaml.SafeLoader):
    """Safe loader for `--set` values that also reads plain `1e-3` as a float (YAML 1.2)."""


_OverrideLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _strict_integer(_checker: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# JSON Schema counts 32.0 as an integer; a batch size of 32.0 would break range() and DataLoader.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)


# --------------------------------------------------------------------------- loading and merging


def load_config(
    paths: Sequence[str | Path] = (DEFAULT_CONFIG,), overrides: Sequence[str] = ()
) -> dict:
    """Load the configuration: the first file, later files deep-merged onto it, then overrides.

    Args:
        paths: YAML files; the first is the base (normally `config/config.yaml`), each later one
            (e.g. `config/smoke.yaml`) holds only what differs and is merged with `deep_merge`.
        overrides: `key.path=value` strings applied last (see `parse_override`).

    Returns:
        The merged, validated configuration.

    Raises:
        ConfigError: a file is missing or is not valid YAML, an override is malformed, or the
            result does not satisfy `config/schema.yaml` and the semantic checks.
    """
    if not paths:
        raise ConfigError("no configuration file given")
    cfg: dict = {}
    for path in paths:
        cfg = deep_merge(cfg, _read_yaml(Path(path)))
    cfg = apply_overrides(cfg, overrides)
    source = " + ".join(str(path) for path in paths)
    if overrides:
        source += " + --set " + " ".join(overrides)
    validate_config(cfg, source=source)
    return cfg


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = yaml.load(text, Loader=_FileLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{path}{_yaml_location(exc)}: invalid YAML: {_yaml_problem(exc)}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, not {_type_name(data)}"
        )
    return data


def _yaml_location(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f": line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ", ".join(part for part in parts if part)
    return text or str(exc).splitlines()[0]


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Merge `override` onto `base` into a new dict, as Snakemake merges `--configfile`.

    Nested dicts merge key by key; every other value (lists and null included) replaces the base
    value. Neither input is modified.

    Args:
        base: the configuration merged onto.
        override: what differs.

    Returns:
        A new dict sharing no mutable value with either input.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# --------------------------------------------------------------------------- overrides


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split a `key.path=value` override into its key path and parsed value.

    The value is read as YAML (`64` -> int, `true` -> bool, `null` -> None, `[1, 2]` -> list,
    `{p: 0.1}` -> dict), except that a plain `1e-3` is a float as in YAML 1.2 (PyYAML would
    return the string '1e-3'); quote it (`'1e-3'`) to keep a string.

    Args:
        item: e.g. `experiments.baseline.train.batch_size=64`.

    Returns:
        The key path (e.g. `["experiments", "baseline", "train", "batch_size"]`) and the value.

    Raises:
        ConfigError: no `=`, an empty key part, no value, or a value that is not valid YAML.
    """
    key, sep, text = item.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(keys):
        raise ConfigError(f"override {item!r} is not of the form key.path=value")
    if not text.strip():
        raise ConfigError(f"override {item!r} has no value (write {key.strip()}=null for null)")
    try:
        value = yaml.load(text, Loader=_OverrideLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: invalid YAML value: {_yaml_problem(exc)}") from None
    return keys, value


def apply_overrides(cfg: Mapping, overrides: Sequence[str]) -> dict:
    """Apply `key.path=value` overrides to a copy of `cfg`.

    Each override sets (replaces) one value; a missing last key is added, so a misspelt key is
    reported by validation as unknown. A list element is addressed by its index
    (`experiments.improved.trainable.0.lr=1e-4`), as in validation messages.

    Args:
        cfg: the configuration; not modified.
        overrides: strings accepted by `parse_override`, applied in order.

    Returns:
        A new configuration dict.

    Raises:
        ConfigError: an override is malformed or goes through a value that is not a mapping.
    """
    result = copy.deepcopy(dict(cfg))
    for item in overrides:
        keys, value = parse_override(item)
        parent = _container_at(result, keys[:-1], item)
        _set_item(parent, keys, value, item)
    return result


def _container_at(cfg: dict, keys: list[str], item: str) -> Any:
    node: Any = cfg
    for depth in range(len(keys)):
        if isinstance(node, dict):
            node = node[_dict_key(node, keys[: depth + 1], item)]
        else:
            node = node[_list_index(node, keys[: depth + 1], item)]
    if not isinstance(node, dict | list):
        where = ".".join(keys)
        hint = f"; set it whole, e.g. {where}={{...}}" if node is None else ""
        raise ConfigError(f"override {item!r}: {where!r} is {_show(node)}, not a mapping{hint}")
    return node


def _dict_key(node: dict, keys: list[str], item: str) -> str:
    key = keys[-1]
    if key not in node:
        known = [str(name) for name in node]
        guess = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {guess[0]!r}? " if guess else ""
        raise ConfigError(
            f"override {item!r}: unknown key {'.'.join(keys)!r} ({hint}allowed here: "
            f"{', '.join(known)})"
        )
    return key


def _set_item(parent: dict | list, keys: list[str], value: Any, item: str) -> None:
    if isinstance(parent, dict):
        parent[keys[-1]] = value
    else:
        parent[_list_index(parent, keys, item)] = value


def _list_index(node: Any, keys: list[str], item: str) -> int:
    parent = ".".join(keys[:-1])
    if not isinstance(node, list):
        raise ConfigError(f"override {item!r}: {parent!r} is {_show(node)}, not a mapping")
    key = keys[-1]
    if not key.isdigit() or int(key) >= len(node):
        raise ConfigError(
            f"override {item!r}: {parent!r} is a list of length {len(node)}; "
            f"{key!r} is not an index ({f'0..{len(node) - 1}' if node else 'none'})"
        )
    return int(key)


# --------------------------------------------------------------------------- validation


@functools.cache
def _schema() -> dict:
    with SCHEMA_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def validate_config(cfg: Any, source: str = "config") -> None:
    """Check a merged configuration against `config/schema.yaml` and the semantic rules.

    Args:
        cfg: the merged configuration.
        source: what it was loaded from (file names), the prefix of the error message.

    Raises:
        ConfigError: one line for the most relevant problem, e.g.
            `config: experiments.baseline.train.batch_size = 0 is out of range (minimum 1)`.
    """
    errors = list(_Validator(_schema()).iter_errors(cfg))
    if errors:
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {describe_error(best_match(errors))}{more}")
    problem = _semantic_problem(cfg)
    if problem:
        raise ConfigError(f"{source}: {problem}")


def describe_error(error: ValidationError) -> str:
    """Rewrite one jsonschema error for people: dotted key, value and what is allowed.

    Args:
        error: an error from a validator of `config/schema.yaml`.

    Returns:
        One line without the source prefix.
    """
    path = list(error.absolute_path)
    kind = error.validator
    if kind == "additionalProperties":
        return _describe_unknown_key(error, path)
    if kind == "required":
        return _describe_missing_key(error, path)
    where = f"{_dotted(path)} = {_show(error.instance)}"
    if kind in ("enum", "const"):
        allowed = error.validator_value if kind == "enum" else [error.validator_value]
        return f"{where} is not allowed (allowed: {', '.join(map(str, allowed))})"
    if kind == "type":
        return f"{where} has the wrong type (expected {_expected_type(error)}){_hint(error)}"
    if kind in _RANGE_WORDS:
        return f"{where} is out of range ({_RANGE_WORDS[kind]} {error.validator_value})"
    if kind == "pattern":
        about = error.schema.get("description")
        return f"{where} does not match {error.validator_value}" + (f" ({about})" if about else "")
    if kind in _SIZE_WORDS:
        problem, limit = _SIZE_WORDS[kind]
        return f"{where} {problem} ({limit} {error.validator_value})"
    return f"{where} is not allowed ({error.message})"


_RANGE_WORDS = {
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "must be greater than",
    "exclusiveMaximum": "must be less than",
}
_SIZE_WORDS = {
    "minItems": ("has too few items", "minimum"),
    "maxItems": ("has too many items", "maximum"),
    "minLength": ("is too short", "minimum length"),
    "minProperties": ("has too few entries", "minimum"),
}


def _describe_unknown_key(error: ValidationError, path: list) -> str:
    known = list(error.schema.get("properties", {}))
    patterns = list(error.schema.get("patternProperties", {}))
    extra = [
        key
        for key in error.instance
        if key not in known and not any(re.search(pattern, str(key)) for pattern in patterns)
    ]
    key = extra[0] if extra else "?"
    allowed = ("names matching " + " or ".join(patterns)) if patterns else ", ".join(known)
    guess = difflib.get_close_matches(str(key), known, n=1)
    hint = f"did you mean {guess[0]!r}? " if guess else ""
    return f"unknown key {_dotted([*path, key])!r} ({hint}allowed here: {allowed})"


def _describe_missing_key(error: ValidationError, path: list) -> str:
    missing = [key for key in error.validator_value if key not in error.instance]
    key = missing[0] if missing else "?"
    about = error.schema.get("properties", {}).get(key, {}).get("description")
    return f"missing key {_dotted([*path, key])!r}" + (f": {about}" if about else "")


def _expected_type(error: ValidationError) -> str:
    expected = error.validator_value
    return " or ".join(expected if isinstance(expected, list) else [expected])


def _hint(error: ValidationError) -> str:
    value = error.instance
    if isinstance(value, str) and _FLOAT_12.match(value.strip()):
        mantissa, _, exponent = value.strip().lower().partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        if exponent[:1] not in "+-":
            exponent = "+" + exponent
        return f"; YAML reads {value} as text: write {mantissa}e{exponent}"
    return ""


def _semantic_problem(cfg: dict) -> str | None:
    """The first problem the schema cannot express, or None."""
    checks = [_check_data_source(cfg)]
    for name, experiment in cfg["experiments"].items():
        checks.append(_check_head(name, experiment["model"]))
        checks.append(_check_trainable(name, experiment["trainable"]))
    for name, run in cfg["published"]["runs"].items():
        checks.append(_check_published_run(name, run))
    for index, entry in enumerate(cfg["discrepancies"]):
        checks.append(_check_affects(index, entry, cfg["experiments"]))
    return next((problem for problem in checks if problem), None)


def _check_data_source(cfg: dict) -> str | None:
    data = cfg["data"]
    if data["source"] == "folder" and data["folder"]["root"] is None:
        return "data.folder.root = null, but data.source = 'folder' needs the folder's path"
    return None


def _check_head(name: str, model: dict) -> str | None:
    if model["head"] == "token_attention":
        return None
    for key in ("attention_dropout", "output_dropout"):
        if key in model:
            return (
                f"experiments.{name}.model.{key} = {_show(model[key])} is not allowed with "
                f"head {model['head']!r} (only with head 'token_attention')"
            )
    return None


def _check_trainable(name: str, groups: list[dict]) -> str | None:
    seen_names: set[str] = set()
    seen_modules: dict[str, int] = {}
    for index, group in enumerate(groups):
        where = f"experiments.{name}.trainable.{index}"
        if group["name"] in seen_names:
            return f"{where}.name = {group['name']!r} is not allowed (group names must be unique)"
        seen_names.add(group["name"])
        for module in group["modules"]:
            if module in seen_modules:
                return (
                    f"{where}.modules: {module!r} is not allowed (already in group "
                    f"{seen_modules[module]}; a parameter can be in one group only)"
                )
            seen_modules[module] = index
    return None


def _check_published_run(name: str, run: dict) -> str | None:
    epochs = len(run["epochs"])
    if run["best_epoch"] > epochs:
        return (
            f"published.runs.{name}.best_epoch = {run['best_epoch']} is out of range "
            f"(maximum {epochs}, the number of epochs listed)"
        )
    return None


def _check_affects(index: int, entry: dict, experiments: dict) -> str | None:
    for position, name in enumerate(entry["affects"]):
        if name not in experiments:
            return (
                f"discrepancies.{index}.affects.{position} = {name!r} is not allowed "
                f"(allowed: {', '.join(experiments)})"
            )
    return None


# --------------------------------------------------------------------------- access and output


def experiment_config(cfg: Mapping, name: str) -> dict:
    """Return a copy of one experiment's settings, `cfg["experiments"][name]`.

    Args:
        cfg: a validated configuration.
        name: the experiment, e.g. `baseline`.

    Raises:
        ConfigError: no experiment of that name; the message lists the available ones.
    """
    experiments = cfg.get("experiments") or {}
    if name not in experiments:
        available = ", ".join(experiments) or "none"
        raise ConfigError(f"unknown experiment {name!r} (available: {available})")
    return copy.deepcopy(experiments[name])


# Experiment settings that change no number a run produces beyond float rounding: its display
# title, and two speed settings (the validation batch: batch means are taken at the training
# batch size; the baseline's feature cache: tests/test_features.py). They are not part of the
# run's checkpoint identity, so changing them resumes (or reuses) the run instead of retraining.
NON_NUMERIC_EXPERIMENT_KEYS = (("title",), ("train", "eval_batch_size"), ("train", "feature_cache"))


def run_identity(cfg: Mapping, name: str) -> dict:
    """Everything that determines the numbers of experiment `name`'s run.

    The seed, determinism, data (not where its cache lives), normalisation and the experiment's
    section without :data:`NON_NUMERIC_EXPERIMENT_KEYS`; of the `performance` section only TF32
    matmuls (``float32_matmul_precision`` other than ``highest``), the one setting there that
    changes numerics (cuDNN's TF32 convolutions stay at PyTorch's default, as in the notebooks).
    The run's checkpoint digest (runner.run_digest) is made from it: a change elsewhere in the
    run's settings reruns the workflow's job, which then reuses its finished checkpoint.
    """
    experiment = experiment_config(cfg, name)
    for *parents, key in NON_NUMERIC_EXPERIMENT_KEYS:
        section = experiment
        for parent in parents:
            section = section.get(parent) or {}
        section.pop(key, None)
    identity = {
        "seed": cfg["seed"],
        "deterministic": cfg["deterministic"],
        "data": {k: v for k, v in cfg["data"].items() if k != "cache_dir"},
        "normalize": cfg["normalize"],
        "experiment": experiment,
    }
    matmul = cfg["performance"]["float32_matmul_precision"]
    if matmul != "highest":
        identity["float32_matmul_precision"] = matmul
    return identity


# The config sections one run reads, besides its own experiment's section.
RUN_SECTIONS = ("seed", "device", "deterministic", "data", "normalize", "performance")


def run_settings(cfg: Mapping, name: str) -> dict:
    """What experiment `name`'s run reads: :data:`RUN_SECTIONS` and its own experiment section.

    Shaped like the whole config (with one experiment), so that the runner reads it the same
    way; it is the workflow's `run_experiment` params and the run folder's config.yaml.
    """
    settings = {key: copy.deepcopy(cfg[key]) for key in RUN_SECTIONS}
    return settings | {"experiments": {name: experiment_config(cfg, name)}}


def config_digest(cfg: Mapping) -> str:
    """SHA-256 of the configuration's canonical JSON (sorted keys, no spaces).

    Key order does not matter; any value change does (so does `1` vs `1.0`). Used to refuse
    resuming a run under a different configuration.

    Args:
        cfg: a configuration of JSON types (as loaded from YAML).

    Returns:
        64 lower-case hex digits.
    """
    text = json.dumps(
        cfg, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_text(cfg: Mapping) -> str:
    """The configuration as YAML text (key order kept)."""
    return yaml.safe_dump(dict(cfg), sort_keys=False, allow_unicode=True, default_flow_style=False)


def dump_config(cfg: Mapping, path: Path) -> None:
    """Write the configuration as YAML, atomically (a temporary file, then `os.replace`)."""
    atomic.write_text(path, config_text(cfg))


# --------------------------------------------------------------------------- formatting helpers


def _dotted(path: Sequence) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _type_name(value: Any) -> str:
    if value is None:
        return "an empty document"
    return {dict: "a mapping", list: "a list", str: "a string"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    """A value as a person would write it: strings quoted, None as null, short."""
    if isinstance(value, str):
        text = repr(value)
    elif value is None or isinstance(value, bool | int | float | list | dict):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text
