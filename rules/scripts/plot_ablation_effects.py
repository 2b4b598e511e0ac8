"""Rule plot_ablation_effects: a forest plot of each variant's effect with its interval."""

from convnext_tinyimagenet.report import study
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    study.plot_ablation_effects(
        snakemake.input.study,
        snakemake.output.png,
        snakemake.output.pdf,
        dpi=snakemake.params.dpi,
    )
