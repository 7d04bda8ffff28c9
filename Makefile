# The two commands a newcomer needs: `make run` (the service locally) and `make test`.
# Every target creates or reuses .venv and installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 3000

.DEFAULT_GOAL := help
.PHONY: help run test lint bench invoke send-event migrate sam-check clean

help:
	@echo "make run         start the whole service locally on http://127.0.0.1:$(PORT)"
	@echo "make test        run the test suite (real PostgreSQL, embedded unless DATABASE_URL is set)"
	@echo "make lint        ruff check, ruff format --check, bandit"
	@echo "make bench       database CPU per transfer vs. pgbench, client CPU, round trips, cold import"
	@echo "make invoke FN=TransferCreateFunction EVENT=events/transfer_create.json"
	@echo "make send-event FILE=events/sqs_deposit_settled.json [QUEUE=ProviderEventsQueue]"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m tools.local_runtime run --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit -q -c pyproject.toml -r layers functions migrations tools bench

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

invoke: $(STAMP)
	$(BIN)/python -m tools.local_runtime invoke $(FN) --event $(EVENT)

send-event: $(STAMP)
	$(BIN)/python -m tools.local_runtime send-event $(FILE) $(if $(QUEUE),--queue $(QUEUE))

migrate: $(STAMP)
	$(BIN)/python -m tools.local_runtime migrate

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage htmlcov .aws-sam
