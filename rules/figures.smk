# Figures, built only from result files (and the decoded images for the grids).


rule plot_learning_curves:
    input:
        # each published recipe's run at its first seed
        metrics=first_run(rules.run_experiment.output.metrics, PUBLISHED_PAIR),
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
        experiments=PUBLISHED_PAIR,
        # only what the figure draws of a published run: a new pin (url, sha256) redraws nothing
        published={
            run: {key: spec[key] for key in ("epochs", "best_epoch", "claim_metric")}
            for run, spec in config["published"]["runs"].items()
        },
        titles=by_experiment(lambda experiment: experiment["title"], PUBLISHED_PAIR),
        dpi=config["figures"]["dpi"],
    script:
        "scripts/plot_learning_curves.py"


rule plot_per_class_accuracy:
    # the second published recipe against the first
    input:
        summaries=first_run(rules.run_experiment.output.summary, PUBLISHED_PAIR[:2]),
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
        experiments=PUBLISHED_PAIR[:2],
        dpi=config["figures"]["dpi"],
    script:
        "scripts/plot_per_class_accuracy.py"


rule plot_correct_wrong:
    input:
        # the experiment's run at its first seed, and the store it read
        data=lambda wildcards: source_data(wildcards.experiment),
        predictions=first_run_of(rules.run_experiment.output.predictions),
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
        data=lambda wildcards: source_config(wildcards.experiment),
        samples=config["figures"]["samples"],
        seed=config["figures"]["sample_seed"],
        dpi=config["figures"]["dpi"],
    script:
        "scripts/plot_correct_wrong.py"


rule plot_class_grid:
    input:
        # the experiment's run at its first seed, and the store it read
        data=lambda wildcards: source_data(wildcards.experiment),
        predictions=first_run_of(rules.run_experiment.output.predictions),
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
        data=lambda wildcards: source_config(wildcards.experiment),
        classes=config["figures"]["grid_classes"],
        seed=config["figures"]["grid_seed"],
        dpi=config["figures"]["dpi"],
    script:
        "scripts/plot_class_grid.py"
