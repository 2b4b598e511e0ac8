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
    input:
        config=ancient(RESOLVED),
    output:
        [str(local_path(config, run)) for run in PUBLISHED_RUNS],
    log:
        f"{OUT}/logs/fetch_published.log",
    params:
        # only the pins: a file placed by hand is not fetched again for any other change
        pins=json.dumps(
            {
                run: spec["predictions"]
                for run, spec in config["published"]["runs"].items()
            },
            sort_keys=True,
        ),
    shell:
        "python -m convnext_tinyimagenet step fetch_published --config {input.config} > {log} 2>&1"
        " || {{ tail -n 4 {log} >&2; exit 1; }}"


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
