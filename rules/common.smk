# Names shared by the rules. Nothing here writes a file or probes the host: loading the workflow
# (also `snakemake -n` and `--lint`) has no side effect.
import os
from urllib.parse import urlparse

from convnext_tinyimagenet.config import run_settings
from convnext_tinyimagenet.run_folder import FILES, run_dir

OUT = config["output_dir"]
EXPERIMENTS = list(config["experiments"])
PUBLISHED = config["published"]
# published run -> its prediction CSV once fetched: download_dir / the URL's file name
PUBLISHED_FILES = {
    run: f"{PUBLISHED['download_dir']}/{os.path.basename(urlparse(spec['predictions']['url']).path)}"
    for run, spec in PUBLISHED["runs"].items()
}
READS_PUBLISHED = PUBLISHED["use_predictions"]
# one run's folder, a pattern over {experiment} (run_folder.py names the files in it)
RUN = run_dir(OUT, "{experiment}")


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),


def per_experiment(pattern):
    """`pattern` (a rule's output with {experiment}) expanded over every experiment in config."""
    return expand(pattern, experiment=EXPERIMENTS)


def by_experiment(values):
    """{experiment: value} of each experiment's config section for `values(section)`."""
    return {name: values(section) for name, section in config["experiments"].items()}


def reference_of(experiment):
    """The run a notebook compares its recipe with: the first experiment, or for the first,
    the second (baseline <-> improved)."""
    others = [name for name in EXPERIMENTS if name != experiment]
    if not others:
        return None
    name = EXPERIMENTS[0] if experiment != EXPERIMENTS[0] else others[0]
    return {"name": name, "settings": config["experiments"][name]}


def if_published(files):
    """`files` when config reads the published CSVs (published.use_predictions), else none."""
    return list(files) if READS_PUBLISHED else []


def products():
    """Every file the workflow makes for people, named by the rules that make them."""
    return [
        *rules.write_config.output,
        *per_experiment(rules.render_notebook.output[0]),
        *rules.plot_learning_curves.output,
        *rules.plot_per_class_accuracy.output,
        *per_experiment(rules.plot_correct_wrong.output),
        *per_experiment(rules.plot_class_grid.output),
        *rules.make_results_table.output,
        *rules.make_recipe_table.output,
        *rules.make_discrepancies_table.output,
        *rules.measure_input_fidelity.output,
        *per_experiment(rules.make_class_table.output),
        *if_published(rules.summarize_published.output),
        *if_published(rules.verify_published.output),
        *rules.make_verification_table.output,
        *([rules.build_paper.output[0]] if config["paper_pdf"] else []),
    ]


def checksummed():
    """What SHA256SUMS covers: the data summary, each run's results and rendered notebook, and
    every file that goes into the paper (not the verdicts, which check these)."""
    run = rules.run_experiment.output
    checked = [
        *rules.prepare_data.output,
        *per_experiment([run.predictions, run.metrics, run.summary, run.provenance]),
        *rules.make_paper_inputs.output,
    ]
    left_out = {*rules.verify_published.output, *rules.write_config.output}
    return checked + [path for path in products() if path not in left_out]
