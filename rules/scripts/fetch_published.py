"""Rule fetch_published: one published prediction CSV, downloaded unless it is in place, checked
against its pin; the rule's output is the receipt, never the CSV (rules/published.smk)."""

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.verify.published import fetch
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    params = snakemake.params
    path = fetch(params.url, params.sha256, params.path)
    receipt = {"path": str(path), "url": params.url, "sha256": params.sha256}
    atomic.write_json(snakemake.output[0], receipt | {"bytes": path.stat().st_size})
