# Verification: the published claims, the reruns against them, and checksums of every file that
# goes into the paper. Order (no cycle): the verification table goes into the paper, the paper
# into SHA256SUMS, and `verify --check` checks SHA256SUMS last.


rule verify_published:
    input:
        config=ancient(RESOLVED),
        predictions=published_files(),
    output:
        f"{OUT}/published/verification.json",
    log:
        # Snakemake deletes a failed job's outputs but keeps its logs: the verdict is written
        # there first, so a failed check keeps its JSON (logs/...) as well as its printout.
        printed=f"{OUT}/logs/verify_published.log",
        verdict=f"{OUT}/logs/verify_published.json",
    params:
        published=json.dumps(config["published"], sort_keys=True),
        verification=json.dumps(config["verification"], sort_keys=True),
    shell:
        "python -m convnext_tinyimagenet verify --published-only --config {input.config}"
        " --out {log.verdict} 2>&1 | tee {log.printed}; cp {log.verdict} {output}"


rule make_verification_table:
    input:
        config=ancient(RESOLVED),
        data=f"{OUT}/data/data.json",
        summaries=per_experiment(f"{OUT}/{{experiment}}/summary.json"),
        predictions=per_experiment(f"{OUT}/{{experiment}}/predictions.csv"),
        published=published_summary(),
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
        published=json.dumps(config["published"], sort_keys=True),
        verification=json.dumps(config["verification"], sort_keys=True),
        discrepancies=json.dumps(config["discrepancies"], sort_keys=True),
    shell:
        "python -m convnext_tinyimagenet verify --write-table --config {input.config} > {log} 2>&1"


rule write_checksums:
    input:
        config=ancient(RESOLVED),
        files=checksum_inputs(),
    output:
        f"{OUT}/SHA256SUMS",
    log:
        f"{OUT}/logs/write_checksums.log",
    shell:
        "python -m convnext_tinyimagenet verify --write-checksums --config {input.config} > {log} 2>&1"


rule verify:
    input:
        config=ancient(RESOLVED),
        checksums=f"{OUT}/SHA256SUMS",
        published=published_verification(),
        summaries=per_experiment(f"{OUT}/{{experiment}}/summary.json"),
        predictions=per_experiment(f"{OUT}/{{experiment}}/predictions.csv"),
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
        published=json.dumps(config["published"], sort_keys=True),
        verification=json.dumps(config["verification"], sort_keys=True),
    shell:
        "python -m convnext_tinyimagenet verify --check --config {input.config} --out {log.verdict}"
        " 2>&1 | tee {log.printed}; cp {log.verdict} {output}"
