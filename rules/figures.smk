# Figures, built only from result files (and the decoded images for the grids).


rule plot_learning_curves:
    input:
        config=ancient(RESOLVED),
        metrics=per_experiment(f"{OUT}/{{experiment}}/metrics.jsonl"),
    output:
        png=report(
            f"{OUT}/figures/learning_curves.png",
            category="Figures",
            caption="report/learning_curves.rst",
        ),
        pdf=f"{OUT}/figures/learning_curves.pdf",
    log:
        f"{OUT}/logs/plot_learning_curves.log",
    params:
        figures=json.dumps(config["figures"], sort_keys=True),
        published=json.dumps(config["published"]["runs"], sort_keys=True),
        titles=json.dumps(
            {name: exp.get("title") for name, exp in config["experiments"].items()},
            sort_keys=True,
        ),
    shell:
        "python -m convnext_tinyimagenet step plot_learning_curves --config {input.config} > {log} 2>&1"


rule plot_per_class_accuracy:
    input:
        config=ancient(RESOLVED),
        summaries=per_experiment(f"{OUT}/{{experiment}}/summary.json"),
    output:
        png=report(
            f"{OUT}/figures/per_class_accuracy.png",
            category="Figures",
            caption="report/per_class_accuracy.rst",
        ),
        pdf=f"{OUT}/figures/per_class_accuracy.pdf",
    log:
        f"{OUT}/logs/plot_per_class_accuracy.log",
    params:
        figures=json.dumps(config["figures"], sort_keys=True),
    shell:
        "python -m convnext_tinyimagenet step plot_per_class_accuracy --config {input.config} > {log} 2>&1"


rule plot_correct_wrong:
    input:
        config=ancient(RESOLVED),
        data=f"{OUT}/data/data.json",
        predictions=f"{OUT}/{{experiment}}/predictions.csv",
    output:
        png=report(
            f"{OUT}/figures/{{experiment}}/correct_wrong.png",
            category="Figures",
            subcategory="{experiment}",
            caption="report/correct_wrong.rst",
        ),
        pdf=f"{OUT}/figures/{{experiment}}/correct_wrong.pdf",
    log:
        f"{OUT}/logs/plot_correct_wrong/{{experiment}}.log",
    params:
        figures=json.dumps(config["figures"], sort_keys=True),
    shell:
        "python -m convnext_tinyimagenet step plot_correct_wrong --config {input.config}"
        " --experiment {wildcards.experiment} > {log} 2>&1"


rule plot_class_grid:
    input:
        config=ancient(RESOLVED),
        data=f"{OUT}/data/data.json",
        predictions=f"{OUT}/{{experiment}}/predictions.csv",
    output:
        png=report(
            f"{OUT}/figures/{{experiment}}/class_grid.png",
            category="Figures",
            subcategory="{experiment}",
            caption="report/class_grid.rst",
        ),
        pdf=f"{OUT}/figures/{{experiment}}/class_grid.pdf",
    log:
        f"{OUT}/logs/plot_class_grid/{{experiment}}.log",
    params:
        figures=json.dumps(config["figures"], sort_keys=True),
    shell:
        "python -m convnext_tinyimagenet step plot_class_grid --config {input.config}"
        " --experiment {wildcards.experiment} > {log} 2>&1"
