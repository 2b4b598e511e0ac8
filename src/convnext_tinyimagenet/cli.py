"""Command line: `python -m convnext_tinyimagenet COMMAND`; every command takes `--config FILE`
(merged onto the defaults) and `--set key.path=value`, and a user error is one line, exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.config import experiment_seeds, load_config, run_settings
from convnext_tinyimagenet.data.store import load_store
from convnext_tinyimagenet.errors import ArtifactError
from convnext_tinyimagenet.run_folder import run_dir
from convnext_tinyimagenet.train.runner import (
    evaluate_experiment,
    train_experiment,
)
from convnext_tinyimagenet.verify import verification


def _common(parser: argparse.ArgumentParser, *, experiment: bool) -> None:
    parser.add_argument(
        "--config",
        action="append",
        type=Path,
        metavar="FILE",
        help="config file merged onto config/config.yaml + config/study.yaml; repeat to merge "
        "several, later wins",
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
            "--experiment", required=True, help="experiment (or variant) name in the config"
        )
        parser.add_argument(
            "--seed",
            type=int,
            help="the run's seed, one of the experiment's seeds (default: its first)",
        )
        parser.add_argument(
            "--out",
            type=Path,
            help="the run's folder (default: the workflow's, <output_dir>/<experiment>/seed<N>)",
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
    _add_verify(commands)
    return parser


def _add_verify(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser(
        "verify",
        help="check results received from elsewhere again: claims, reruns, checksums",
        description="Check again the files a verdict JSON of the workflow records (it names the "
        "published CSVs, each rerun's summary and predictions, the data summary and SHA256SUMS, "
        "as paths relative to the folder the workflow ran in: run this there), against the "
        "claims and bands the verdict records, or those of --config and --set where given "
        "(the workflow writes the configuration it ran with to <output_dir>/config.yaml). "
        "Prints one table; writes nothing unless --out says where. "
        "Run it before Snakemake, which rebuilds from a changed file and records new checksums. "
        "Exit status 1 when a claim fails or a checksummed file changed or went missing; 2 when "
        "something is missing.",
    )
    _common(verify, experiment=False)
    verify.add_argument(
        "--check",
        type=Path,
        required=True,
        metavar="VERDICT",
        help="the verdict JSON to check again: <output_dir>/verification.json (after a failed "
        "check <output_dir>/logs/verify.json; <output_dir>/published/verification.json for the "
        "published claims alone)",
    )
    verify.add_argument(
        "--out", type=Path, help="also write this check's verdict JSON here (default: print only)"
    )


def _load(args: argparse.Namespace) -> dict:
    return load_config(args.config or (), args.overrides)


def cmd_prepare_data(args: argparse.Namespace) -> int:
    cfg = _load(args)
    store = load_store(cfg["data"], progress=not args.no_progress)
    print(json.dumps(store.info, indent=2))
    if args.out:
        atomic.write_json(args.out, store.info)
    return 0


def _experiment_args(args: argparse.Namespace) -> tuple[dict, Path]:
    """The run's settings (its one seed) and folder."""
    cfg = _load(args)
    seeds = experiment_seeds(cfg, args.experiment)
    seed = seeds[0] if args.seed is None and seeds else args.seed
    settings = run_settings(cfg, args.experiment, seed)  # names a seed the experiment lacks
    return settings, args.out or Path(run_dir(cfg["output_dir"], args.experiment, seed))


def cmd_train(args: argparse.Namespace) -> int:
    cfg, out = _experiment_args(args)
    train_experiment(cfg, args.experiment, out, progress=not args.no_progress)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    cfg, out = _experiment_args(args)
    evaluate_experiment(cfg, args.experiment, out, progress=not args.no_progress)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    given = args.config or args.overrides  # else the claims the verdict records
    claims = verification.Claims.from_config(_load(args)) if given else None
    result = verification.check_record(args.check, claims, out=args.out)
    print(verification.render(result))
    return 0 if result["verdict"] == verification.PASS else 1


COMMANDS = {
    "prepare-data": cmd_prepare_data,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "verify": cmd_verify,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors become one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
