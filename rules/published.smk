# The published predictions: fetched by URL, pinned by sha256, recomputed.
import re

from convnext_tinyimagenet.verify.published import sha256

# each published CSV's pin (url, sha256) and path by its file name: one fetch_published job each
PINS_BY_FILE = {
    os.path.basename(path): PUBLISHED["runs"][run]["predictions"]
    for run, path in PUBLISHED_FILES.items()
}
PATH_BY_FILE = {os.path.basename(path): path for path in PUBLISHED_FILES.values()}


rule fetch_published:
    # One job per file. The CSV itself, downloaded here or placed by hand, is no rule's output:
    # Snakemake deletes a job's outputs before it runs the job again (after a new pin, a changed
    # script, ...), and a file a user placed must never go. The output is a receipt (path, URL,
    # sha256, size) that the rules reading the CSV take as input; each checks the CSV's sha256
    # again when it reads it.
    output:
        f"{OUT}/published/fetched/{{published_file}}.json",
    log:
        f"{OUT}/logs/fetch_published/{{published_file}}.log",
    wildcard_constraints:
        published_file="|".join(re.escape(name) for name in PINS_BY_FILE),
    params:
        # the pin and where the file goes: another output folder or seed fetches nothing
        url=lambda wildcards: PINS_BY_FILE[wildcards.published_file]["url"],
        sha256=lambda wildcards: PINS_BY_FILE[wildcards.published_file]["sha256"],
        path=lambda wildcards: PATH_BY_FILE[wildcards.published_file],
        # what lies there now (the pin while nothing does): a file changed after its check
        # reruns this job, which refuses it, and with it every check that read it
        found=lambda wildcards: (
            sha256(PATH_BY_FILE[wildcards.published_file])
            if os.path.isfile(PATH_BY_FILE[wildcards.published_file])
            else PINS_BY_FILE[wildcards.published_file]["sha256"]
        ),
    script:
        "scripts/fetch_published.py"


rule summarize_published:
    input:
        fetched=published_receipts(),
    output:
        report(
            f"{OUT}/published/summary.json",
            category="Published claims",
            caption="report/published.rst",
        ),
    log:
        f"{OUT}/logs/summarize_published.log",
    params:
        # in published.runs order, as the claims and pins below
        predictions=list(PUBLISHED_FILES.values()),
        claims={run: spec["claim"] for run, spec in PUBLISHED["runs"].items()},
        pins={
            run: spec["predictions"]["sha256"]
            for run, spec in PUBLISHED["runs"].items()
        },
    script:
        "scripts/summarize_published.py"
