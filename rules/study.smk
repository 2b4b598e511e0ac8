# The ablation study: each experiment over its seeds, each variant against its `from` parent.


rule summarize_study:
    input:
        # every run, in RUNS order (params.runs names them)
        summaries=per_run(rules.run_experiment.output.summary),
        predictions=per_run(rules.run_experiment.output.predictions),
    output:
        json=f"{OUT}/study/study.json",
    log:
        f"{OUT}/logs/summarize_study.log",
    params:
        runs=RUNS,
        parents=by_experiment(lambda experiment: experiment.get("from")),
        titles=by_experiment(lambda experiment: experiment["title"]),
        settings=config["study"],
        published_gap=published_gap(),
    script:
        "scripts/summarize_study.py"


rule write_difference_section:
    # the paper's "One change at a time": one generated sentence per variant
    input:
        study=rules.summarize_study.output.json,
    output:
        tex=f"{OUT}/study/difference.tex",
        md=report(
            f"{OUT}/study/difference.md",
            category="Study",
            caption="report/difference.rst",
        ),
    log:
        f"{OUT}/logs/write_difference_section.log",
    script:
        "scripts/write_difference_section.py"


rule make_compute_table:
    # device-hours per run and in total, from each run's own timings (provenance, metrics)
    input:
        provenance=per_run(rules.run_experiment.output.provenance),
        metrics=per_run(rules.run_experiment.output.metrics),
    output:
        json=f"{OUT}/study/compute.json",
        md=report(
            f"{OUT}/tables/compute.md", category="Tables", caption="report/compute.rst"
        ),
        tex=f"{OUT}/tables/compute.tex",
    log:
        f"{OUT}/logs/make_compute_table.log",
    params:
        runs=RUNS,
    script:
        "scripts/make_compute_table.py"


rule make_ablation_table:
    input:
        study=rules.summarize_study.output.json,
    output:
        md=report(
            f"{OUT}/tables/ablation.md",
            category="Tables",
            caption="report/ablation.rst",
        ),
        tex=f"{OUT}/tables/ablation.tex",
    log:
        f"{OUT}/logs/make_ablation_table.log",
    script:
        "scripts/make_ablation_table.py"


rule plot_ablation_effects:
    input:
        study=rules.summarize_study.output.json,
    output:
        png=report(
            f"{OUT}/figures/ablation_effects.png",
            category="Figures",
            caption="report/ablation_effects.rst",
        ),
        pdf=f"{OUT}/figures/ablation_effects.pdf",
    log:
        f"{OUT}/logs/plot_ablation_effects.log",
    params:
        dpi=config["figures"]["dpi"],
    script:
        "scripts/plot_ablation_effects.py"
