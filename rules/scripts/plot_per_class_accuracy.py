"""Rule plot_per_class_accuracy: the second run's per-class accuracy against the first's."""

from convnext_tinyimagenet.report import figures
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    figures.plot_per_class_accuracy(
        dict(zip(snakemake.params.experiments, snakemake.input.summaries, strict=True)),
        snakemake.output.png,
        snakemake.output.pdf,
        dpi=snakemake.params.dpi,
    )
