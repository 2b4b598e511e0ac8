"""Rule make_verification_table: the paper's table of published claims and reruns."""

from convnext_tinyimagenet.verify.verification import Claims, Inputs, make_verification_table, named
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    experiments = snakemake.params.experiments
    make_verification_table(
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
        ),
        md=snakemake.output.md,
        tex=snakemake.output.tex,
    )
