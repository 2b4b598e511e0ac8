# Tables as Markdown and LaTeX (booktabs), from result files and config.


rule make_results_table:
    input:
        # each experiment's run at its first seed (the ablation table covers all seeds)
        summaries=first_run(rules.run_experiment.output.summary),
        published=if_published(rules.summarize_published.output),
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
        experiments=EXPERIMENTS,
        claims={run: spec["claim"] for run, spec in config["published"]["runs"].items()},
        titles=by_experiment(lambda experiment: experiment["title"]),
        seeds=FIRST_SEED,
    script:
        "scripts/make_results_table.py"


rule make_class_table:
    input:
        summary=first_run_of(rules.run_experiment.output.summary),
    output:
        md=report(
            f"{OUT}/tables/classes_{{experiment}}.md",
            category="Tables",
            caption="report/classes.rst",
        ),
        tex=f"{OUT}/tables/classes_{{experiment}}.tex",
    log:
        f"{OUT}/logs/make_class_table/{{experiment}}.log",
    script:
        "scripts/make_class_table.py"


rule make_recipe_table:
    # the recipes that are no variant side by side; each variant's changes to its parent
    output:
        md=report(
            f"{OUT}/tables/recipe.md", category="Tables", caption="report/recipe.rst"
        ),
        tex=f"{OUT}/tables/recipe.tex",
        variants_md=report(
            f"{OUT}/tables/variants.md",
            category="Tables",
            caption="report/variants.rst",
        ),
        variants_tex=f"{OUT}/tables/variants.tex",
    log:
        f"{OUT}/logs/make_recipe_table.log",
    params:
        experiments=by_experiment(recipe_section),
        # the recipe each running variant varies, run or not: its changes are read against it
        parents={
            parent: recipe_section(config["experiments"][parent])
            for parent in by_experiment(
                lambda experiment: experiment.get("from")
            ).values()
            if parent
        },
        data=config["data"],
        normalize=config["normalize"],
        seeds={name: experiment_seeds(config, name) for name in EXPERIMENTS},
    script:
        "scripts/make_recipe_table.py"


rule make_discrepancies_table:
    output:
        md=report(
            f"{OUT}/tables/discrepancies.md",
            category="Tables",
            caption="report/discrepancies.rst",
        ),
        tex=f"{OUT}/tables/discrepancies.tex",
    log:
        f"{OUT}/logs/make_discrepancies_table.log",
    params:
        discrepancies=config["discrepancies"],
    script:
        "scripts/make_discrepancies_table.py"


rule measure_input_fidelity:
    output:
        json=f"{OUT}/fidelity/input_pipeline.json",
        md=report(
            f"{OUT}/tables/input_fidelity.md",
            category="Tables",
            caption="report/input_fidelity.rst",
        ),
        tex=f"{OUT}/tables/input_fidelity.tex",
    log:
        f"{OUT}/logs/measure_input_fidelity.log",
    params:
        image_size=config["data"]["image_size"],
        input_size=config["data"]["input_size"],
        augment=by_experiment(lambda experiment: experiment["augment"]),
    script:
        "scripts/measure_input_fidelity.py"
