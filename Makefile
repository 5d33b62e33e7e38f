# The whole set-up is two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: run test install lint typecheck unit clean

run: install  ## `genai up`: the platform, a demo project with its docs bot, the gateway on :4000
	$(BIN)/genai up

test: install lint typecheck  ## install if needed, lint, type-check, run the whole suite
	$(BIN)/python -m pytest -n auto

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when the dependencies or the constraints change.
# torch first, pinned: pip then takes the CPU wheel the machine keeps (see constraints.txt).
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
