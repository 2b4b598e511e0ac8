# Verification: the published claims, the reruns against them, and checksums of every file that
# goes into the paper. Order (no cycle): the verification table goes into the paper, the paper
# into SHA256SUMS, and the verify rule checks SHA256SUMS last. The verdict JSONs record the
# files they read, so `python -m convnext_tinyimagenet verify --check <verdict JSON>` checks the
# same files again by hand.

# What the checks read of each published run: its claim, how its notebook computed it, its image
# order and its pinned file (not its learning curves, whose change would rerun them for nothing).
# The runs verification checks: every seed of the published recipes (the ablations' runs are
# the study's), named <experiment>/seed<N> in the verdict.
PUBLISHED_RUNS = [(name, seed) for name, seed in RUNS if name in PUBLISHED_PAIR]
CLAIMS = {
    run: {key: spec[key] for key in ("claim", "claim_metric", "source", "predictions")}
    for run, spec in PUBLISHED["runs"].items()
}


rule verify_published:
    input:
        # in published.runs order, as CLAIMS
        fetched=if_published(published_receipts()),
    output:
        f"{OUT}/published/verification.json",
    log:
        # Snakemake deletes a failed job's outputs but keeps its logs: the verdict is written
        # there first, so a failed check keeps its JSON (logs/...) as well as its printout.
        printed=f"{OUT}/logs/verify_published.log",
        verdict=f"{OUT}/logs/verify_published.json",
    params:
        # the CSVs, in published.runs order as CLAIMS (their receipts are the inputs)
        published=if_published(PUBLISHED_FILES.values()),
        runs=CLAIMS,
        rounding_pp=config["verification"]["claim_rounding_pp"],
        discrepancies=config["discrepancies"],
    script:
        "scripts/verify_published.py"


rule make_verification_table:
    input:
        # every run of the published recipes (PUBLISHED_RUNS), with its source's data summary
        data=[source_data(name) for name, _ in PUBLISHED_RUNS],
        summaries=per_run(rules.run_experiment.output.summary, PUBLISHED_PAIR),
        predictions=per_run(rules.run_experiment.output.predictions, PUBLISHED_PAIR),
        provenance=per_run(rules.run_experiment.output.provenance, PUBLISHED_PAIR),
        fetched=if_published(published_receipts()),
    output:
        md=report(
            f"{OUT}/tables/verification.md",
            category="Verification",
            caption="report/verification.rst",
        ),
        tex=f"{OUT}/tables/verification.tex",
    log:
        f"{OUT}/logs/make_verification_table.log",
    params:
        experiments=run_labels(PUBLISHED_PAIR),
        published=if_published(PUBLISHED_FILES.values()),
        runs=CLAIMS,
        rounding_pp=config["verification"]["claim_rounding_pp"],
        bands=config["verification"]["reruns"],
        discrepancies=config["discrepancies"],
        # each run's settings digest: its provenance must record it (a run's files are one run's)
        digests={
            f"{name}/seed{seed}": settings_digest(config, name, seed)
            for name, seed in PUBLISHED_RUNS
        },
    script:
        "scripts/make_verification_table.py"


rule write_checksums:
    input:
        files=checksummed(),
    output:
        f"{OUT}/SHA256SUMS",
    log:
        f"{OUT}/logs/write_checksums.log",
    script:
        "scripts/write_checksums.py"


rule verify:
    input:
        checksums=rules.write_checksums.output[0],
        data=rules.make_verification_table.input.data,
        summaries=rules.make_verification_table.input.summaries,
        predictions=rules.make_verification_table.input.predictions,
        provenance=rules.make_verification_table.input.provenance,
        fetched=if_published(published_receipts()),
    output:
        report(
            f"{OUT}/verification.json",
            category="Verification",
            caption="report/verification_result.rst",
        ),
    log:
        printed=f"{OUT}/logs/verify.log",
        verdict=f"{OUT}/logs/verify.json",  # kept when the check fails (see verify_published)
    params:
        # what SHA256SUMS must list, exactly: a deleted line is a failed check
        checksummed=lambda wildcards: [str(path) for path in checksummed()],
        experiments=run_labels(PUBLISHED_PAIR),
        published=if_published(PUBLISHED_FILES.values()),
        runs=CLAIMS,
        rounding_pp=config["verification"]["claim_rounding_pp"],
        bands=config["verification"]["reruns"],
        discrepancies=config["discrepancies"],
        # each run's settings digest: its provenance must record it (a run's files are one run's)
        digests={
            f"{name}/seed{seed}": settings_digest(config, name, seed)
            for name, seed in PUBLISHED_RUNS
        },
    script:
        "scripts/verify.py"
