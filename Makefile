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

# Serves the shipped model on http://127.0.0.1:8000 with a fresh demo key.
run: install
	@$(BIN)/dropout-risk models list --models-dir $(MODELS_DIR)
	@KEY=$$($(BIN)/dropout-risk keys create --name demo --tenant demo --scopes predict,models:admin,clients:write,clients:read) && \
	  echo "" && echo "dropout-risk API on http://127.0.0.1:8000  (docs: http://127.0.0.1:8000/docs)" && \
	  echo "demo key for clinic 'demo' (scopes predict, models:admin, clients:write, clients:read): $$KEY" && \
	  echo "try: curl -s -H \"Authorization: Bearer $$KEY\" http://127.0.0.1:8000/v1/models/current" && \
	  echo "" && exec $(BIN)/dropout-risk serve --host 127.0.0.1 --port 8000 --models-dir $(MODELS_DIR)

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
