# kairn: the interface the README, CI and reviewers use. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY      := .venv/bin/python
PYTEST  := .venv/bin/pytest
BIN     := .tools/bin
STAMP   := .tools/.setup-done
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/.venv/bin:$(PATH)

SETUP_INPUTS := requirements.txt constraints.txt pyproject.toml tools/kafka/pom.xml tools/kafka4/pom.xml tools/jmx/pom.xml \
                $(wildcard tools/go/*/go.mod tools/go/kube/*/go.mod) $(wildcard scripts/setup-*.sh) tools/checkov-constraints.txt Dockerfile

.PHONY: help setup test test-unit test-devtools test-chart test-image test-integration test-e2e image cluster-up cluster-down lint up down bench lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## install everything into .venv/ and .tools/ (idempotent; a second run is quick)
	@scripts/setup-all.sh
	@touch $(STAMP)

# `make test` and `make up` work on a fresh machine: they run setup once, through this stamp.
$(STAMP): $(SETUP_INPUTS)
	@$(MAKE) --no-print-directory setup

test: $(STAMP) ## every test tier; fails when a tier fails or runs no test
	@scripts/run-tests.sh all

test-unit: $(STAMP) ## pure logic only (seconds)
	@scripts/run-tests.sh unit

test-devtools: $(STAMP) ## the test support code: harness, local control plane, process nodes
	@scripts/run-tests.sh devtools

test-chart: $(STAMP) ## helm-unittest, values matrix with Helm 3 and 4, schemas, checkov
	@scripts/run-tests.sh chart

test-image: $(STAMP) ## the kairn image run as the chart runs it (builds it first when needed)
	@scripts/run-tests.sh image

test-integration: $(STAMP) ## against a real TLS ZooKeeper + 3-broker Kafka cluster
	@scripts/run-tests.sh integration

test-e2e: $(STAMP) ## against a real local Kubernetes control plane (and the real Kafka cluster)
	@scripts/run-tests.sh e2e

image: $(STAMP) ## build the kairn image docker.io/kairn/kairn:<chart version> with podman, and its SBOM
	@scripts/image-build.sh

cluster-up: $(STAMP) ## start the local Kubernetes control plane in .run/kube (kubeconfig printed)
	@$(PY) -m devtools.kube up .run/kube

cluster-down: $(STAMP) ## stop the local Kubernetes control plane
	@$(PY) -m devtools.kube down .run/kube

lint: $(STAMP) ## ruff, yamllint, helm lint (Helm 3 and 4), hadolint
	@scripts/lint.sh

up: $(STAMP) ## start the local playground (MODE=kraft: KRaft mode, Kafka 4) and print how to connect
	@[ ! -x $(BIN)/podman ] || scripts/image-build.sh
	@KAIRN_NODE_RUNTIME=auto $(PY) -m devtools.playground up $(if $(MODE),--mode $(MODE))

down: $(STAMP) ## stop the local playground, leaving nothing running
	@$(PY) -m devtools.playground down

bench: $(STAMP) ## run the benchmarks (the agents' in ZooKeeper and KRaft mode); figures printed and written to bench/results/
	@scripts/run-bench.sh

lock: ## re-resolve constraints.txt from requirements.txt (needs the registry)
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.txt
	.lock-venv/bin/pip freeze --exclude-editable > constraints.txt
	rm -rf .lock-venv
