# The README's two commands, `make demo` and `make test`, do all set-up on a fresh machine:
# they (re)create .venv from envs/ whenever it is missing or older than the files that define it.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ENV_FILES := envs/requirements.txt envs/requirements-dev.txt envs/lock.txt pyproject.toml
# Workflow rules call `python`, `papermill`...: run them with the venv first on PATH.
RUN    := PATH="$(abspath $(BIN)):$$PATH"

.PHONY: help venv demo test lint format lock

help:
	@echo "make demo   offline demo: both experiments on synthetic data (CPU, minutes)"
	@echo "make test   the whole test suite (lint included)"
	@echo "make lint   ruff, snakefmt, snakemake --lint, hadolint"

venv: $(STAMP)

$(STAMP): $(ENV_FILES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r envs/requirements.txt -r envs/requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

# Offline demo: the whole workflow on the synthetic dataset (config/smoke.yaml) into results/demo/.
demo: $(STAMP)
	$(RUN) $(BIN)/snakemake --cores all --configfile config/smoke.yaml
	@echo "demo outputs: results/demo/ (notebooks, figures, tables, paper.pdf)"

test: $(STAMP) lint
	$(RUN) $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/snakefmt --check Snakefile rules
	$(RUN) $(BIN)/snakemake --lint
	$(RUN) $(BIN)/snakemake --lint --configfile config/smoke.yaml
	$(BIN)/hadolint Dockerfile

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests
	$(BIN)/snakefmt Snakefile rules

lock: $(STAMP)
	( echo "# Full pin set of the environment built from requirements*.txt (pip freeze, Python 3.11, x86-64)."; \
	  echo "# Regenerate: make lock"; $(BIN)/python -m pip freeze --all --exclude-editable | grep -v '^pip==' ) > envs/lock.txt
