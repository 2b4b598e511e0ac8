# The paper: the generated macros (numbers.tex), then latexmk on paper/paper.tex, which includes
# the macros, tables and figures by their paths under OUT.


rule make_paper_inputs:
    input:
        summaries=per_experiment(rules.run_experiment.output.summary),
        metrics=per_experiment(rules.run_experiment.output.metrics),
        provenance=per_experiment(rules.run_experiment.output.provenance),
        data=rules.prepare_data.output[0],
        fidelity=rules.measure_input_fidelity.output.json,
        published=if_published(rules.summarize_published.output),
    output:
        numbers=f"{OUT}/paper/numbers.tex",
    log:
        f"{OUT}/logs/make_paper_inputs.log",
    params:
        # the config values the text cites (paper.PaperConfig)
        experiments=config["experiments"],
        published_runs=PUBLISHED["runs"],
        published_repository=PUBLISHED["repository"],
        published_commit=PUBLISHED["commit"],
        figures=config["figures"],
        input_size=config["data"]["input_size"],
        seed=config["seed"],
        # cited as text ("results read from results/"), never opened: a function, so the lint
        # for hard-coded path prefixes (meant for paths a job opens) does not apply
        output_dir=lambda wildcards: OUT,
    script:
        "scripts/make_paper_inputs.py"


rule build_paper:
    input:
        numbers=rules.make_paper_inputs.output.numbers,
        source="paper/paper.tex",
        # what paper.tex includes: \input{tables/...}, \includegraphics{figures/...}
        tables=[
            rules.make_results_table.output.tex,
            rules.make_recipe_table.output.tex,
            rules.make_discrepancies_table.output.tex,
            rules.measure_input_fidelity.output.tex,
            *per_experiment(rules.make_class_table.output.tex),
        ],
        # rules/verify.smk comes after this file (its checksums cover the paper): the rule is
        # looked up when the DAG is built
        verification=lambda wildcards: rules.make_verification_table.output.tex,
        figures=[
            rules.plot_learning_curves.output.pdf,
            rules.plot_per_class_accuracy.output.pdf,
            *expand(rules.plot_correct_wrong.output.pdf, experiment="improved"),
            *expand(rules.plot_class_grid.output.pdf, experiment="improved"),
        ],
    output:
        report(f"{OUT}/paper.pdf", category="Paper", caption="report/paper.rst"),
    log:
        f"{OUT}/logs/build_paper.log",
    params:
        # the output folder, where paper.pdf goes: paper.tex names its inputs relative to it
        out=lambda wildcards, output: os.path.dirname(output[0]) or ".",
        build=f"{OUT}/paper/build",  # latexmk's working files, kept so a rerun is incremental
    # TeX finds paper.tex's inputs through TEXINPUTS, the output folder first; on failure the
    # console gets the first TeX error (else the log's end), not only the log's name
    shell:
        "command -v latexmk >/dev/null || {{ echo 'error: latexmk is not installed: install the"
        " Debian packages latexmk texlive-latex-recommended texlive-latex-extra, or set"
        " paper_pdf: false' >&2; exit 1; }}; "
        "TEXINPUTS={params.out:q}/: latexmk -pdf -interaction=nonstopmode -halt-on-error"
        " -outdir={params.build:q} {input.source:q} > {log:q} 2>&1"
        " && cp {params.build:q}/paper.pdf {output:q}"
        " || {{ grep -m1 -A3 '^!' {log:q} >&2 || tail -n 5 {log:q} >&2; exit 1; }}"
