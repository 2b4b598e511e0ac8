"""Rule summarize_published: each published run's figures, recomputed from its CSV."""

from convnext_tinyimagenet.verify.published import summarize_published
from convnext_tinyimagenet.verify.verification import named
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    summarize_published(
        named(snakemake.params.claims, snakemake.params.predictions),
        claims=snakemake.params.claims,
        pins=snakemake.params.pins,
        out=snakemake.output[0],
    )
