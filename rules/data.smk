# The decoded dataset.


rule prepare_data:
    output:
        f"{OUT}/data/data.json",
    log:
        f"{OUT}/logs/prepare_data.log",
    params:
        data=config["data"],
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
