"""Rule verify: the published claims, the reruns against their bands, and SHA256SUMS."""

import sys

from convnext_tinyimagenet.verify.verification import from_rule, record_verdict
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    claims, inputs = from_rule(snakemake.params, snakemake.input)
    record_verdict(
        claims,
        inputs,
        verdict=snakemake.log.verdict,
        out=snakemake.output[0],
        console=sys.__stdout__,  # the report on the console too; prints go to the log
    )
