# The artifact: `snakemake --cores all` reruns both experiments as papermill notebooks, renders
# them to HTML, rebuilds every figure and table from result files, and builds the paper.
# The offline demo is the same workflow on synthetic data:
#   snakemake --cores all --configfile config/smoke.yaml
# This file only wires; rules live in rules/*.smk, each rule's script in rules/scripts/, logic
# in src/convnext_tinyimagenet. The DAG is the one manifest: every path is written once, in the
# rule that makes it, and each script gets its paths and values from `snakemake.input`,
# `snakemake.output` and `snakemake.params`. Loading the workflow writes no file.
# Rules call `python` and expect the project's environment on PATH (`make demo`, the container,
# or an activated .venv).
import os
import sys

from snakemake.utils import min_version

from convnext_tinyimagenet.config import ConfigError, finish_config, read_config_file

min_version("9.0")


# What a user tunes, then the published study's facts: a --configfile is merged onto both.
configfile: "config/config.yaml"
configfile: "config/study.yaml"


# As the CLI loads it: each variant (`from: <parent>` + what it changes) resolved to a full
# section, then the CLI's validator (config/schema.yaml; an integer is an int, not 32.0), one
# line per problem. Rules see only resolved sections.
# `--config set=key.path=value` changes one value (finish_config), and goes. Each file is read
# again as the CLI reads it: Snakemake's loader keeps the last of a key written twice.
# An error names the files in merge order (ours, then each --configfile), then --config.
given = [os.path.abspath(path) for path in workflow.overwrite_configfiles]
merged = [p for p in workflow.configfiles if os.path.abspath(p) not in given] + given
if workflow.config_settings.config:
    merged.append("--config " + " ".join(workflow.config_settings.config))
try:
    for path in workflow.configfiles:
        read_config_file(path)
    finished = finish_config(config, " + ".join(map(str, merged)))
except ConfigError as exc:
    sys.exit(f"error: {exc}")  # one line: Snakemake would add a traceback
config.clear()
config.update(finished)


# The software of every rule: the project's image (Dockerfile; it installs envs/requirements.txt,
# as `make` does), as the config names it (`container`). Used only with
# `--software-deployment-method apptainer`.
container: config["container"]


include: "rules/common.smk"
include: "rules/archive.smk"
include: "rules/data.smk"
include: "rules/published.smk"
include: "rules/experiments.smk"
include: "rules/figures.smk"
include: "rules/tables.smk"
include: "rules/study.smk"
include: "rules/paper.smk"
include: "rules/verify.smk"


rule all:
    # every file the workflow makes: a deleted one is made again by the plain command
    input:
        everything(),
