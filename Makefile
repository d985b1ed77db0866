# iotfleet.aws — developer entry points.
#   make demo   bring up the lab and run the user's command (twice: the second run changes nothing)
#   make test   every test: unit, integration (the IoT Core stand-in), sanity, lint, molecule (the lab's ARMv6 Pis)
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_HOME ?= $(CURDIR)/.cache/ansible-home
PYTEST_WORKERS ?= 2
LAB_DIR ?= $(CURDIR)/.lab
DEMO_PIS ?= 3

.PHONY: venv host lab-image lab-up lab-down demo test unit integration sanity lint molecule bench clean
.PHONY: ee

venv:
	@scripts/setup-venv.sh

# apt packages, podman configuration, qemu binfmt (root; otherwise it prints the commands)
host:
	@lab/host-setup.sh

lab-image: host
	@lab/image.sh

lab-up: venv lab-image
	$(PY) lab/lab.py up --dir $(LAB_DIR) --pis $(DEMO_PIS)

lab-down:
	@if [ -x $(PY) ]; then $(PY) lab/lab.py down --dir $(LAB_DIR); else echo "no venv: nothing to take down"; fi

# The user's command, as the README gives it, from the lab's directory (pis.ini is there).
# The AWS endpoint and credentials come from `lab.py env` (the environment, as for any AWS tool);
# the only lab variable in the lab dir is the root CA the Pis trust (group_vars/all/lab.yml).
# DEMO_VARS='k=v ...' passes extra variables to both runs (e.g. DEMO_VARS='iotfleet_key_mode=device').
LAB_ENV = eval "$$($(PY) lab/lab.py env --dir $(LAB_DIR))"
DEMO_EXTRA = $(if $(DEMO_VARS),-e '$(DEMO_VARS)')
demo: lab-up
	@printf -- '---\n- name: Provision the fleet\n  ansible.builtin.import_playbook: iotfleet.aws.provision\n' > $(LAB_DIR)/provision.yml
	@echo "== first run: ansible-playbook provision.yml -i pis.ini (in $(LAB_DIR))"
	$(LAB_ENV) && cd $(LAB_DIR) && ANSIBLE_CONFIG=$(LAB_DIR)/ansible.cfg ansible-playbook provision.yml -i pis.ini $(DEMO_EXTRA)
	@echo "== second run: nothing may change (changed=0)"
	set -o pipefail; $(LAB_ENV) && cd $(LAB_DIR) && ANSIBLE_CONFIG=$(LAB_DIR)/ansible.cfg ansible-playbook provision.yml -i pis.ini $(DEMO_EXTRA) | tee $(LAB_DIR)/second-run.log
	@! grep -E 'changed=[1-9]' $(LAB_DIR)/second-run.log
	@echo "== the report file (beside the inventory): $(LAB_DIR)/iotfleet-report.json"
	@$(PY) -c 'import json,sys; r=json.load(open(sys.argv[1])); [print("  ", d["host"], d["thing_name"], d["certificate_id"], d["result"]) for d in r["devices"]]' $(LAB_DIR)/iotfleet-report.json
	@echo "== demo done; 'make lab-down' removes the lab"

test: venv unit integration sanity lint molecule
	@echo "make test: all suites passed"

unit: venv
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) tests/unit

integration: venv
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m integration tests/integration

sanity: venv
	scripts/sanity.sh

lint: venv
	ANSIBLE_HOME=$(CURDIR)/.cache/lint-home $(BIN)/ansible-lint

molecule: venv lab-image
	$(PY) -m pytest -q -m molecule tests/molecule

# Benchmarks, each a table + PASS/FAIL per target: fleet_bench.py (registry step, issue 5),
# iotcore_bench.py (the IoT Core stand-in's data plane, issue 8; needs `make host`), then
# scale_bench.py (the cloud side of provision.yml at 10,000 hosts, JITP at 1,000; issue 12). All
# always run; make fails if any does. BENCH_ARGS goes to all (--quick: smoke run of each, ~4 min);
# IOTCORE_BENCH_ARGS to iotcore_bench.py only (e.g. --devices 2000), SCALE_BENCH_ARGS to
# scale_bench.py only (its default runs 10,000 new devices and their rerun, ~15-25 min here;
# --cases 1000:1000,10000:1000 is the short form).
# kms_bench.py (issue 19): the registry step for 1,000 new devices with the fleet CA key in KMS vs a file.
# Then slice_bench.py (issue 19): three AWX job slices of 1,000 new devices started together vs one
# run of 3,000 (provision.yml's controller plays: wall, lock waits, conflicts, one ACTIVE certificate per
# thing; --quick: 3 x 50 vs 150); SLICE_BENCH_ARGS to it only (e.g. --devices 6000 --slices 4).
# Last, device_bench.py (issue 12 item 3; needs the lab image): remote module runs and seconds per
# emulated Pi, first run and rerun, both key modes (--quick: controller only); DEVICE_BENCH_ARGS
# to it only (e.g. --pis 3).
bench: venv
	@rc=0; \
	echo "$(PY) benchmarks/fleet_bench.py $(BENCH_ARGS)"; \
	$(PY) benchmarks/fleet_bench.py $(BENCH_ARGS) || rc=1; \
	echo "$(PY) benchmarks/iotcore_bench.py $(BENCH_ARGS) $(IOTCORE_BENCH_ARGS)"; \
	$(PY) benchmarks/iotcore_bench.py $(BENCH_ARGS) $(IOTCORE_BENCH_ARGS) || rc=1; \
	echo "$(PY) benchmarks/scale_bench.py $(BENCH_ARGS) $(SCALE_BENCH_ARGS)"; \
	$(PY) benchmarks/scale_bench.py $(BENCH_ARGS) $(SCALE_BENCH_ARGS) || rc=1; \
	echo "$(PY) benchmarks/kms_bench.py $(BENCH_ARGS)"; \
	$(PY) benchmarks/kms_bench.py $(BENCH_ARGS) || rc=1; \
	echo "$(PY) benchmarks/slice_bench.py $(BENCH_ARGS) $(SLICE_BENCH_ARGS)"; \
	$(PY) benchmarks/slice_bench.py $(BENCH_ARGS) $(SLICE_BENCH_ARGS) || rc=1; \
	echo "$(PY) benchmarks/device_bench.py $(BENCH_ARGS) $(DEVICE_BENCH_ARGS)"; \
	$(PY) benchmarks/device_bench.py $(BENCH_ARGS) $(DEVICE_BENCH_ARGS) || rc=1; \
	exit $$rc

# The execution environment image, built here (no registry, no Galaxy: scripts/ee-build.sh and
# execution-environment-local.yml), then proved by tests/unit/ee/test_ee_image.py (ansible-doc and
# a playbook against the IoT Core stand-in inside it). Not part of `make test`: minutes per build.
# EE_IMAGE=name:tag, EE_BASE_SUITE=bookworm (the one tried), EE_NO_CACHE=1.
EE_IMAGE ?= localhost/iotfleet-ee:latest
ee: venv host
	EE_IMAGE=$(EE_IMAGE) scripts/ee-build.sh
	IOTFLEET_EE_IMAGE=$(EE_IMAGE) $(PY) -m pytest -q -m ee tests/unit/ee

clean:
	rm -rf .cache tests/output
