# iotfleet.aws — developer entry points. `make test` runs every test; `make demo` runs the
# user's command against the lab. Everything runs from the .venv that `make venv` builds.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_HOME ?= $(CURDIR)/.cache/ansible-home
PYTEST_WORKERS ?= 2

.PHONY: venv test unit integration sanity lint molecule demo lab-up lab-down bench clean

venv:
	@scripts/setup-venv.sh

test: venv unit integration sanity lint molecule
	@echo "make test: all suites passed"

unit: venv
	$(PY) -m pytest -q tests/unit

integration: venv
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m integration tests/integration

sanity: venv
	scripts/sanity.sh

lint: venv
	$(BIN)/ansible-lint

molecule: venv
	$(PY) -m pytest -q -m molecule tests/molecule

clean:
	rm -rf .cache tests/output
