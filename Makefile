# Two commands for a newcomer: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODELS_DIR ?= models

.PHONY: install run test lint typecheck pytest browser bench shipped-model clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Serves the shipped model on http://127.0.0.1:8000 with a demo clinic: a simulated
# caseload of 30 clients (seeded once), an API key and a clinician login key.
run: install
	@$(BIN)/dropout-risk models list --models-dir $(MODELS_DIR)
	@$(BIN)/dropout-risk demo --clinic demo --clients 30 --models-dir $(MODELS_DIR)
	@KEY=$$($(BIN)/dropout-risk keys create --name demo-ehr --tenant demo --scopes predict,models:admin,models:network,clients:write,clients:read) && \
	  LOGIN=$$($(BIN)/dropout-risk keys create --name demo-clinician --tenant demo --scopes clients:read) && \
	  echo "" && echo "dropout-risk on http://127.0.0.1:8000  (API docs: http://127.0.0.1:8000/docs)" && \
	  echo "clinician view: http://127.0.0.1:8000/ui/login  with the access key $$LOGIN" && \
	  echo "API key for clinic 'demo' (predict, models:admin, models:network, clients:write, clients:read): $$KEY" && \
	  echo "try: curl -s -H \"Authorization: Bearer $$KEY\" http://127.0.0.1:8000/v1/caseload" && \
	  echo "" && exec $(BIN)/dropout-risk serve --host 127.0.0.1 --port 8000 --models-dir $(MODELS_DIR)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The browser tests drive Debian's chromium through Playwright (never `playwright install`,
# which downloads a browser): installed here when missing and running as root.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium" >&2; exit 1; fi; }

pytest: install browser
	OMP_NUM_THREADS=1 $(BIN)/pytest -n 2

test: lint typecheck pytest

# Rebuilds the shipped default model (README, "Transport"): a mixture of plausible worlds
# (docs/simulator.md, "Worlds"), SHIPPED_CLIENTS clients each; the training worlds are
# 0..23 and bench/transport.py holds out worlds 1000 and up. SOURCE_DATE_EPOCH fixes the
# creation date, so two runs give the same files byte for byte. OpenBLAS picks its kernels
# by CPU, and they differ in the last bits of a sum, which the model's file shows (measured
# on one machine: its SkylakeX, Haswell and Sandybridge kernels gave three different
# files); SHIPPED_BLAS pins the Haswell (AVX2) kernels, which nearly every x86-64 server
# CPU runs, so machines whose CPUs differ build the same files (with the same libraries).
SHIPPED_BLAS := OPENBLAS_CORETYPE=Haswell
SHIPPED_WORLDS := $(shell seq 0 23)
SHIPPED_CLIENTS ?= 2500
SHIPPED_SEED := 20261201
SHIPPED_EPOCH := 1796083200
shipped-model: install
	rm -rf build/shipped-cohort
	$(SHIPPED_BLAS) $(BIN)/dropout-risk simulate --clients $(SHIPPED_CLIENTS) \
		--seed $(SHIPPED_SEED) --out build/shipped-cohort $(foreach k,$(SHIPPED_WORLDS),--world $(k))
	$(SHIPPED_BLAS) SOURCE_DATE_EPOCH=$(SHIPPED_EPOCH) OMP_NUM_THREADS=1 $(BIN)/dropout-risk train \
		--sessions build/shipped-cohort/sessions.csv --clients build/shipped-cohort/clients.csv \
		--models-dir $(MODELS_DIR) --promote --seed $(SHIPPED_SEED)

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
