"""Rule measure_input_fidelity: this project's resize and RandAugment against PIL's kernels."""

from convnext_tinyimagenet.tools import fidelity
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    fidelity.measure_input_fidelity(
        snakemake.output.json,
        snakemake.output.md,
        snakemake.output.tex,
        image_size=snakemake.params.image_size,
        input_size=snakemake.params.input_size,
        augment=snakemake.params.augment,
    )
