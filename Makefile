# `make test` on a fresh machine creates .venv, installs the development
# requirements into it, lints, and runs every test.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

RUNTIME_VENV := .venv-runtime-sdk
RUNTIME_STAMP := $(RUNTIME_VENV)/.installed
# The tests that talk to AWS through botocore, run again on the runtime's older SDK.
RUNTIME_SDK_TESTS := tests/test_update.py tests/test_faults.py tests/test_lock.py tests/test_app.py \
	tests/test_rollback.py tests/test_access.py tests/test_status.py tests/test_discovery.py tests/test_fidelity.py \
	tests/test_records.py tests/test_history.py tests/test_outcomes.py tests/test_deployment_status.py \
	tests/test_event_patterns.py tests/test_fanout.py tests/test_descriptions.py tests/test_push.py \
	tests/test_push_policy.py

.PHONY: test lint dev clean test-runtime-sdk fuzz

test: $(STAMP) $(RUNTIME_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest
	$(RUNTIME_VENV)/bin/pytest -q -p no:cacheprovider $(RUNTIME_SDK_TESTS)

test-runtime-sdk: $(RUNTIME_STAMP)
	$(RUNTIME_VENV)/bin/pytest -q -p no:cacheprovider $(RUNTIME_SDK_TESTS)

$(RUNTIME_STAMP): requirements.txt requirements-runtime-sdk.txt
	test -x $(RUNTIME_VENV)/bin/python || $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --upgrade 'pip<26.3'
	$(RUNTIME_VENV)/bin/python -m pip install --quiet -r requirements-runtime-sdk.txt
	touch $(RUNTIME_STAMP)

# Fuzz every operation from openapi.yaml much deeper than `make test` does.
FUZZ_EXAMPLES ?= 600
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider tests/test_openapi.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip<26.3'
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) .pytest_cache .ruff_cache

# Run the service locally against an embedded AWS (moto's server); Ctrl-C stops both.
dev: $(STAMP)
	$(BIN)/python scripts/local_aws.py
