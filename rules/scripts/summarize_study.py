"""Rule summarize_study: each experiment's runs over seeds, each variant's paired effect."""

from convnext_tinyimagenet.report import study
from convnext_tinyimagenet.workflow import by_run, rule_log

with rule_log(snakemake):
    runs = by_run(
        snakemake.params.runs,
        summary=list(snakemake.input.summaries),
        predictions=list(snakemake.input.predictions),
    )
    study.summarize_study(
        runs,
        snakemake.output.json,
        parents=snakemake.params.parents,
        titles=snakemake.params.titles,
        settings=snakemake.params.settings,
        published_gap=snakemake.params.published_gap,
    )
