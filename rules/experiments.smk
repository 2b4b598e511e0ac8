# Each experiment runs as the parameterized notebook (papermill), then renders to HTML.


rule run_experiment:
    input:
        config=ancient(RESOLVED),
        data=f"{OUT}/data/data.json",
        notebook="notebooks/experiment.ipynb",
    output:
        notebook=f"{OUT}/{{experiment}}/experiment.ipynb",
        metrics=f"{OUT}/{{experiment}}/metrics.jsonl",
        model=f"{OUT}/{{experiment}}/model.safetensors",
        predictions=f"{OUT}/{{experiment}}/predictions.csv",
        provenance=f"{OUT}/{{experiment}}/provenance.json",
        summary=report(
            f"{OUT}/{{experiment}}/summary.json",
            category="Runs",
            subcategory="{experiment}",
            caption="report/summary.rst",
        ),
    log:
        f"{OUT}/logs/run_experiment/{{experiment}}.log",
    threads: 2
    resources:
        gpu=1,
    params:
        run=run_params,
        out=f"{OUT}/{{experiment}}",
        device=config["device"],
    shell:
        "python -m papermill {input.notebook} {output.notebook} --cwd . --log-output"
        " -p experiment {wildcards.experiment} -p config_path {input.config}"
        " -p out_dir {params.out} -p device {params.device} > {log} 2>&1"


rule render_notebook:
    input:
        f"{OUT}/{{experiment}}/experiment.ipynb",
    output:
        report(
            f"{OUT}/{{experiment}}/experiment.html",
            category="Notebooks",
            caption="report/notebook.rst",
        ),
    log:
        f"{OUT}/logs/render_notebook/{{experiment}}.log",
    shell:
        "python -m nbconvert --to html --embed-images {input}"
        " --output-dir $(dirname {output}) --output experiment.html > {log} 2>&1"
