"""Rule make_compute_table: device-hours per run and in total, from the runs' own timings."""

from convnext_tinyimagenet.report.compute import make_compute_table
from convnext_tinyimagenet.workflow import by_run, rule_log

with rule_log(snakemake):
    runs = by_run(
        snakemake.params.runs,
        provenance=list(snakemake.input.provenance),
        metrics=list(snakemake.input.metrics),
    )
    make_compute_table(runs, snakemake.output.json, snakemake.output.md, snakemake.output.tex)
