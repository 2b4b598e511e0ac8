"""Rule write_checksums: SHA256SUMS (`sha256sum -c` format) over the files the rule names."""

from convnext_tinyimagenet.verify.verification import write_checksums
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    write_checksums(snakemake.input.files, snakemake.output[0])
