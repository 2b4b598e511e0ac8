# The published predictions: fetched by URL, pinned by sha256, recomputed.
import re

# each published CSV's pin (url, sha256) by its file name: fetch_published makes one per job
PINS_BY_FILE = {
    os.path.basename(path): PUBLISHED["runs"][run]["predictions"]
    for run, path in PUBLISHED_FILES.items()
}


rule fetch_published:
    # one job per file: Snakemake removes a job's outputs before it runs, and a file placed by
    # hand must not go because its sibling is missing
    output:
        f"{PUBLISHED['download_dir']}/{{published_file}}",
    log:
        f"{OUT}/logs/fetch_published/{{published_file}}.log",
    wildcard_constraints:
        published_file="|".join(re.escape(name) for name in PINS_BY_FILE),
    params:
        # only the pin: a file placed by hand is not fetched again for any other change
        url=lambda wildcards: PINS_BY_FILE[wildcards.published_file]["url"],
        sha256=lambda wildcards: PINS_BY_FILE[wildcards.published_file]["sha256"],
    script:
        "scripts/fetch_published.py"


rule summarize_published:
    input:
        # in published.runs order, as the claims and pins below
        predictions=list(PUBLISHED_FILES.values()),
    output:
        report(
            f"{OUT}/published/summary.json",
            category="Published claims",
            caption="report/published.rst",
        ),
    log:
        f"{OUT}/logs/summarize_published.log",
    params:
        claims={run: spec["claim"] for run, spec in PUBLISHED["runs"].items()},
        pins={
            run: spec["predictions"]["sha256"]
            for run, spec in PUBLISHED["runs"].items()
        },
    script:
        "scripts/summarize_published.py"
