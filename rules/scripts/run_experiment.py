"""Rule run_experiment: the experiment notebook, executed by papermill with this run's settings."""

from pathlib import Path

import papermill

from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    papermill.execute_notebook(
        snakemake.input.notebook,
        snakemake.output.notebook,
        parameters={
            "experiment": snakemake.wildcards.experiment,
            "seed": int(snakemake.wildcards.seed),
            "settings": snakemake.params.settings,
            "reference": snakemake.params.reference,
            "published": snakemake.params.published,
            "band": snakemake.params.band,
            "figure_options": snakemake.params.figures,
            "out_dir": str(Path(snakemake.output.summary).parent),
        },
        cwd=".",
        log_output=True,
        progress_bar=False,
    )
