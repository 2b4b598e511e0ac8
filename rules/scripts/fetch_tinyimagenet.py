"""Rule fetch_tinyimagenet: tiny-imagenet-200.zip, downloaded (unless present) and checked against
its md5 pin; the log records its sha256."""

from convnext_tinyimagenet.data.archive import fetch_archive
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    fetch_archive(snakemake.params.url, snakemake.params.md5, snakemake.output[0])
