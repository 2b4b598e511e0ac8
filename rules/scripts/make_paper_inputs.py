"""Rule make_paper_inputs: the macros (numbers.tex) every number in the paper is printed with,
and the macros (inputs.tex) naming the path of every file the paper includes."""

from convnext_tinyimagenet.report.paper import PaperConfig, make_paper_inputs, write_paper_inputs
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    params, inputs, outputs = snakemake.params, snakemake.input, snakemake.output
    make_paper_inputs(
        outputs.numbers,
        PaperConfig(
            experiments=params.experiments,
            published_runs=params.published_runs,
            published_repository=params.published_repository,
            published_commit=params.published_commit,
            figures=params.figures,
            figure_experiment=params.figure_experiment,
            input_size=params.input_size,
            seeds=params.seeds,
            output_dir=params.output_dir,
        ),
        summaries=inputs.summaries,
        metrics=inputs.metrics,
        provenance=inputs.provenance,
        data=inputs.data,
        fidelity=inputs.fidelity,
        published=inputs.published[0] if inputs.published else None,
        predictions=inputs.predictions,
    )
    write_paper_inputs(
        outputs.inputs,
        params.output_dir,
        numbers=outputs.numbers,
        included=[*inputs.tables, *inputs.figures],
    )
