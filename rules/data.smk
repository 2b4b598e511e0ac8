# The decoded dataset.


rule prepare_data:
    # one store per source the runs read (an experiment's own data.source, else data.source)
    input:
        # the folder source reads the unpacked zip (rules/archive.smk), unless a folder with
        # wnids.txt is already in place (unpacked by hand): that one is read as it is
        folder=lambda wildcards: (
            rules.unpack_tinyimagenet.output
            if wildcards.source == "folder" and not os.path.exists(UNPACKED_MARK)
            else []
        ),
    output:
        f"{OUT}/data/{{source}}/data.json",
    log:
        f"{OUT}/logs/prepare_data/{{source}}.log",
    params:
        data=lambda wildcards: config["data"] | {"source": wildcards.source},
        # the folder's files (names, sizes, times): a changed folder reruns this rule, so the
        # runs after it train again (their identity covers the data's fingerprint)
        version=lambda wildcards: (
            folder_version(config["data"]) if wildcards.source == "folder" else None
        ),
        # the zip the folder came from, when it is there: data.json records its md5 and sha256
        archive=lambda wildcards: (
            {key: TINYIMAGENET[key] for key in ("archive", "md5", "url")}
            if wildcards.source == "folder"
            else None
        ),
    script:
        "scripts/prepare_data.py"


rule write_config:
    # the resolved configuration (all --configfile files merged) beside the results; a rule
    # writes it, so that loading or dry-running the workflow writes nothing
    output:
        f"{OUT}/config.yaml",
    log:
        f"{OUT}/logs/write_config.log",
    params:
        config=config,
    script:
        "scripts/write_config.py"
