"""Rule fetch_published: one published prediction CSV, downloaded and checked against its pin."""

from convnext_tinyimagenet.verify.published import fetch
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    fetch(snakemake.params.url, snakemake.params.sha256, snakemake.output[0])
