"""Rule make_verification_table: the paper's table of published claims and reruns."""

from convnext_tinyimagenet.verify.verification import from_rule, make_verification_table
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    claims, inputs = from_rule(snakemake.params, snakemake.input)
    make_verification_table(claims, inputs, md=snakemake.output.md, tex=snakemake.output.tex)
