"""Rule plot_learning_curves: every run's curves, the published values overlaid."""

from convnext_tinyimagenet.report import figures
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    figures.plot_learning_curves(
        dict(zip(snakemake.params.experiments, snakemake.input.metrics, strict=True)),
        snakemake.output.png,
        snakemake.output.pdf,
        published=snakemake.params.published,
        titles=snakemake.params.titles,
        dpi=snakemake.params.dpi,
    )
