"""Rule plot_class_grid: one validation image per class of one run."""

from convnext_tinyimagenet.data.store import load_store
from convnext_tinyimagenet.report import figures
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    figures.plot_class_grid(
        snakemake.input.predictions,
        load_store(snakemake.params.data, progress=False),
        snakemake.output.png,
        snakemake.output.pdf,
        classes=snakemake.params.classes,
        seed=snakemake.params.seed,
        dpi=snakemake.params.dpi,
    )
