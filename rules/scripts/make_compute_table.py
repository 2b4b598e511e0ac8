"""Rule make_compute_table: device-hours per run and in total, from the runs' own timings."""

from convnext_tinyimagenet.report.compute import make_compute_table
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    runs = {}  # experiment -> seed -> its files
    files = zip(
        snakemake.params.runs, snakemake.input.provenance, snakemake.input.metrics, strict=True
    )
    for (name, seed), provenance, metrics in files:
        runs.setdefault(name, {})[seed] = {"provenance": provenance, "metrics": metrics}
    make_compute_table(runs, snakemake.output.json, snakemake.output.md, snakemake.output.tex)
