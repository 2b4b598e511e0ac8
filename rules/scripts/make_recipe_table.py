"""Rule make_recipe_table: every hyperparameter of each recipe, and each variant's changes."""

from convnext_tinyimagenet.report import tables
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    tables.make_recipe_table(
        snakemake.output.md,
        snakemake.output.tex,
        snakemake.output.variants_md,
        snakemake.output.variants_tex,
        experiments=snakemake.params.experiments,
        parents=snakemake.params.parents,
        data=snakemake.params.data,
        normalize=snakemake.params.normalize,
        seeds=snakemake.params.seeds,
    )
