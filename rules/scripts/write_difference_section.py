"""Rule write_difference_section: the paper's "One change at a time", generated."""

from convnext_tinyimagenet.report.study import write_difference_section
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    write_difference_section(snakemake.input.study, snakemake.output.tex, snakemake.output.md)
