# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run serve test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The demo: every emulator, the bot and a Slack-like console at http://127.0.0.1:3000/.
run: install
	$(BIN)/opsgate demo

## opsgate alone on its embedded defaults (SQLite ./opsgate.db, the example configuration).
serve: install
	$(BIN)/opsgate --config opsgate.example.yaml --allow-unset check
	$(BIN)/opsgate --config opsgate.example.yaml --allow-unset serve

## The whole test suite: SQLite always, PostgreSQL too when 127.0.0.1:5432 answers.
test: install
	$(BIN)/python -m pytest -n auto

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot commands connectors
	$(BIN)/lint-imports

bench: install
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache opsgate.db* .hypothesis
