"""Command line: `python -m convnext_tinyimagenet {prepare-data,train,evaluate} ...`.

Every command takes the same config options: `--config` (repeatable; later files are merged onto
earlier ones, e.g. `--config config/config.yaml --config config/smoke.yaml`) and `--set
key=value` (repeatable, validated like the files). Errors a person can fix end the program with
one line naming the file, key or value at fault, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import paths
from .checkpoint import CheckpointError
from .config import DEFAULT_CONFIG, ConfigError, experiment_config, load_config
from .data import DataError
from .figures import ResultFileError
from .models import ModelError
from .paper import PaperError
from .published import PublishedError
from .runner import RunError
from .verification import VerificationError

USER_ERRORS = (
    ConfigError,
    DataError,
    ModelError,
    RunError,
    CheckpointError,
    PublishedError,
    ResultFileError,
    PaperError,
    VerificationError,
)


def _common(parser: argparse.ArgumentParser, *, experiment: bool) -> None:
    parser.add_argument(
        "--config",
        action="append",
        type=Path,
        metavar="FILE",
        help=f"config file; repeat to merge several, later wins (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set experiments.baseline.train.batch_size=64",
    )
    if experiment:
        parser.add_argument(
            "--experiment", required=True, help="experiment name in the config (baseline, improved)"
        )
        parser.add_argument(
            "--out", type=Path, help="output folder (default: results/<experiment>)"
        )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all commands."""
    parser = argparse.ArgumentParser(
        prog="python -m convnext_tinyimagenet",
        description="Reproduce ConvNeXt-Tiny on TinyImageNet: baseline vs improved.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    prepare = commands.add_parser(
        "prepare-data",
        help="decode the dataset once into the on-disk cache",
        description="Decode the configured dataset into the memory-mappable cache and print a "
        "summary (the same cache every experiment reads).",
    )
    _common(prepare, experiment=False)
    prepare.add_argument("--out", type=Path, help="also write the data summary to this JSON")
    train = commands.add_parser(
        "train",
        help="train one experiment (resumes from its last complete epoch)",
        description="Train one experiment into --out: metrics.jsonl, checkpoints/, "
        "model.safetensors (best epoch), config.yaml, provenance.json. Rerunning the same "
        "command after an interruption resumes from the last complete epoch.",
    )
    _common(train, experiment=True)
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a trained experiment on the validation split",
        description="Evaluate --out/model.safetensors: predictions.csv and summary.json.",
    )
    _common(evaluate, experiment=True)
    step = commands.add_parser(
        "step",
        help="one workflow step (what a Snakemake rule runs)",
        description="Run one step of the workflow by its rule name; outputs go under the "
        "config's output_dir. Steps: " + ", ".join(STEPS),
    )
    step.add_argument("name", choices=sorted(STEPS), metavar="NAME", help="the step's rule name")
    _common(step, experiment=False)
    step.add_argument(
        "--experiment",
        help="experiment name, for per-experiment steps (fetch_published: the published run)",
    )
    _add_verify(commands)
    bench = commands.add_parser(
        "bench",
        help="benchmark the published notebooks' pipeline against this project's",
        description="Measure data loading and training steps of the reference pipeline (PIL "
        "transforms, 2 loader workers, batch 32) and of this project's, on synthetic data, in "
        "one process; print a table and write JSON.",
    )
    _common(bench, experiment=False)
    bench.add_argument(
        "--size",
        choices=("small", "gpu"),
        default="small",
        help="small: CPU-sized (about a minute); gpu: 224x224 input, 200 classes (minutes)",
    )
    bench.add_argument("--device", default="auto", help="auto, cpu or cuda")
    bench.add_argument(
        "--out", type=Path, help="JSON path (default: benchmarks/results/bench-<device>.json)"
    )
    return parser


def _add_verify(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser(
        "verify",
        help="check the published claims, the reruns against them, and the checksums",
        description="Recompute the published claims from the published prediction CSVs "
        "(sha256-verified), compare each rerun with its band (config verification.reruns), "
        "print one table and write <output_dir>/verification.json. Exit status 1 when a claim "
        "fails or (with --check) a checksummed file changed; 2 when something is missing.",
    )
    _common(verify, experiment=False)
    mode = verify.add_mutually_exclusive_group()
    mode.add_argument(
        "--published-only",
        action="store_true",
        help="check the published files alone (no rerun needed; writes "
        "<output_dir>/published/verification.json)",
    )
    mode.add_argument(
        "--write-table",
        action="store_true",
        help="write tables/verification.{md,tex} for the paper (published and reruns, no "
        "checksums) and exit 0 whatever the verdicts, which the table records",
    )
    mode.add_argument(
        "--write-checksums",
        action="store_true",
        help="write <output_dir>/SHA256SUMS over every file that goes into the paper",
    )
    verify.add_argument(
        "--check",
        action="store_true",
        help="also recompute <output_dir>/SHA256SUMS; fail naming each changed or missing file",
    )
    verify.add_argument("--out", type=Path, help="where to write the verification JSON")


def _load(args: argparse.Namespace) -> dict:
    return load_config(args.config or [DEFAULT_CONFIG], args.overrides)


def cmd_prepare_data(args: argparse.Namespace) -> int:
    from .data import load_store

    cfg = _load(args)
    store = load_store(cfg["data"], progress=not args.no_progress)
    print(json.dumps(store.info, indent=2))
    if args.out:
        from . import atomic

        atomic.write_json(args.out, store.info)
    return 0


def _experiment_args(args: argparse.Namespace) -> tuple[dict, Path]:
    cfg = _load(args)
    experiment_config(cfg, args.experiment)
    return cfg, args.out or Path("results") / args.experiment


def cmd_train(args: argparse.Namespace) -> int:
    from .runner import train_experiment

    cfg, out = _experiment_args(args)
    train_experiment(cfg, args.experiment, out, progress=not args.no_progress)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .runner import evaluate_experiment

    cfg, out = _experiment_args(args)
    evaluate_experiment(cfg, args.experiment, out, progress=not args.no_progress)
    return 0


def _needs_store(function):
    """Wrap a step that also takes the decoded data store (the image grids)."""

    def step(cfg: dict, experiment: str) -> object:
        from .data import load_store

        return function(cfg, experiment, load_store(cfg["data"], progress=False))

    return step


def _steps() -> dict:
    """Step name (the Snakemake rule's name) -> callable(cfg, experiment)."""
    from . import fidelity, figures, paper, published, tables

    return {
        "fetch_published": lambda cfg, run: (
            [published.fetch(cfg, run)] if run else list(published.fetch_all(cfg).values())
        ),
        "summarize_published": lambda cfg, _: published.summarize_published(
            cfg, paths.published_summary(cfg)
        ),
        "plot_learning_curves": lambda cfg, _: figures.plot_learning_curves(cfg),
        "plot_per_class_accuracy": lambda cfg, _: figures.plot_per_class_accuracy(cfg),
        "plot_correct_wrong": _needs_store(figures.plot_correct_wrong),
        "plot_class_grid": _needs_store(figures.plot_class_grid),
        "make_results_table": lambda cfg, _: tables.make_results_table(cfg),
        "make_class_table": tables.make_class_table,
        "make_recipe_table": lambda cfg, _: tables.make_recipe_table(cfg),
        "make_discrepancies_table": lambda cfg, _: tables.make_discrepancies_table(cfg),
        "measure_input_fidelity": lambda cfg, _: fidelity.measure_input_fidelity(cfg),
        "make_paper_inputs": lambda cfg, _: paper.make_paper_inputs(cfg),
        "build_paper": lambda cfg, _: paper.build_paper_pdf(cfg),
    }


PER_EXPERIMENT_STEPS = {"plot_correct_wrong", "plot_class_grid", "make_class_table"}
STEPS = (
    "fetch_published",
    "summarize_published",
    "plot_learning_curves",
    "plot_per_class_accuracy",
    "plot_correct_wrong",
    "plot_class_grid",
    "make_results_table",
    "make_class_table",
    "make_recipe_table",
    "make_discrepancies_table",
    "measure_input_fidelity",
    "make_paper_inputs",
    "build_paper",
)


def cmd_step(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if args.name in PER_EXPERIMENT_STEPS:
        if not args.experiment:
            raise ConfigError(f"step {args.name} needs --experiment")
        experiment_config(cfg, args.experiment)
    result = _steps()[args.name](cfg, args.experiment)
    for path in result if isinstance(result, list) else []:
        print(f"wrote {path}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from . import verification

    cfg = _load(args)
    writes = args.write_table or args.write_checksums
    if writes and (args.check or args.out):
        raise VerificationError("--check and --out go with a check, not with --write-*")
    if args.write_table:
        written = verification.make_verification_table(cfg)
    elif args.write_checksums:
        files = verification.checksummed_files(cfg)
        written = [verification.write_checksums(cfg, files)]
    else:
        return verification.run_verify(
            cfg, published_only=args.published_only, check=args.check, out=args.out
        )
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import SIZES, format_table, run_bench, write_result
    from .runner import resolve_device

    cfg = _load(args)
    device = resolve_device(args.device)
    result = run_bench(cfg, SIZES[args.size], device)
    print(format_table(result))
    name = result["machine"]["name"].replace(" ", "-").lower()
    out = args.out or Path("benchmarks") / "results" / f"bench-{device.type}-{name}.json"
    write_result(result, out)
    print(f"wrote {out}")
    return 0


COMMANDS = {
    "bench": cmd_bench,
    "prepare-data": cmd_prepare_data,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "step": cmd_step,
    "verify": cmd_verify,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors become one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
