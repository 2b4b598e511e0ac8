# Helpers shared by the rules: paths, the package's command line, and the parameter sets
# whose change reruns a rule (Snakemake reruns a job when its params change).
import json
import re
import shutil

from convnext_tinyimagenet.config import sync_resolved_config, workflow_params
from convnext_tinyimagenet.paper import paper_sources
from convnext_tinyimagenet.published import local_path
from convnext_tinyimagenet import paths
from convnext_tinyimagenet.verification import checksummed_files

OUT = config["output_dir"]
EXPERIMENTS = list(config["experiments"])
PUBLISHED_RUNS = list(config["published"]["runs"])
# published run of each prediction file, by file name (fetch_published: one job per file)
PUBLISHED_BY_FILE = {local_path(config, run).name: run for run in PUBLISHED_RUNS}
# The resolved config every step reads, written when the workflow loads and only when it
# changed. Rules take it as ancient() input, so a rewrite does not rerun them all; each rule's
# `params` name the parts of the config it depends on, and a change there reruns it.
RESOLVED = f"{OUT}/config.yaml"
sync_resolved_config(config, RESOLVED)
# The paper's inputs and PDF live under OUT: the demo's never replace the paper run's.
PAPER_NUMBERS = str(paths.paper_generated(config) / "numbers.tex")
PAPER_PDF = str(paths.paper_pdf(config))
TEX_PACKAGES = "latexmk texlive-latex-recommended texlive-latex-extra"


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),


def run_params(wildcards):
    """What reruns an experiment's job (config.workflow_params); it retrains only when the
    run's identity (config.run_identity, its checkpoint digest) changed."""
    return json.dumps(workflow_params(config, wildcards.experiment), sort_keys=True)


def per_experiment(pattern):
    """`pattern` with {experiment} expanded over every experiment in config."""
    return expand(pattern, experiment=EXPERIMENTS)


def published_files():
    """The published prediction CSVs when config reads them, else nothing. Rules that read them
    list them as input, so a file changed after they ran makes them run (and refuse it) again.
    """
    if not config["published"]["use_predictions"]:
        return []
    return [str(local_path(config, run)) for run in PUBLISHED_RUNS]


def published_summary():
    """The published figures' summary when config reads the published CSVs, else nothing."""
    return (
        [f"{OUT}/published/summary.json"]
        if config["published"]["use_predictions"]
        else []
    )


def published_verification():
    """The published claims' check when config reads the published CSVs, else nothing."""
    return (
        [f"{OUT}/published/verification.json"]
        if config["published"]["use_predictions"]
        else []
    )


def checksum_inputs():
    """The files SHA256SUMS covers, as rules make them.

    The paper's copied tables and figures are no rule's declared outputs: numbers.tex, written
    with them, stands for them all.
    """
    generated = paths.paper_generated(config)
    return [
        str(path)
        for path in checksummed_files(config)
        if path.parent != generated or path.name == "numbers.tex"
    ]


def all_outputs():
    """Every product of the workflow; the PDF only where latexmk can build it."""
    outputs = [
        *per_experiment(f"{OUT}/{{experiment}}/experiment.html"),
        f"{OUT}/figures/learning_curves.png",
        f"{OUT}/figures/per_class_accuracy.png",
        *per_experiment(f"{OUT}/figures/{{experiment}}/correct_wrong.png"),
        *per_experiment(f"{OUT}/figures/{{experiment}}/class_grid.png"),
        f"{OUT}/tables/results.md",
        f"{OUT}/tables/recipe.md",
        f"{OUT}/tables/discrepancies.md",
        f"{OUT}/tables/input_fidelity.md",
        *per_experiment(f"{OUT}/tables/classes_{{experiment}}.md"),
        *published_summary(),
        f"{OUT}/tables/verification.md",
        *published_verification(),
    ]
    if shutil.which("latexmk"):
        outputs.append(PAPER_PDF)
    # last: the checksums of every file above that goes into the paper, then their check
    outputs += [f"{OUT}/SHA256SUMS", f"{OUT}/verification.json"]
    return outputs


onsuccess:
    if not shutil.which("latexmk"):
        print(
            f"\nThe paper PDF was skipped: latexmk is not installed. Build it with\n"
            f"  sudo apt-get install {TEX_PACKAGES}\n"
            f"  snakemake --cores 1 build_paper\n"
        )
