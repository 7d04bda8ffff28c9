# The two commands a newcomer needs: `make run` (the service locally) and `make test`.
# Every target creates or reuses .venv and installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 3000
# make fuzz: test cases per operation and phase, and seconds per role (nightly: 500 and 3600).
FUZZ_EXAMPLES ?= 20
FUZZ_MAX_TIME ?= 75

.DEFAULT_GOAL := help
.PHONY: help install test-unit expand-contract run test lint bench invoke send-event migrate token openapi client fuzz dlq redrive sam-check clean typecheck lock sbom audit secrets policy soak

help:
	@echo "make run [DOCKER=1]  start the whole service locally on http://127.0.0.1:$(PORT)"
	@echo "make test        run the test suite (real PostgreSQL, embedded unless DATABASE_URL is set)"
	@echo "make lint        ruff check, ruff format --check, bandit, mypy (make typecheck)"
	@echo "make test-unit   the tests that need no database (quick)"
	@echo "make expand-contract   the previous release's handlers on this commit's schema"
	@echo "make typecheck   mypy (strict: wallet_core, migrations; default: functions, tools, bench)"
	@echo "make lock        re-lock layers/common/requirements.txt (hashes, Lambda arm64 / py3.13)"
	@echo "make sbom        CycloneDX SBOM of the layer from the lock (.aws-sam/sbom/)"
	@echo "make audit       pip-audit over the locked layer requirements"
	@echo "make secrets     detect-secrets scan against .secrets.baseline"
	@echo "make policy      checkov over template.yaml (.checkov.yaml)"
	@echo "make soak SIZE=20000   nightly soak: retries, killed connections, duplicate deliveries"
	@echo "make bench       database CPU per transfer vs. pgbench, client CPU, round trips, cold import"
	@echo "make invoke FN=TransferCreateFunction EVENT=events/transfer_create.json"
	@echo "make send-event FILE=events/sqs_deposit_settled.json [QUEUE=ProviderEventsQueue]"
	@echo "make dlq         list the messages in the running local runtime's dead-letter queue"
	@echo "make redrive     move them back to their source queue, to be processed again"
	@echo "make migrate     apply the database migrations (through the migration function)"
	@echo "make token [ADMIN=1]  print a bearer token for the local API"
	@echo "make openapi     regenerate docs/openapi.json from the handlers (commit it)"
	@echo "make client      generate a Python client from docs/openapi.json into .local/client/"
	@echo "make fuzz        schemathesis vs. the local runtime [FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_MAX_TIME=$(FUZZ_MAX_TIME)]"
	@echo "make clean       remove the venv and caches (.local/ with its database is kept)"

$(STAMP): pyproject.toml layers/common/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The layer's lock first, hash-checked, so the tests run on the versions the layer ships.
	$(BIN)/python -m pip install --quiet --require-hashes -r layers/common/requirements.txt
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m tools.local_runtime run --port $(PORT) $(if $(DOCKER),--docker)

test: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit -q -c pyproject.toml -r layers functions migrations tools bench
	$(MAKE) --no-print-directory typecheck

test-unit: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/unit tests/infrastructure tests/tools/test_deploy_parameters.py $(PYTEST_ARGS)

expand-contract: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider -m expand_contract -rs $(PYTEST_ARGS)

typecheck: $(STAMP)
	$(BIN)/python -m mypy

# The layer's lock (layers/common/requirements.txt): see .ci/lock.
lock: $(STAMP)
	.ci/lock

sbom:
	.ci/sbom

audit:
	.ci/audit

secrets: $(STAMP)
	.ci/secrets

policy:
	.ci/policy

SIZE ?= 20000
soak: $(STAMP)
	$(BIN)/python -m tools.soak --operations $(SIZE)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

invoke: $(STAMP)
	@test -n "$(FN)" || { echo 'make invoke needs FN=<logical id>, e.g. make invoke FN=TransferCreateFunction EVENT=events/transfer_create.json' >&2; exit 2; }
	$(BIN)/python -m tools.local_runtime invoke $(FN) $(if $(EVENT),--event $(EVENT))

send-event: $(STAMP)
	@test -n "$(FILE)" || { echo 'make send-event needs FILE=<event JSON>, e.g. make send-event FILE=events/sqs_deposit_settled.json' >&2; exit 2; }
	$(BIN)/python -m tools.local_runtime send-event $(FILE) $(if $(QUEUE),--queue $(QUEUE))

migrate: $(STAMP)
	$(BIN)/python -m tools.local_runtime migrate

token: $(STAMP)
	@$(BIN)/python -m tools.local_runtime token $(if $(ADMIN),--admin)

dlq: $(STAMP)
	@$(BIN)/python -m tools.local_runtime dlq $(if $(QUEUE),--queue $(QUEUE))

redrive: $(STAMP)
	@$(BIN)/python -m tools.local_runtime redrive $(if $(QUEUE),--queue $(QUEUE))

openapi: $(STAMP)
	$(BIN)/python -m tools.openapi --write

client: $(STAMP)
	$(BIN)/python -m tools.openapi_client

fuzz: $(STAMP)
	$(BIN)/python -m tools.fuzz --examples $(FUZZ_EXAMPLES) --max-time $(FUZZ_MAX_TIME)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage htmlcov .aws-sam
