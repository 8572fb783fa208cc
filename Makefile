# Two commands for a newcomer: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODELS_DIR ?= models

.PHONY: install run test lint typecheck pytest bench shipped-model clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/dropout-risk models list --models-dir $(MODELS_DIR)
	@echo "Shipped model report: $$($(BIN)/dropout-risk models report-path --models-dir $(MODELS_DIR))"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	OMP_NUM_THREADS=1 $(BIN)/pytest -n 2

test: lint typecheck pytest

# Rebuilds the shipped default model (documented in README and docs/model.md).
shipped-model: install
	$(BIN)/dropout-risk simulate --clients 20000 --seed 20261122 --out build/shipped-cohort
	$(BIN)/dropout-risk train --sessions build/shipped-cohort/sessions.csv \
		--clients build/shipped-cohort/clients.csv --models-dir $(MODELS_DIR) --promote --seed 20261122

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
