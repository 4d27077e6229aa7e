# `make test` on a fresh machine creates .venv, installs the development
# requirements into it, lints, and runs every test.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

RUNTIME_VENV := .venv-runtime-sdk
RUNTIME_STAMP := $(RUNTIME_VENV)/.installed
# The tests that talk to AWS through botocore, run again on the runtime's older SDK.
RUNTIME_SDK_TESTS := tests/aws tests/access tests/state tests/deploy tests/follow tests/triggers \
	tests/test_app.py tests/test_event_patterns.py tests/test_freezes.py tests/test_freeze_review.py

# The dashboard's browser tests (tests/dashboard) drive Debian's Chromium with its chromedriver.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
BROWSER_SKIPPED := *** Chromium is not installed: the browser tests (tests/dashboard) are SKIPPED. Install it with: apt-get install -y chromium chromium-driver ***

.PHONY: test lint dev clean test-runtime-sdk fuzz deploy chromium

# The tests run on every core (pytest-xdist), each file's tests on one worker: a file's servers start once.
PARALLEL := -n auto --dist loadfile

test: $(STAMP) $(RUNTIME_STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PARALLEL)
	$(RUNTIME_VENV)/bin/pytest -q -p no:cacheprovider $(PARALLEL) $(RUNTIME_SDK_TESTS)
	@test -x $(CHROMIUM) -a -x $(CHROMEDRIVER) || echo "$(BROWSER_SKIPPED)"

# Chromium for the browser tests, when it is missing and this machine can install it (root, apt-get): the
# package lists are updated only if the install fails without. Otherwise the tests are skipped, and say so.
chromium:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Chromium for the browser tests: apt-get install -y chromium chromium-driver"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver \
		|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; } \
		|| echo "$(BROWSER_SKIPPED)"; \
	else \
		echo "$(BROWSER_SKIPPED)"; \
	fi

test-runtime-sdk: $(RUNTIME_STAMP)
	$(RUNTIME_VENV)/bin/pytest -q -p no:cacheprovider $(PARALLEL) $(RUNTIME_SDK_TESTS)

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
# AUTH_MODE=iam make dev: with IAM sign-in, every request signed (SigV4) as local / local.
dev: $(STAMP)
	$(if $(AUTH_MODE),AUTH_MODE=$(AUTH_MODE)) $(BIN)/python scripts/local_aws.py

# The whole service as one CloudFormation stack: infra/service.yaml merged into the SAM
# template of `chalice package`, the code uploaded to DEPLOY_BUCKET, the stack deployed, then
# .api.env written from its outputs. Needs AWS credentials, a region and the AWS CLI in the
# environment. Running it again with nothing changed uploads nothing and changes nothing.
DEPLOY_BUCKET ?=
# The functions' log permissions cover /aws/lambda/ecs-image-updater-*, and CloudFormation
# names each function <stack>-<logical id>-<suffix>: keep the stack name's prefix.
STACK_NAME ?= ecs-image-updater
# true or false: the SNS topic for deployment outcomes. Unset, like any parameter not given,
# the stack keeps its current value (aws cloudformation deploy), false at first.
NOTIFICATION_TOPIC ?=
# More NAME=value overrides of infra/service.yaml's parameters (RateLimit, QuotaLimit, ...).
DEPLOY_PARAMETERS ?=
# key or iam: how callers sign in. The routes' authorizers are part of the template, so chalice package
# must see it; a stage's own AUTH_MODE (environment_variables in .chalice/config.json) wins.
AUTH_MODE ?=
DEPLOY_OVERRIDES = $(strip $(if $(NOTIFICATION_TOPIC),NotificationTopic=$(NOTIFICATION_TOPIC)) $(DEPLOY_PARAMETERS))
WORKLOAD_STACK ?= ecs-image-updater-workload
PACKAGE_DIR := build/package
PACKAGED_TEMPLATE := build/packaged.yaml

ifneq ($(filter deploy,$(MAKECMDGOALS)),)
ifeq ($(strip $(DEPLOY_BUCKET)),)
$(error DEPLOY_BUCKET is not set: make deploy DEPLOY_BUCKET=<an S3 bucket in the stack's region, for the code>)
endif
endif

# chalice package zips chalicelib/ whole, __pycache__ included, and a .pyc holds its source's
# mtime: without them the zip is byte-identical from run to run, so nothing is uploaded again.
# A YAML merge template makes chalice package write sam.yaml, not sam.json. A template over
# 51,200 bytes can only be deployed from S3, hence --s3-bucket for deploy too.
deploy: $(STAMP)
	rm -rf $(PACKAGE_DIR)
	find chalicelib -name __pycache__ -type d -prune -exec rm -rf {} +
	$(if $(AUTH_MODE),AUTH_MODE=$(AUTH_MODE)) PYTHONDONTWRITEBYTECODE=1 \
		$(BIN)/chalice package --merge-template infra/service.yaml --stage dev $(PACKAGE_DIR)
	aws cloudformation package --template-file $(PACKAGE_DIR)/sam.yaml --s3-bucket $(DEPLOY_BUCKET) \
		--output-template-file $(PACKAGED_TEMPLATE)
	aws cloudformation deploy --template-file $(PACKAGED_TEMPLATE) --stack-name $(STACK_NAME) \
		--s3-bucket $(DEPLOY_BUCKET) --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
		$(if $(DEPLOY_OVERRIDES),--parameter-overrides $(DEPLOY_OVERRIDES))
	$(BIN)/python scripts/aws_connection.py --stack $(STACK_NAME) --workload-stack $(WORKLOAD_STACK)
