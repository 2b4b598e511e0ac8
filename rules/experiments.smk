# Each run (experiment, seed) is the parameterized notebook (papermill), then rendered to HTML.
rule run_experiment:
    input:
        # the store of the source this experiment reads
        data=lambda wildcards: source_data(wildcards.experiment),
        notebook="notebooks/experiment.ipynb",
    output:
        notebook=f"{RUN}/experiment.ipynb",
        metrics=f"{RUN}/{FILES['metrics']}",
        model=f"{RUN}/{FILES['model']}",
        predictions=f"{RUN}/{FILES['predictions']}",
        provenance=f"{RUN}/{FILES['provenance']}",
        summary=report(
            f"{RUN}/{FILES['summary']}",
            category="Runs",
            subcategory="{experiment} seed {seed}",
            caption="report/summary.rst",
        ),
    log:
        f"{OUT}/logs/run_experiment/{{experiment}}/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/run_experiment/{{experiment}}/seed{{seed}}.tsv"
    threads: 2
    resources:
        gpu=1,
    params:
        # what the run reads (a change reruns the job; it retrains only when the run's
        # identity changed, config.run_identity, and otherwise reuses its finished checkpoint)
        settings=lambda wildcards: run_settings(
            config, wildcards.experiment, int(wildcards.seed)
        ),
        # what the notebook shows beside it: the recipe it is compared with, the published run
        # and its verification band, and the image grids
        reference=lambda wildcards: reference_of(wildcards.experiment),
        published=lambda wildcards: PUBLISHED["runs"].get(wildcards.experiment),
        band=lambda wildcards: config["verification"]["reruns"].get(
            wildcards.experiment
        ),
        figures={
            key: config["figures"][key]
            for key in ("samples", "sample_seed", "grid_classes", "grid_seed")
        },
    script:
        "scripts/run_experiment.py"


rule render_notebook:
    input:
        rules.run_experiment.output.notebook,
    output:
        report(
            f"{RUN}/experiment.html",
            category="Notebooks",
            caption="report/notebook.rst",
        ),
    log:
        f"{OUT}/logs/render_notebook/{{experiment}}/seed{{seed}}.log",
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
        name=lambda wildcards, output: os.path.basename(output[0]),
    shell:
        # papermill's injected-parameters cell stays in the .ipynb; the HTML shows the
        # notebook's own settings table instead of two screens of the settings dict
        "python -m nbconvert --to html --embed-images {input:q}"
        " --TagRemovePreprocessor.enabled=True"
        " --TagRemovePreprocessor.remove_cell_tags=injected-parameters"
        " --output-dir {params.folder:q} --output {params.name:q} > {log:q} 2>&1"
        " || {{ tail -n 12 {log:q} >&2; exit 1; }}"
