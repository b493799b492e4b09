# kairn: the interface the README, CI and reviewers use. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY      := .venv/bin/python
PYTEST  := .venv/bin/pytest
BIN     := .tools/bin
STAMP   := .tools/.setup-done
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/.venv/bin:$(PATH)

SETUP_INPUTS := requirements.txt constraints.txt pyproject.toml tools/kafka/pom.xml \
                tools/go/helm-unittest/go.mod $(wildcard scripts/setup-*.sh)

.PHONY: help setup test test-unit test-chart test-integration test-e2e lint up down bench lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## install everything into .venv/ and .tools/ (idempotent; a second run is quick)
	@scripts/setup-system.sh
	@scripts/setup-python.sh
	@scripts/setup-kafka.sh
	@scripts/setup-go-tools.sh
	@touch $(STAMP)

# `make test` and `make up` work on a fresh machine: they run setup once, through this stamp.
$(STAMP): $(SETUP_INPUTS)
	@$(MAKE) --no-print-directory setup

test: $(STAMP) ## every test tier; fails when a tier fails or runs no test
	@scripts/run-tests.sh all

test-unit: $(STAMP) ## pure logic only (seconds)
	@scripts/run-tests.sh unit

test-integration: $(STAMP) ## against a real TLS ZooKeeper + 3-broker Kafka cluster
	@scripts/run-tests.sh integration

lint: $(STAMP) ## ruff, yamllint (helm lint and hadolint once the chart and image exist)
	@scripts/lint.sh

up: $(STAMP) ## start the local playground cluster in the background and print how to connect
	@$(PY) -m devtools.playground up

down: $(STAMP) ## stop the local playground, leaving nothing running
	@$(PY) -m devtools.playground down

bench: $(STAMP) ## run the benchmarks; figures printed and written to bench/results/
	@scripts/run-bench.sh

lock: ## re-resolve constraints.txt from requirements.txt (needs the registry)
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.txt
	.lock-venv/bin/pip freeze --exclude-editable > constraints.txt
	rm -rf .lock-venv
