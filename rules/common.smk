# Names shared by the rules. Nothing here writes a file or probes the host: loading the workflow
# (also `snakemake -n` and `--lint`) has no side effect.
import os
from urllib.parse import urlparse

from convnext_tinyimagenet.config import (
    experiment_seeds,
    experiment_source,
    experiments_to_run,
    run_settings,
    runs_to_do,
    settings_digest,
)
from convnext_tinyimagenet.data.store import folder_version
from convnext_tinyimagenet.run_folder import FILES, run_dir

OUT = config["output_dir"]
# the experiments that run, in config order: all but those declared with `seeds: []`
EXPERIMENTS = experiments_to_run(config["experiments"])
# every run, (experiment, seed), in config order: one training job each
RUNS = runs_to_do(config)
# each running experiment's first seed: the run its single-run figures and tables show
FIRST_SEED = {name: experiment_seeds(config, name)[0] for name in EXPERIMENTS}
# the data sources the runs read (data.json per source)
SOURCES = sorted({experiment_source(config, name) for name in EXPERIMENTS})
PUBLISHED = config["published"]
# published run -> its prediction CSV once fetched: download_dir / the URL's file name
PUBLISHED_FILES = {
    run: f"{PUBLISHED['download_dir']}/{os.path.basename(urlparse(spec['predictions']['url']).path)}"
    for run, spec in PUBLISHED["runs"].items()
}
READS_PUBLISHED = PUBLISHED["use_predictions"]
# the published recipes among them (baseline, improved): what the paper's text, learning curves
# and per-class figure compare; the ablation variants run beside them
PUBLISHED_PAIR = [name for name in EXPERIMENTS if name in PUBLISHED["runs"]]
# one run's folder, a pattern over {experiment} and {seed} (run_folder.py names its files)
RUN = run_dir(OUT, "{experiment}", "{seed}")


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    seed=r"\d+",
    source="|".join(SOURCES),


def published_gap():
    """The published claims' gap between the study's decomposed recipe and the one it is set
    against; None when either is no published run or reads synthetic data (no meaning there).
    """
    names = [config["study"]["decompose"][key] for key in ("recipe", "against")]
    runs = PUBLISHED["runs"]
    if any(
        name not in runs or experiment_source(config, name) == "synthetic"
        for name in names
    ):
        return None
    return runs[names[0]]["claim"] - runs[names[1]]["claim"]


def per_run(pattern, names=None):
    """`pattern` (a rule's output with {experiment} and {seed}) expanded over every run, or
    over the runs of `names`, in RUNS order."""
    runs = [(name, seed) for name, seed in RUNS if names is None or name in names]
    return expand(
        pattern, zip, experiment=[n for n, _ in runs], seed=[s for _, s in runs]
    )


def first_run(pattern, names=None):
    """`pattern` expanded over each running experiment (or each of `names`) at its first
    seed: the run whose single-run figures and tables the paper shows."""
    names = names or EXPERIMENTS
    return expand(pattern, zip, experiment=names, seed=[FIRST_SEED[n] for n in names])


def first_run_of(pattern):
    """An input function: `pattern` for the wildcards' {experiment} at its first seed."""
    return lambda wildcards: first_run(pattern, [wildcards.experiment])[0]


def per_experiment(pattern):
    """`pattern` (a rule's output with {experiment}) expanded over the experiments that run."""
    return expand(pattern, experiment=EXPERIMENTS)


def per_published(pattern):
    """`pattern` expanded over the published recipes that run (PUBLISHED_PAIR)."""
    return expand(pattern, experiment=PUBLISHED_PAIR)


def source_config(experiment):
    """The `data` section as `experiment` reads it: with its own source."""
    return config["data"] | {"source": experiment_source(config, experiment)}


def source_data(experiment):
    """The data summary (prepare_data's output) of the source `experiment` reads (for input
    functions: rules/data.smk comes after this file)."""
    source = experiment_source(config, experiment)
    return rules.prepare_data.output[0].format(source=source)


def run_labels(names=None):
    """The runs' names in results: `<experiment>/seed<N>`, in per_run order."""
    return [
        f"{name}/seed{seed}" for name, seed in RUNS if names is None or name in names
    ]


def by_experiment(values, names=None):
    """{experiment: value} of each running experiment's config section (or of `names`'s) for
    `values(section)`."""
    return {name: values(config["experiments"][name]) for name in names or EXPERIMENTS}


def recipe_section(experiment):
    """What the recipe tables show of an experiment's config section: its hyperparameters and
    its parent (not its title: a new title rewrites no hyperparameter)."""
    keys = ("from", "data", "model", "trainable", "augment", "train")
    return {key: experiment[key] for key in keys if key in experiment}


def reference_of(experiment):
    """The recipe a notebook compares its own with: a variant's parent (`from`, run or not);
    else the first experiment, or for the first, the second (baseline <-> improved)."""
    name = config["experiments"][experiment].get("from")
    others = [other for other in EXPERIMENTS if other != experiment]
    if name is None and not others:
        return None
    if name is None:
        name = EXPERIMENTS[0] if experiment != EXPERIMENTS[0] else others[0]
    return {"name": name, "settings": config["experiments"][name]}


def published_receipts():
    """fetch_published's receipt of each published CSV, in published.runs order: what the
    rules that read the CSVs (named in their params, PUBLISHED_FILES) take as input; for rules
    after rules/published.smk."""
    names = [os.path.basename(path) for path in PUBLISHED_FILES.values()]
    return expand(rules.fetch_published.output[0], published_file=names)


def if_published(files):
    """`files` when config reads the published CSVs (published.use_predictions), else none."""
    return list(files) if READS_PUBLISHED else []


def products():
    """Every file the workflow makes for people, named by the rules that make them."""
    return [
        *rules.write_config.output,
        *per_run(rules.render_notebook.output[0]),
        *rules.plot_learning_curves.output,
        *rules.plot_per_class_accuracy.output,
        *per_experiment(rules.plot_correct_wrong.output),
        *per_experiment(rules.plot_class_grid.output),
        *rules.make_results_table.output,
        *rules.summarize_study.output,
        *rules.make_ablation_table.output,
        *rules.plot_ablation_effects.output,
        *rules.write_difference_section.output,
        *rules.make_compute_table.output,
        *rules.make_recipe_table.output,
        *rules.make_discrepancies_table.output,
        *rules.measure_input_fidelity.output,
        *per_experiment(rules.make_class_table.output),
        *if_published(rules.summarize_published.output),
        *if_published(rules.verify_published.output),
        *rules.make_verification_table.output,
        *([rules.build_paper.output[0]] if config["paper_pdf"] else []),
    ]


def everything():
    """Every output the plain `snakemake` makes, in one list without repeats: what people read,
    what the checksums cover, every file of every run (model.safetensors, the executed notebook,
    provenance) and the verdicts. Naming them all makes a deleted one a missing target, which
    Snakemake makes again; a file only some later rule reads would otherwise stay missing.
    """
    files = [
        *products(),
        *checksummed(),
        *per_run(list(rules.run_experiment.output)),
        *if_published(rules.verify_published.output),
        *rules.verify.output,
    ]
    return list(dict.fromkeys(files))


def checksummed():
    """What SHA256SUMS covers: the data summary, each run's results and rendered notebook, and
    every file that goes into the paper (not the verdicts, which check these)."""
    run = rules.run_experiment.output
    checked = [
        *expand(rules.prepare_data.output[0], source=SOURCES),
        *per_run([run.predictions, run.metrics, run.summary, run.provenance]),
        *rules.make_paper_inputs.output,
    ]
    left_out = {*rules.verify_published.output, *rules.write_config.output}
    return checked + [path for path in products() if path not in left_out]
