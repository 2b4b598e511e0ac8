"""Rule make_recipe_table: every hyperparameter of every experiment, from the config."""

from convnext_tinyimagenet.report import tables
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    tables.make_recipe_table(
        snakemake.output.md,
        snakemake.output.tex,
        experiments=snakemake.params.experiments,
        data=snakemake.params.data,
        normalize=snakemake.params.normalize,
        seeds=snakemake.params.seeds,
    )
