# The README's two commands, `make demo` and `make test`, do all set-up on a fresh machine:
# they (re)create .venv from envs/ whenever it is missing or older than the files that define it.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ENV_FILES := envs/requirements.txt envs/requirements-dev.txt envs/lock.txt pyproject.toml
DEMO_OUT ?= results/demo

.PHONY: help venv demo test lint format lock clean-demo

help:
	@echo "make demo   offline demo: both experiments on synthetic data (CPU, minutes)"
	@echo "make test   the whole test suite (lint included)"
	@echo "make lint   ruff only"

venv: $(STAMP)

$(STAMP): $(ENV_FILES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r envs/requirements.txt -r envs/requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

SMOKE := --config config/config.yaml --config config/smoke.yaml

# Offline demo: both experiments on the synthetic dataset (config/smoke.yaml), CPU or GPU.
demo: $(STAMP)
	$(BIN)/python -m convnext_tinyimagenet prepare-data $(SMOKE) --out $(DEMO_OUT)/data.json
	@for exp in baseline improved; do \
		$(BIN)/python -m convnext_tinyimagenet train $(SMOKE) --experiment $$exp --out $(DEMO_OUT)/$$exp && \
		$(BIN)/python -m convnext_tinyimagenet evaluate $(SMOKE) --experiment $$exp --out $(DEMO_OUT)/$$exp \
		|| exit 1; \
	done
	@echo "demo results: $(DEMO_OUT)/{baseline,improved}/ (summary.json, predictions.csv, metrics.jsonl)"

test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

lock: $(STAMP)
	( echo "# Full pin set of the environment built from requirements*.txt (pip freeze, Python 3.11, x86-64)."; \
	  echo "# Regenerate: make lock"; $(BIN)/python -m pip freeze --exclude-editable ) > envs/lock.txt
