"""Rule unpack_tinyimagenet: the checked zip's tiny-imagenet-200/ folder, unpacked to its root."""

from convnext_tinyimagenet.data.archive import unpack
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    unpack(snakemake.params.archive, snakemake.params.root, md5=snakemake.params.md5)
