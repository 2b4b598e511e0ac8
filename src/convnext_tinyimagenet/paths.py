"""Where the workflow's files live, derived from `output_dir` (one place, used by rules and code).

<output_dir>/data/data.json                       the decoded store's summary
<output_dir>/<experiment>/                        one run (see runner.py), experiment.ipynb/.html
<output_dir>/published/summary.json               figures recomputed from the published CSVs
<output_dir>/figures/learning_curves.{png,pdf}    both runs, published values overlaid
<output_dir>/figures/per_class_accuracy.{png,pdf}
<output_dir>/figures/<experiment>/correct_wrong.{png,pdf}
<output_dir>/figures/<experiment>/class_grid.{png,pdf}
<output_dir>/tables/<name>.{md,tex}               results, classes_<experiment>, recipe,
                                                  discrepancies, verification, input_fidelity
<output_dir>/fidelity/input_pipeline.json         our resize and RandAugment vs PIL's, measured
<output_dir>/paper/generated/                     macros, tables and figures the paper includes
<output_dir>/paper/build/                         latexmk's working files
<output_dir>/paper.pdf                            the paper (paper/paper.tex, built from the above)
"""

from __future__ import annotations

from pathlib import Path

# The paper's source (paper.tex), relative to the working directory, which is the workflow's
# root (Snakemake runs rules there). What a build writes lives under output_dir, so the demo's
# paper (results/demo/) never replaces the paper run's (results/).
PAPER_SOURCE = Path("paper")


def output_dir(cfg: dict) -> Path:
    return Path(cfg["output_dir"])


def run_dir(cfg: dict, experiment: str) -> Path:
    return output_dir(cfg) / experiment


def data_summary(cfg: dict) -> Path:
    return output_dir(cfg) / "data" / "data.json"


def published_summary(cfg: dict) -> Path:
    return output_dir(cfg) / "published" / "summary.json"


def fidelity_summary(cfg: dict) -> Path:
    return output_dir(cfg) / "fidelity" / "input_pipeline.json"


def figures_dir(cfg: dict) -> Path:
    return output_dir(cfg) / "figures"


def tables_dir(cfg: dict) -> Path:
    return output_dir(cfg) / "tables"


def experiments(cfg: dict) -> list[str]:
    """Experiment names in config order."""
    return list(cfg["experiments"])


def paper_dir(cfg: dict) -> Path:
    """Where the paper is built: `generated/` (its inputs) and `build/` (latexmk's files)."""
    return output_dir(cfg) / "paper"


def paper_generated(cfg: dict) -> Path:
    return paper_dir(cfg) / "generated"


def paper_pdf(cfg: dict) -> Path:
    return output_dir(cfg) / "paper.pdf"
