"""Rule make_results_table: each run's accuracy against the published claim and predictions."""

from convnext_tinyimagenet.report import tables
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    tables.make_results_table(
        dict(zip(snakemake.params.experiments, snakemake.input.summaries, strict=True)),
        # none when the published predictions are not used (published.use_predictions)
        snakemake.input.published[0] if snakemake.input.published else None,
        snakemake.output.md,
        snakemake.output.tex,
        claims=snakemake.params.claims,
        titles=snakemake.params.titles,
        seeds=snakemake.params.seeds,
    )
