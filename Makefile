# The two commands of the README: `make demo` and `make test`. Each builds .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins its own dependencies (some older than ours): it lives in a virtualenv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: demo test lint bench bench-replay cost clean chromium package build-AggregatorFunction build-ChartBuilderFunction build-QuotePollerFunction build-AlarmNotifierFunction

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The Compose specification's JSON schema, as shipped inside the docker-compose 1.29.2 wheel on
# PyPI: fetched at install time so the compose test needs no network.
COMPOSE_SCHEMA := $(VENV)/share/compose-spec/compose_spec.json

$(COMPOSE_SCHEMA): $(STAMP)
	rm -rf $(VENV)/share/compose-wheel && mkdir -p $(VENV)/share/compose-wheel $(dir $(COMPOSE_SCHEMA))
	$(BIN)/pip download --quiet --no-deps --dest $(VENV)/share/compose-wheel docker-compose==1.29.2
	$(BIN)/python -c "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read('compose/config/compose_spec.json'))" $(VENV)/share/compose-wheel/docker_compose-1.29.2-py2.py3-none-any.whl > $(COMPOSE_SCHEMA)

# The SAM CLI, as AWS users run it, for the test that runs `sam validate --lint` and `sam build`.
SAM_VENV := .venv-sam
SAM_VERSION := 1.170.0
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_VERSION)

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==$(SAM_VERSION)
	touch $(SAM_STAMP)

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

demo: $(STAMP)
	$(BIN)/tickstream demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The browser test drives Debian's chromium; install it when it is missing (root, as on CI).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# The Lambda artifacts (build/aggregator, build/charts, build/quote-poller, build/alarm-notifier and their zips), rebuilt when a source changes.
PACKAGED := build/.packaged
# Every product source: all but the tests, benchmarks, docs and what is built or hidden
# (lambda_build/contents.py says which of them each function ships).
FUNCTION_SOURCES := $(shell find . \( -path './.*' -o -name build -o -name tests -o -name bench -o -name docs -o -name test-output \) -prune -o \( -name '*.py' -o -name '*.yaml' \) -print)

$(PACKAGED): $(STAMP) pyproject.toml $(FUNCTION_SOURCES)
	$(BIN)/python -m lambda_build.packages
	touch $(PACKAGED)

package: $(PACKAGED)

# `sam build` runs these (the template's Metadata: BuildMethod makefile, from this folder) with
# ARTIFACTS_DIR set: each copies its `make package` folder, compiled libraries included.
build-AggregatorFunction: $(PACKAGED)
	cp -R build/aggregator/. "$(ARTIFACTS_DIR)"

build-ChartBuilderFunction: $(PACKAGED)
	cp -R build/charts/. "$(ARTIFACTS_DIR)"

build-QuotePollerFunction: $(PACKAGED)
	cp -R build/quote-poller/. "$(ARTIFACTS_DIR)"

build-AlarmNotifierFunction: $(PACKAGED)
	cp -R build/alarm-notifier/. "$(ARTIFACTS_DIR)"

test: lint chromium $(CHECKOV_STAMP) $(SAM_STAMP) $(COMPOSE_SCHEMA) $(PACKAGED)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench.run

# A day of event time for 8 symbols replayed locally: produce into moto, time `consume --until-idle`
# (about 7.5 minutes; BENCHMARKS.md).
bench-replay: $(STAMP)
	TICKSTREAM_BENCH_REPLAY=1 $(BIN)/python -m bench.run

# What a million ticks costs on AWS: a simulated day at 8, 100 and 1,000 symbols, two scales at a time.
cost: $(STAMP)
	$(BIN)/python -m bench.cost

clean:
	-$(BIN)/tickstream down
	rm -rf $(VENV) $(CHECKOV_VENV) $(SAM_VENV) .aws-sam build .tickstream .pytest_cache .mypy_cache .ruff_cache
