# The paper: generated macros, tables and figures, then latexmk.


rule make_paper_inputs:
    input:
        config=ancient(RESOLVED),
        # the package names what it reads, so the rule's inputs cannot drift from the code
        sources=[str(path) for path in paper_sources(config)],
    output:
        PAPER_NUMBERS,
    log:
        f"{OUT}/logs/make_paper_inputs.log",
    shell:
        "python -m convnext_tinyimagenet step make_paper_inputs --config {input.config} > {log} 2>&1"


rule build_paper:
    input:
        config=ancient(RESOLVED),
        numbers=PAPER_NUMBERS,
        source="paper/paper.tex",
    output:
        report(PAPER_PDF, category="Paper", caption="report/paper.rst"),
    log:
        f"{OUT}/logs/build_paper.log",
    shell:
        "python -m convnext_tinyimagenet step build_paper --config {input.config} > {log} 2>&1"
        " || {{ tail -n 5 {log} >&2; exit 1; }}"
