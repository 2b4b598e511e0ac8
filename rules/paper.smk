# The paper: the generated macros (numbers.tex: what the text prints; inputs.tex: where each file
# paper/paper.tex includes is), then latexmk on paper/paper.tex. The paths of what the paper
# includes are written here only: paper.tex names each file by its macro in inputs.tex.

# the run whose sample grids the paper shows: the last published recipe, the one the text
# compares with the first
FIGURE_EXPERIMENT = PUBLISHED_PAIR[-1]


rule make_paper_inputs:
    input:
        # each published recipe's run at its first seed
        summaries=first_run(rules.run_experiment.output.summary, PUBLISHED_PAIR),
        metrics=first_run(rules.run_experiment.output.metrics, PUBLISHED_PAIR),
        provenance=first_run(rules.run_experiment.output.provenance, PUBLISHED_PAIR),
        # image by image: the difference's interval pairs them, as the verification table does
        predictions=first_run(rules.run_experiment.output.predictions, PUBLISHED_PAIR),
        # the data the first of them read (the recipe table names each experiment's source)
        data=source_data(PUBLISHED_PAIR[0]),
        fidelity=rules.measure_input_fidelity.output.json,
        published=if_published(rules.summarize_published.output),
        # what paper.tex includes, each named in inputs.tex by a macro holding its path under
        # OUT (paper.input_macros: tables/results.tex -> \ResultsTable); a function, since
        # rules/verify.smk comes after this file: the rule is looked up when the DAG is built
        tables=lambda wildcards: [
            rules.make_results_table.output.tex,
            rules.make_recipe_table.output.tex,
            rules.make_recipe_table.output.variants_tex,
            rules.make_discrepancies_table.output.tex,
            rules.measure_input_fidelity.output.tex,
            *per_published(rules.make_class_table.output.tex),
            rules.make_verification_table.output.tex,
            rules.make_ablation_table.output.tex,
            rules.write_difference_section.output.tex,
            rules.make_compute_table.output.tex,
        ],
        figures=[
            rules.plot_learning_curves.output.pdf,
            rules.plot_per_class_accuracy.output.pdf,
            rules.plot_ablation_effects.output.pdf,
            *expand(rules.plot_correct_wrong.output.pdf, experiment=FIGURE_EXPERIMENT),
            *expand(rules.plot_class_grid.output.pdf, experiment=FIGURE_EXPERIMENT),
        ],
    output:
        numbers=f"{OUT}/paper/numbers.tex",
        inputs=f"{OUT}/paper/inputs.tex",
    log:
        f"{OUT}/logs/make_paper_inputs.log",
    params:
        # the config values the text cites (paper.PaperConfig)
        experiments=by_experiment(lambda experiment: experiment, PUBLISHED_PAIR),
        published_runs=PUBLISHED["runs"],
        published_repository=PUBLISHED["repository"],
        published_commit=PUBLISHED["commit"],
        figures=config["figures"],
        figure_experiment=FIGURE_EXPERIMENT,
        input_size=config["data"]["input_size"],
        seeds=config["seeds"],
        # cited as text ("results read from results/") and what inputs.tex's paths are relative
        # to, never opened: a function, so the lint for hard-coded path prefixes (meant for
        # paths a job opens) does not apply
        output_dir=lambda wildcards: OUT,
    script:
        "scripts/make_paper_inputs.py"


rule build_paper:
    input:
        # TeX reads inputs.tex first (latexmk -usepretex), then paper.tex, which includes the
        # others through inputs.tex's macros
        inputs=rules.make_paper_inputs.output.inputs,
        numbers=rules.make_paper_inputs.output.numbers,
        source="paper/paper.tex",
        tables=rules.make_paper_inputs.input.tables,
        figures=rules.make_paper_inputs.input.figures,
    output:
        report(f"{OUT}/paper.pdf", category="Paper", caption="report/paper.rst"),
    log:
        f"{OUT}/logs/build_paper.log",
    params:
        # latexmk's working folder, kept so that a rerun is incremental; latexmk runs in it
        build=f"{OUT}/paper/build",
        # ... and reads what inputs.tex names (relative to the output folder) from there
        texinputs=lambda wildcards, input: os.path.relpath(OUT, f"{OUT}/paper/build"),
        # TeX code run before paper.tex: read inputs.tex (its path relative to the output folder)
        pretex=lambda wildcards, input: f"\\input{{{os.path.relpath(input.inputs, OUT)}}}",
    # latexmk puts paths it is given inside its own double-quoted shell commands, where `$(...)`
    # or a quote in a user's output folder would run or break: it runs in its working folder on
    # a copy of paper.tex, and every path it sees is relative and plain (TEXINPUTS=../../: the
    # output folder). -jobname keeps the PDF named after paper.tex (TeX would name it after the
    # first file read, inputs.tex); on failure the console gets the first TeX error (else the
    # log's end), not only the log's name
    shell:
        "command -v latexmk >/dev/null || {{ echo 'error: latexmk is not installed: install the"
        " Debian packages latexmk texlive-latex-recommended texlive-latex-extra, or set"
        " paper_pdf: false' >&2; exit 1; }}; "
        "log=$(realpath -m {log:q}) && pdf=$(realpath -m {output:q}) && mkdir -p {params.build:q}"
        " && cp {input.source:q} {params.build:q}/paper.tex && cd {params.build:q}"
        " && TEXINPUTS={params.texinputs:q}/: latexmk -pdf -interaction=nonstopmode -halt-on-error"
        ' -jobname=paper -usepretex={params.pretex:q} paper.tex > "$log" 2>&1'
        ' && cp paper.pdf "$pdf"'
        ' || {{ grep -m1 -A3 \'^!\' "$log" >&2 || tail -n 5 "$log" >&2; exit 1; }}'
