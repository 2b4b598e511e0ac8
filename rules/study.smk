# The ablation study: each experiment over its seeds, each variant against its `from` parent.


rule summarize_study:
    input:
        summaries=per_experiment(rules.run_experiment.output.summary),
        predictions=per_experiment(rules.run_experiment.output.predictions),
    output:
        json=f"{OUT}/study/study.json",
    log:
        f"{OUT}/logs/summarize_study.log",
    params:
        experiments=EXPERIMENTS,
        parents=by_experiment(lambda experiment: experiment.get("from")),
        titles=by_experiment(lambda experiment: experiment["title"]),
        # one run per experiment for now, at the top-level seed (config.py allows no other)
        seed=config["seed"],
    script:
        "scripts/summarize_study.py"


rule make_ablation_table:
    input:
        study=rules.summarize_study.output.json,
    output:
        md=f"{OUT}/tables/ablation.md",
        tex=f"{OUT}/tables/ablation.tex",
    log:
        f"{OUT}/logs/make_ablation_table.log",
    script:
        "scripts/make_ablation_table.py"


rule plot_ablation_effects:
    input:
        study=rules.summarize_study.output.json,
    output:
        png=f"{OUT}/figures/ablation_effects.png",
        pdf=f"{OUT}/figures/ablation_effects.pdf",
    log:
        f"{OUT}/logs/plot_ablation_effects.log",
    params:
        dpi=config["figures"]["dpi"],
    script:
        "scripts/plot_ablation_effects.py"
