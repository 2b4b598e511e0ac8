"""Rule fetch_tinyimagenet: tiny-imagenet-200.zip, downloaded unless it is in place, checked
against its md5 pin; the rule's output is the receipt (with its sha256), never the zip."""

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.data.archive import fetch_archive
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    params = snakemake.params
    receipt = fetch_archive(params.url, params.md5, params.archive)
    atomic.write_json(snakemake.output[0], receipt)
