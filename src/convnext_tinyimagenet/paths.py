"""Where the workflow's files live, derived from `output_dir` (one place, used by rules and code).

<output_dir>/data/data.json                       the decoded store's summary
<output_dir>/<experiment>/                        one run (see runner.py), experiment.ipynb/.html
<output_dir>/published/summary.json               figures recomputed from the published CSVs
<output_dir>/figures/learning_curves.{png,pdf}    both runs, published values overlaid
<output_dir>/figures/per_class_accuracy.{png,pdf}
<output_dir>/figures/<experiment>/correct_wrong.{png,pdf}
<output_dir>/figures/<experiment>/class_grid.{png,pdf}
<output_dir>/tables/<name>.{md,tex}               results, classes_<experiment>, recipe,
                                                  discrepancies
paper/generated/                                  macros, tables and figures the paper includes
paper/build/paper.pdf
"""

from __future__ import annotations

from pathlib import Path

# Relative to the working directory, which is the workflow's root (Snakemake runs rules there):
# a copy of the workflow in another folder builds its own paper.
PAPER_DIR = Path("paper")


def output_dir(cfg: dict) -> Path:
    return Path(cfg["output_dir"])


def run_dir(cfg: dict, experiment: str) -> Path:
    return output_dir(cfg) / experiment


def data_summary(cfg: dict) -> Path:
    return output_dir(cfg) / "data" / "data.json"


def published_summary(cfg: dict) -> Path:
    return output_dir(cfg) / "published" / "summary.json"


def figures_dir(cfg: dict) -> Path:
    return output_dir(cfg) / "figures"


def tables_dir(cfg: dict) -> Path:
    return output_dir(cfg) / "tables"


def experiments(cfg: dict) -> list[str]:
    """Experiment names in config order."""
    return list(cfg["experiments"])
