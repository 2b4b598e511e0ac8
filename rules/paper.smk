# The paper: generated macros, tables and figures, then latexmk.


rule make_paper_inputs:
    input:
        config=ancient(RESOLVED),
        # the package names what it reads, so the rule's inputs cannot drift from the code
        sources=[str(path) for path in paper_sources(config)],
    output:
        "paper/generated/numbers.tex",
    log:
        f"{OUT}/logs/make_paper_inputs.log",
    shell:
        "python -m convnext_tinyimagenet step make_paper_inputs --config {input.config} > {log} 2>&1"


rule build_paper:
    input:
        "paper/generated/numbers.tex",
        "paper/paper.tex",
        "paper/latexmkrc",
    output:
        report(PAPER_PDF, category="Paper", caption="report/paper.rst"),
    log:
        f"{OUT}/logs/build_paper.log",
    shell:
        "python -m convnext_tinyimagenet step build_paper > {log} 2>&1 || {{ tail -n 5 {log} >&2; exit 1; }}"
