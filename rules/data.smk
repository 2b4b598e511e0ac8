# The decoded dataset and the published predictions.


rule prepare_data:
    input:
        config=ancient(RESOLVED),
    output:
        f"{OUT}/data/data.json",
    log:
        f"{OUT}/logs/prepare_data.log",
    params:
        data=json.dumps(config["data"], sort_keys=True),
    shell:
        "python -m convnext_tinyimagenet prepare-data --config {input.config} --no-progress --out {output} > {log} 2>&1"


rule fetch_published:
    # one job per file: Snakemake removes a job's outputs before it runs, and a file placed by
    # hand must not go because its sibling is missing
    input:
        config=ancient(RESOLVED),
    output:
        f"{config['published']['download_dir']}/{{published_file}}",
    log:
        f"{OUT}/logs/fetch_published/{{published_file}}.log",
    wildcard_constraints:
        published_file="|".join(re.escape(name) for name in PUBLISHED_BY_FILE),
    params:
        run=lambda wildcards: PUBLISHED_BY_FILE[wildcards.published_file],
        # only the pin: a file placed by hand is not fetched again for any other change
        pin=lambda wildcards: json.dumps(
            config["published"]["runs"][PUBLISHED_BY_FILE[wildcards.published_file]][
                "predictions"
            ],
            sort_keys=True,
        ),
    shell:
        "python -m convnext_tinyimagenet step fetch_published --config {input.config}"
        " --experiment {params.run} > {log} 2>&1 || {{ tail -n 4 {log} >&2; exit 1; }}"


rule summarize_published:
    input:
        config=ancient(RESOLVED),
        predictions=published_files(),
    output:
        report(
            f"{OUT}/published/summary.json",
            category="Published claims",
            caption="report/published.rst",
        ),
    log:
        f"{OUT}/logs/summarize_published.log",
    params:
        published=json.dumps(config["published"], sort_keys=True),
    shell:
        "python -m convnext_tinyimagenet step summarize_published --config {input.config} > {log} 2>&1"
