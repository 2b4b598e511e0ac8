"""Load, merge (Snakemake's `update_config`), resolve variants, validate and fingerprint the
configuration.

`finish_config`, which the Snakefile calls too, resolves the experiments declared as variants
(`from: <parent>` plus the keys they change) and validates the result, reporting one line per
problem: `<source>: <dotted.key> = <value>: <what is wrong>; allowed: <...>`.
"""

import copy
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match
from snakemake.utils import update_config

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.errors import ArtifactError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
# What a user tunes, then the published study's facts; any further file holds what differs.
DEFAULTS = (CONFIG_DIR / "config.yaml", CONFIG_DIR / "study.yaml")
SCHEMA_PATH = CONFIG_DIR / "schema.yaml"

# YAML 1.1 (PyYAML, and Snakemake through it) reads `1e-3` as text: its float needs a dot and a
# signed exponent (`1.0e-3`). A `--set` value also accepts the YAML 1.2 spelling.
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")

# JSON Schema counts 32.0 as an integer; a batch size of 32.0 would break range() and DataLoader.
# The Snakefile validates with this validator too, so the workflow and the CLI agree.
_Draft = jsonschema.Draft202012Validator
_VALIDATOR = jsonschema.validators.extend(
    _Draft, type_checker=_Draft.TYPE_CHECKER.redefine("integer", lambda _, v: type(v) is int)
)(yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8")))

# What a variant does not inherit: its name in tables (`title`), which seeds it runs, its parent.
_OWN_KEYS = ("title", "from", "seeds")


class ConfigError(ArtifactError):
    """A configuration problem, in one line: the key (dotted path), its value, what is allowed."""


MAX_VALUES = 100_000  # values in a config file with its aliases expanded (this one: about 600)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader (Snakemake's) that also refuses a key written twice in one mapping,
    and aliases that expand to more than MAX_VALUES values (a few hundred bytes of nested
    aliases, a "billion laughs", expand to gigabytes wherever the value is walked)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        for index, (k, _) in enumerate(node.value):
            if k.value in [earlier.value for earlier, _ in node.value[:index]]:
                raise yaml.MarkedYAMLError(None, None, f"duplicate key {k.value!r}", k.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_document(self, node: yaml.Node) -> Any:
        sizes: dict[int, int] = {}

        def size(n: yaml.Node) -> int:  # each node once: linear in the file, not the expansion
            if id(n) not in sizes:
                sizes[id(n)] = 1  # a node that holds itself counts once
                if isinstance(n, yaml.SequenceNode):
                    sizes[id(n)] += sum(map(size, n.value))
                elif isinstance(n, yaml.MappingNode):
                    sizes[id(n)] += sum(size(k) + size(v) for k, v in n.value)
            return sizes[id(n)]

        if size(node) > MAX_VALUES:
            problem = f"its aliases expand to over {MAX_VALUES:,} values"
            raise yaml.MarkedYAMLError(None, None, problem, node.start_mark)
        return super().construct_document(node)


def read_config_file(path: str | Path) -> dict:
    """One config file as a mapping, read as the CLI and the workflow read it (ConfigError)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_UniqueKeyLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def load_config(paths: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> dict:
    """The defaults, then `paths` (e.g. `config/smoke.yaml`) merged in order, then `overrides`."""
    files = [*DEFAULTS, *map(Path, paths)]
    cfg: dict = {}
    for path in files:
        update_config(cfg, read_config_file(path))
    for item in overrides:
        cfg = apply_override(cfg, item)
    return finish_config(cfg, " + ".join([*map(str, files), *(f"--set {o}" for o in overrides)]))


def finish_config(cfg: Mapping, source: str = "config") -> dict:
    """The merged files `cfg` with its `set` overrides applied, its variants resolved
    (:func:`resolve_variants`), then validated: what the CLI and the workflow (the Snakefile
    calls this) run on.

    `set` is how the workflow's command line changes one value, as the CLI's `--set` does:
    `snakemake --config set=figures.dpi=99` (a `--config figures=...` would replace all of
    `figures`), or several, separated by `;`: `--config 'set=seeds=[0];figures.dpi=99'`.
    """
    finished = dict(cfg)
    overrides = finished.pop("set", None)
    if overrides is not None:
        items = overrides.split(";") if isinstance(overrides, str) else overrides
        for item in items:
            finished = apply_override(finished, str(item).strip())
    if "experiments" in finished:  # else validation names it as missing
        finished["experiments"] = resolve_variants(finished["experiments"], source)
    validate_config(finished, source)
    # in the defaults' key order, whatever order the files and `--config` gave: the same
    # settings are the same rule params (write_config does not rerun for an order)
    order = [key for path in DEFAULTS for key in read_config_file(path)]
    return _home_expanded({key: finished[key] for key in sorted(finished, key=order.index)})


# The path keys a user may start with `~` (their home): expanded once, here, so that every
# rule, the shell and the package see the same absolute path.
PATH_KEYS = (
    ("output_dir",),
    ("data", "cache_dir"),
    ("data", "features_dir"),
    ("data", "folder", "root"),
    ("data", "folder", "archive"),
    ("published", "download_dir"),
)


def _home_expanded(cfg: dict) -> dict:
    """`cfg` with a leading `~` of each of :data:`PATH_KEYS` expanded (a copy where one is)."""
    for keys in PATH_KEYS:
        node = cfg
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, Mapping) else None
        value = node.get(keys[-1]) if isinstance(node, Mapping) else None
        if isinstance(value, str) and value.startswith("~"):
            cfg = _replaced(cfg, list(keys), str(Path(value).expanduser()))
    return cfg


MAX_CHAIN = 100  # variants of variants: far beyond a study's needs


def resolve_variants(experiments: Any, source: str = "config") -> Any:
    """`experiments` with each variant, an entry `{from: <parent>, <the keys it changes>}`,
    resolved: its keys merged onto the parent's resolved section as a config file merges
    (`update_config`: mappings key by key, lists and values replace), chains followed.

    A variant keeps its own `title`, `from` and `seeds` and inherits none of its parent's.
    A null on an optional key (one the schema requires only under a condition) removes it: a
    variant with a linear head sets the token head's `attention_dropout: null`. Entries
    without `from` are unchanged; ConfigError names an unknown parent or a cycle in one line.
    """
    if not isinstance(experiments, Mapping):
        return experiments  # validation names it
    return {name: _resolved(experiments, name, [], source) for name in experiments}


def _resolved(experiments: Mapping, name: str, chain: list[str], source: str) -> Any:
    entry = experiments[name]
    if not isinstance(entry, Mapping) or "from" not in entry:
        return entry
    parent, chain = entry["from"], [*chain, name]
    where = f"{source}: experiments.{name}.from = {_shown(parent)}"
    if not isinstance(parent, str) or parent not in experiments:
        raise ConfigError(f"{where}: unknown experiment; allowed: {', '.join(experiments)}")
    if len(chain) > MAX_CHAIN:  # Python's recursion would end a longer one with a traceback
        allowed = f"a chain of at most {MAX_CHAIN} variants"
        raise ConfigError(f"{where}: a chain of over {MAX_CHAIN} variants; allowed: {allowed}")
    if parent in chain:
        cycle = " -> ".join([*chain[chain.index(parent) :], parent])
        allowed = "a chain of from that ends at an experiment without one"
        raise ConfigError(f"{where}: a cycle, {cycle}; allowed: {allowed}")
    recipe = _resolved(experiments, parent, chain, source)
    recipe = {key: copy.deepcopy(value) for key, value in recipe.items() if key not in _OWN_KEYS}
    update_config(recipe, {k: copy.deepcopy(v) for k, v in entry.items() if k not in _OWN_KEYS})
    own = {key: copy.deepcopy(entry[key]) for key in _OWN_KEYS if key in entry}
    return _unset(own | recipe, _VALIDATOR.schema["$defs"]["experiment"])


def _unset(section: Mapping, schema: Mapping) -> dict:
    """`section` without its null keys that `schema` defines but does not always require (a
    key only a `then` requires, such as a token head's dropouts), at any depth. A null on a
    misspelt key stays, for validation to name."""
    kept = {}
    for key, value in section.items():
        if value is None and key in _defined(schema) and key not in schema.get("required", ()):
            continue
        sub = schema.get("properties", {}).get(key, {})
        kept[key] = _unset(value, sub) if isinstance(value, Mapping) else value
    return kept


def _defined(schema: Mapping) -> set[str]:
    """The keys `schema` defines, with those of its `then` (nested conditions included)."""
    then = schema.get("then")
    return set(schema.get("properties", {})) | (_defined(then) if then else set())


def experiments_to_run(experiments: Mapping) -> list[str]:
    """The experiments the workflow runs, in config order: all but those with `seeds: []`."""
    return [name for name, section in experiments.items() if section.get("seeds") != []]


def experiment_seeds(cfg: Mapping, name: str) -> list[int]:
    """The seeds experiment `name` runs with: its own `seeds`, else the top-level list."""
    own = experiment_config(cfg, name).get("seeds")
    return list(cfg["seeds"] if own is None else own)


def runs_to_do(cfg: Mapping) -> list[tuple[str, int]]:
    """Every (experiment, seed) the workflow trains, in config order, seeds in their order."""
    names = experiments_to_run(cfg["experiments"])
    return [(name, seed) for name in names for seed in experiment_seeds(cfg, name)]


def experiment_source(cfg: Mapping, name: str) -> str:
    """The data source experiment `name` reads: its own `data.source`, else `data.source`."""
    own = experiment_config(cfg, name).get("data", {})
    return own.get("source", cfg["data"]["source"])


def run_seed(cfg: Mapping) -> int:
    """The one seed of a run's settings (:func:`run_settings`); ConfigError when `cfg` holds
    several, since a run trains one."""
    seeds = cfg["seeds"]
    if len(seeds) != 1:
        raise ConfigError(
            f"seeds = {json.dumps(seeds)}: a run trains one seed; allowed: one of them "
            "(the CLI's --seed, or the workflow's {experiment}/seed<N> run folders)"
        )
    return seeds[0]


def apply_override(cfg: dict, item: str) -> dict:
    """`cfg` with `key.path=value` (a YAML 1.2 value; a list item by index) merged onto it."""
    key, sep, text = item.partition("=")
    if not sep or not all(key.strip().split(".")):
        raise ConfigError(f"--set {item!r}: not of the form key.path=value")
    try:
        value = float(text) if _FLOAT_12.match(text.strip()) else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    return _replaced(cfg, key.strip().split("."), value)


def _replaced(node: Any, keys: list[str], value: Any, where: str = "--set ") -> Any:
    if not keys:
        return value
    key, where = keys[0], f"{where}{keys[0]}"
    if isinstance(node, list) and key.isdigit() and int(key) < len(node):
        i = int(key)
        return [*node[:i], _replaced(node[i], keys[1:], value, f"{where}."), *node[i + 1 :]]
    # only the last key may be new, except under a variant, which inherits what it leaves out
    if isinstance(node, dict) and key not in node and keys[1:] and "from" not in node:
        raise ConfigError(f"{where}: no such key; allowed: {', '.join(map(str, node))}")
    node = node if isinstance(node, dict) else {}
    return {**node, key: _replaced(node.get(key), keys[1:], value, f"{where}.")}


def validate_config(cfg: Any, source: str = "config") -> None:
    """Check a merged config against `config/schema.yaml` and the rules it cannot express."""
    errors = list(_VALIDATOR.iter_errors(cfg))
    if errors:
        # A variant repeats its parent's problems: name one where it starts (the experiment
        # fewest `from` steps from a root), and count a problem repeated that way once.
        depths = _variant_depths(cfg)
        depth = {id(e): depths.get(_experiment_of(e), 0) for e in errors}
        first = best_match(e for e in errors if depth[id(e)] == min(depth.values()))
        count = len({_problem(e) for e in errors})
        more = f" (and {count - 1} more problems)" if count > 1 else ""
        raise ConfigError(f"{source}: {_describe(first)}{more}")
    for problem in _semantic_problems(cfg):
        raise ConfigError(f"{source}: {problem}")  # the first one


def _experiment_of(error: ValidationError) -> Any:
    path = list(error.absolute_path)
    return path[1] if len(path) > 1 and path[0] == "experiments" else None


def _problem(error: ValidationError) -> tuple:
    """An error as where it is within its experiment (any experiment), and what it says."""
    path = list(error.absolute_path)
    return (*(path[2:] if _experiment_of(error) is not None else path), error.message)


def _variant_depths(cfg: Any) -> dict[str, int]:
    """Experiment name -> its number of `from` steps to an experiment without one."""
    experiments = cfg.get("experiments") if isinstance(cfg, Mapping) else None
    if not isinstance(experiments, Mapping):
        return {}
    depths = {}
    for name in experiments:
        chain = [name]
        while isinstance(entry := experiments.get(chain[-1]), Mapping) and "from" in entry:
            if not isinstance(entry["from"], str) or entry["from"] in chain:
                break
            chain.append(entry["from"])
        depths[name] = len(chain) - 1
    return depths


def _describe(error: ValidationError) -> str:
    """One jsonschema error as `<dotted.key> = <value>: <what is wrong>; allowed: <...>`."""
    path, value, limit = list(error.absolute_path), error.instance, error.validator_value
    wrong, allowed = error.message.removeprefix(f"{value!r} "), f"{error.validator} {limit}"
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        known = list(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        key = next(k for k in value if not (k in known or any(re.search(p, k) for p in patterns)))
        path, value, wrong = [*path, key], value[key], "not allowed here"
        allowed = ", ".join(known) or "names matching " + " or ".join(patterns)
    elif error.validator == "required":
        missing = next(k for k in limit if k not in value)
        return f"{'.'.join(map(str, [*path, missing]))}: missing; required here: {', '.join(limit)}"
    elif error.validator in ("enum", "type"):
        wrong = "not allowed" if error.validator == "enum" else "wrong type"
        allowed = ", ".join(map(str, limit)) if isinstance(limit, list) else limit
        if isinstance(value, str) and _FLOAT_12.match(value):
            wrong += f" (YAML 1.1 reads {value} as text: write a dot and a signed exponent, 1.0e-3)"
    return f"{'.'.join(map(str, path))} = {_shown(value)}: {wrong}; allowed: {allowed}"


def _shown(value: Any) -> str:
    """`value` as a message prints it: 80 characters of its JSON (null, true), or of its repr
    for text. Config files expand to at most MAX_VALUES values (the loader), so this is quick."""
    return (repr(value) if isinstance(value, str) else json.dumps(value, default=str))[:80]


def _unusable_values(node: Any, where: str = "") -> Iterator[str]:
    """Each key or string value (at any depth) holding a control character, and each number
    that is not finite. A path or title with a newline reaches the shell, TeX and the console as
    something else (and a key "baseline\\n" passes the schema's pattern, whose `$` matches
    before a final newline); JSON Schema's comparisons are false for NaN, so a NaN learning
    rate or an infinite tolerance would pass it."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(key, str) and _has_control(key):
                problem = "holds a control character; allowed: printable text"
                yield f"{where or 'top level'}: key {key!r} {problem}"
            yield from _unusable_values(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _unusable_values(value, f"{where}.{index}")
    elif isinstance(node, str) and _has_control(node):
        yield f"{where} = {node!r}: holds a control character; allowed: printable text"
    elif isinstance(node, float) and not math.isfinite(node):
        yield f"{where} = {node!r}: not a finite number; allowed: finite numbers"


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _semantic_problems(cfg: dict) -> Iterator[str]:
    """What the schema cannot express: no control characters, finite numbers, unique groups, a
    folder to read, epochs and experiments named."""
    yield from _unusable_values(cfg)
    for name, experiment in cfg["experiments"].items():
        source = experiment.get("data", {}).get("source")
        if source == "folder" and not cfg["data"]["folder"]["root"]:
            where = f"experiments.{name}.data.source = 'folder'"
            yield f"{where}: data.folder.root is null; allowed: the unpacked folder's path"
        groups = experiment["trainable"]
        for index, group in enumerate(groups):
            where = f"experiments.{name}.trainable.{index}"
            if group["name"] in [earlier["name"] for earlier in groups[:index]]:
                yield f"{where}.name = {group['name']!r}: repeated; allowed: unique group names"
            for module in group["modules"]:
                if any(module in earlier["modules"] for earlier in groups[:index]):
                    yield f"{where}.modules: {module!r} is in an earlier group; allowed: one group"
    for name, run in cfg["published"]["runs"].items():
        if name in cfg["experiments"] and not experiment_seeds(cfg, name):
            where = f"experiments.{name}.seeds = []"
            yield f"{where}: the paper compares each published recipe; allowed: a seed or more"
        if run["best_epoch"] > len(run["epochs"]):
            where, epochs = f"published.runs.{name}.best_epoch", len(run["epochs"])
            yield f"{where} = {run['best_epoch']}: past the epochs listed; allowed: 1..{epochs}"
    for index, entry in enumerate(cfg["discrepancies"]):
        for position, name in enumerate(entry["affects"]):
            if name not in cfg["experiments"]:
                where = f"discrepancies.{index}.affects.{position} = {name!r}"
                yield f"{where}: unknown experiment; allowed: {', '.join(cfg['experiments'])}"
    yield from _decompose_problems(cfg["study"]["decompose"], cfg["experiments"])


def _decompose_problems(decompose: Mapping, experiments: Mapping) -> Iterator[str]:
    """study.decompose names experiments, and each leave-one-out one is a variant of its recipe."""
    names = [("recipe", decompose["recipe"]), ("against", decompose["against"])]
    names += [(f"leave_one_out.{i}", name) for i, name in enumerate(decompose["leave_one_out"])]
    for key, name in names:
        where = f"study.decompose.{key} = {name!r}"
        if name not in experiments:
            yield f"{where}: unknown experiment; allowed: {', '.join(experiments)}"
        elif key.startswith("leave") and experiments[name].get("from") != decompose["recipe"]:
            yield f"{where}: not a variant of {decompose['recipe']!r}; allowed: its variants"


def experiment_config(cfg: Mapping, name: str) -> dict:
    """A copy of `cfg["experiments"][name]`; ConfigError lists the experiments if there is none."""
    experiments = cfg.get("experiments") or {}
    if name not in experiments:
        raise ConfigError(
            f"experiments.{name}: unknown experiment; allowed: {', '.join(experiments)}"
        )
    return copy.deepcopy(experiments[name])


def run_identity(cfg: Mapping, name: str) -> dict:
    """Everything that determines the numbers of run settings `cfg` (:func:`run_settings`, one
    seed) for experiment `name`, its checkpoint digest: the seed and the source it reads with
    that source's section, not the other sources, the cache's place, how the zip is fetched
    (`url`, `md5`, `archive`: the store's fingerprint covers the images), the title, the parent
    a variant names (its resolved settings count), `eval_batch_size` (batch means use the
    training batch), `feature_cache` (tests/test_features.py), the published `selection` on
    the validation images (a held-out selection counts), nor `performance` but TF32 matmuls
    (cuDNN's TF32 convolutions stay at PyTorch's default, as in the notebooks)."""
    experiment = experiment_config(cfg, name)
    for key in (*_OWN_KEYS, "data"):
        experiment.pop(key, None)
    train = experiment.get("train", {})
    for key in ("eval_batch_size", "feature_cache"):
        train.pop(key, None)
    if train.get("selection") == "validation":  # as published: the identity before the option
        train.pop("selection")
        train.pop("holdout_per_class", None)
    source = experiment_source(cfg, name)
    data = {key: cfg["data"][key] for key in ("image_size", "input_size")}
    section = {k: v for k, v in cfg["data"][source].items() if k not in ("url", "md5", "archive")}
    data |= {"source": source, source: section}
    identity = {"seed": run_seed(cfg), "deterministic": cfg["deterministic"], "data": data}
    identity |= {"normalize": cfg["normalize"], "experiment": experiment}
    if cfg["performance"]["float32_matmul_precision"] != "highest":
        identity["float32_matmul_precision"] = cfg["performance"]["float32_matmul_precision"]
    return identity


def run_settings(cfg: Mapping, name: str, seed: int) -> dict:
    """What the run of experiment `name` with `seed` reads (the run folder's config.yaml),
    shaped like the config: `seeds` is `[seed]` and `data.source` the experiment's source."""
    if seed not in experiment_seeds(cfg, name):
        allowed = ", ".join(map(str, experiment_seeds(cfg, name))) or "none (seeds: [])"
        raise ConfigError(f"experiments.{name}: seed {seed} is not one it runs; allowed: {allowed}")
    sections = ("device", "deterministic", "data", "normalize", "performance")
    settings = {key: copy.deepcopy(cfg[key]) for key in sections} | {"seeds": [seed]}
    settings["data"]["source"] = experiment_source(cfg, name)
    experiment = experiment_config(cfg, name)
    experiment.pop("seeds", None)  # the run's seed is the top-level one
    return settings | {"experiments": {name: experiment}}


def settings_digest(cfg: Mapping, name: str, seed: int) -> str:
    """The digest of the settings of the run of `name` with `seed` (its identity but the data):
    what its provenance.json records as `config_digest`."""
    return config_digest(run_identity(run_settings(cfg, name, seed), name))


def config_digest(cfg: Mapping) -> str:
    """SHA-256 of the canonical JSON (sorted keys): any value change counts, even `1` vs `1.0`."""
    text = json.dumps(
        cfg, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dump_config(cfg: Mapping, path: Path) -> None:
    """Write the configuration as YAML in its key order, atomically: loaded again, it gives the
    same configuration (a variant writes a null for each key of its parent it removed)."""
    cfg = dict(cfg)
    experiments = cfg.get("experiments") or {}
    cfg["experiments"] = {
        name: _with_removals(experiments[entry["from"]], entry, _OWN_KEYS)
        if isinstance(entry, Mapping) and entry.get("from") in experiments
        else entry
        for name, entry in experiments.items()
    }
    text = yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, default_flow_style=False)
    atomic.write_text(path, text)


def _with_removals(parent: Mapping, section: Mapping, own: Sequence[str] = ()) -> dict:
    """`section` with a null for each key of `parent` (but `own`) it lacks, at any depth."""
    out = dict(section)
    for key, value in parent.items():
        if key not in section and key not in own:
            out[key] = None
        elif isinstance(value, Mapping) and isinstance(section.get(key), Mapping):
            out[key] = _with_removals(value, section[key])
    return out
