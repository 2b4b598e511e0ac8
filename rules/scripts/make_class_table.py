"""Rule make_class_table: the top and bottom classes of one run."""

from convnext_tinyimagenet.report import tables
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    tables.make_class_table(snakemake.input.summary, snakemake.output.md, snakemake.output.tex)
