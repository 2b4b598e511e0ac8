"""Rule make_discrepancies_table: the published README against what its notebooks ran."""

from convnext_tinyimagenet.report import tables
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    tables.make_discrepancies_table(
        snakemake.output.md,
        snakemake.output.tex,
        discrepancies=snakemake.params.discrepancies,
    )
