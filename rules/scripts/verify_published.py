"""Rule verify_published: the published claims, recomputed from the published CSVs alone."""

import sys

from convnext_tinyimagenet.verify.verification import Claims, Inputs, named, record_verdict
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    record_verdict(
        Claims(
            snakemake.params.runs,
            snakemake.params.rounding_pp,
            discrepancies=snakemake.params.discrepancies,
        ),
        Inputs(published=named(snakemake.params.runs, snakemake.params.published)),
        verdict=snakemake.log.verdict,
        out=snakemake.output[0],
        console=sys.__stdout__,  # the report on the console too; prints go to the log
    )
