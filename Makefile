# The README's two commands, `make demo` and `make test`, do all set-up on a fresh machine:
# they (re)create .venv from envs/ whenever it is missing or older than the files that define it.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
comma  := ,
ENV_FILES := envs/requirements.txt envs/requirements-dev.txt envs/lock.txt pyproject.toml
# Workflow rules call `python`, `papermill`...: run them with the venv first on PATH.
RUN    := PATH="$(abspath $(BIN)):$$PATH"

.PHONY: help venv demo test lint format lock image-test

help:
	@echo "make demo   offline demo: both experiments on synthetic data (CPU, minutes)"
	@echo "make test   the whole test suite (lint included)"
	@echo "make lint   ruff, snakefmt, snakemake --lint, hadolint"
	@echo "make image-test  the Docker image built and checked as a user runs it (root, Docker)"

venv: $(STAMP)

$(STAMP): $(ENV_FILES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r envs/requirements.txt -r envs/requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

# The Debian packages that build the paper (.ci/run and the Dockerfile install the same).
TEX_PACKAGES := latexmk texlive-latex-recommended texlive-latex-extra
# Whether the PDF is built is the config value paper_pdf: the demo decides it here, before
# Snakemake runs, from whether latexmk is installed (--config reads True/False as booleans).
PAPER_PDF := $(if $(shell command -v latexmk),True,False)

# Offline demo: the whole workflow on the synthetic dataset (config/smoke.yaml) into results/demo/.
demo: $(STAMP)
	$(RUN) $(BIN)/snakemake --cores all --configfile config/smoke.yaml --config paper_pdf=$(PAPER_PDF)
	@echo "demo outputs: results/demo/ (notebooks, figures, tables$(if $(filter True,$(PAPER_PDF)),$(comma) paper.pdf))"
	@$(if $(filter False,$(PAPER_PDF)),echo "paper.pdf skipped: latexmk is missing. Install it with"; \
	  echo "  sudo apt-get install $(TEX_PACKAGES)"; echo "then run make demo again.")

test: $(STAMP) lint
	$(RUN) $(BIN)/python -m pytest

# The image (Dockerfile) built, then checked as its users run it: the demo, the verifications, a
# rebuild after a code change, a build by root, and envs/ resolved by Debian 12's python3.11.
# Needs root; installs and starts Docker's engine where missing (.ci/image-test.sh says how).
# CI runs it after `make test`.
image-test: $(STAMP)
	$(RUN) bash .ci/image-test.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests rules/scripts benchmarks
	$(BIN)/ruff format --check src tests rules/scripts benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(RUN) $(BIN)/snakemake --lint
	$(RUN) $(BIN)/snakemake --lint --configfile config/smoke.yaml
	$(BIN)/hadolint Dockerfile

format: $(STAMP)
	$(BIN)/ruff format src tests rules/scripts benchmarks
	$(BIN)/ruff check --fix src tests rules/scripts benchmarks
	$(BIN)/snakefmt Snakefile rules

lock: $(STAMP)
	( echo "# Full pin set of the environment built from requirements*.txt (pip freeze, Python 3.11, x86-64)."; \
	  echo "# Regenerate: make lock"; $(BIN)/python -m pip freeze --all --exclude-editable | grep -v '^pip==' ) > envs/lock.txt
