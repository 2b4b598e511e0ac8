"""Rule summarize_study: each experiment's runs over seeds, each variant's paired effect."""

from convnext_tinyimagenet.report import study
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    files = zip(
        snakemake.params.experiments,
        snakemake.input.summaries,
        snakemake.input.predictions,
        strict=True,
    )
    # one run per experiment, at the one seed; more seeds become more entries per experiment
    seed = snakemake.params.seed
    study.summarize_study(
        {name: {seed: {"summary": s, "predictions": p}} for name, s, p in files},
        snakemake.output.json,
        parents=snakemake.params.parents,
        titles=snakemake.params.titles,
    )
