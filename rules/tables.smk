# Tables as Markdown and LaTeX (booktabs), from result files and config.


rule make_results_table:
    input:
        config=ancient(RESOLVED),
        summaries=per_experiment(f"{OUT}/{{experiment}}/summary.json"),
        published=published_summary(),
    output:
        md=report(
            f"{OUT}/tables/results.md",
            category="Tables",
            caption="report/results.rst",
        ),
        tex=f"{OUT}/tables/results.tex",
    log:
        f"{OUT}/logs/make_results_table.log",
    params:
        published=json.dumps(config["published"], sort_keys=True),
        titles=json.dumps(
            {name: exp.get("title") for name, exp in config["experiments"].items()},
            sort_keys=True,
        ),
    shell:
        "python -m convnext_tinyimagenet step make_results_table --config {input.config} > {log} 2>&1"


rule make_class_table:
    input:
        config=ancient(RESOLVED),
        summary=f"{OUT}/{{experiment}}/summary.json",
    output:
        md=f"{OUT}/tables/classes_{{experiment}}.md",
        tex=f"{OUT}/tables/classes_{{experiment}}.tex",
    log:
        f"{OUT}/logs/make_class_table/{{experiment}}.log",
    shell:
        "python -m convnext_tinyimagenet step make_class_table --config {input.config}"
        " --experiment {wildcards.experiment} > {log} 2>&1"


rule make_recipe_table:
    input:
        config=ancient(RESOLVED),
    output:
        md=f"{OUT}/tables/recipe.md",
        tex=f"{OUT}/tables/recipe.tex",
    log:
        f"{OUT}/logs/make_recipe_table.log",
    params:
        experiments=json.dumps(config["experiments"], sort_keys=True),
        data=json.dumps(config["data"], sort_keys=True),
        normalize=json.dumps(config["normalize"], sort_keys=True),
        seed=config["seed"],
    shell:
        "python -m convnext_tinyimagenet step make_recipe_table --config {input.config} > {log} 2>&1"


rule make_discrepancies_table:
    input:
        config=ancient(RESOLVED),
    output:
        md=f"{OUT}/tables/discrepancies.md",
        tex=f"{OUT}/tables/discrepancies.tex",
    log:
        f"{OUT}/logs/make_discrepancies_table.log",
    params:
        discrepancies=json.dumps(config["discrepancies"], sort_keys=True),
    shell:
        "python -m convnext_tinyimagenet step make_discrepancies_table --config {input.config} > {log} 2>&1"


rule measure_input_fidelity:
    input:
        config=ancient(RESOLVED),
    output:
        json=f"{OUT}/fidelity/input_pipeline.json",
        md=f"{OUT}/tables/input_fidelity.md",
        tex=f"{OUT}/tables/input_fidelity.tex",
    log:
        f"{OUT}/logs/measure_input_fidelity.log",
    params:
        sizes=f"{config['data']['image_size']} -> {config['data']['input_size']}",
        augment=json.dumps(
            {name: exp.get("augment") for name, exp in config["experiments"].items()},
            sort_keys=True,
        ),
    shell:
        "python -m convnext_tinyimagenet step measure_input_fidelity --config {input.config} > {log} 2>&1"
