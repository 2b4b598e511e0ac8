"""Rule write_config: the resolved configuration, as YAML."""

from convnext_tinyimagenet.config import dump_config
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    dump_config(snakemake.params.config, snakemake.output[0])
