"""Rule make_ablation_table: accuracy and effect against the reference, one row per experiment."""

from convnext_tinyimagenet.report import study
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    study.make_ablation_table(snakemake.input.study, snakemake.output.md, snakemake.output.tex)
