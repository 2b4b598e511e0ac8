"""Rule plot_correct_wrong: correctly and wrongly classified validation images of one run."""

from convnext_tinyimagenet.data.store import load_store
from convnext_tinyimagenet.report import figures
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    figures.plot_correct_wrong(
        snakemake.input.predictions,
        load_store(snakemake.params.data, progress=False),
        snakemake.output.png,
        snakemake.output.pdf,
        samples=snakemake.params.samples,
        seed=snakemake.params.seed,
        dpi=snakemake.params.dpi,
    )
