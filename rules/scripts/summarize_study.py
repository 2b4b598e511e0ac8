"""Rule summarize_study: each experiment's runs over seeds, each variant's paired effect."""

from convnext_tinyimagenet.report import study
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    runs = {}  # experiment -> seed -> its files
    files = zip(
        snakemake.params.runs, snakemake.input.summaries, snakemake.input.predictions, strict=True
    )
    for (name, seed), summary, predictions in files:
        runs.setdefault(name, {})[seed] = {"summary": summary, "predictions": predictions}
    study.summarize_study(
        runs,
        snakemake.output.json,
        parents=snakemake.params.parents,
        titles=snakemake.params.titles,
    )
