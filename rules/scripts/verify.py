"""Rule verify: the published claims, the reruns against their bands, and SHA256SUMS."""

import sys

from convnext_tinyimagenet.verify.verification import Claims, Inputs, named, record_verdict
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    experiments = snakemake.params.experiments
    record_verdict(
        Claims(
            snakemake.params.runs,
            snakemake.params.rounding_pp,
            bands=snakemake.params.bands,
            discrepancies=snakemake.params.discrepancies,
        ),
        Inputs(
            published=named(snakemake.params.runs, snakemake.input.published),
            summaries=named(experiments, snakemake.input.summaries),
            predictions=named(experiments, snakemake.input.predictions),
            data=snakemake.input.data,
            checksums=snakemake.input.checksums,
        ),
        verdict=snakemake.log.verdict,
        out=snakemake.output[0],
        console=sys.__stdout__,  # the report on the console too; prints go to the log
    )
