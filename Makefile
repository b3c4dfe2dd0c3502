# Two commands for a fresh machine: `make run` (install on first use, start the app) and `make test`.
# The virtual environment lives outside the clone, keyed by a hash of the requirements, so a second
# clone or a CI re-run reuses it.
SHELL := /bin/bash
PYTHON ?= python3
REQ_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
VENV ?= $(HOME)/.cache/tavaal-explorer/venv-$(REQ_HASH)
PORT ?= 8501
export PYTHONPATH := $(CURDIR)
# Passive OpenMP waits: spinning threads made stages 50x slower whenever another process was busy.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: run test bench bench-executors venv venv-path chromium clean-venv

# No file prerequisites: the folder's name already holds the requirements' hash, and a fresh clone's
# newer file times must not trigger a reinstall.
$(VENV)/.installed:
	@mkdir -p $(dir $(VENV))
	@# Build into a temporary folder and rename, so an interrupted install never leaves a half venv.
	rm -rf $(VENV).tmp && $(PYTHON) -m venv $(VENV).tmp
	$(VENV).tmp/bin/pip install --quiet --upgrade pip
	$(VENV).tmp/bin/pip install --quiet -r requirements-dev.txt
	rm -rf $(VENV) && mv $(VENV).tmp $(VENV)
	@# venv scripts embed their folder's path: recreate them for the final location.
	$(PYTHON) -m venv --upgrade $(VENV) >/dev/null
	touch $@

venv: $(VENV)/.installed

venv-path:
	@echo $(VENV)

run: venv
	$(VENV)/bin/python scripts/serve.py --server.address=127.0.0.1 --server.port=$(PORT) \
		--server.headless=true --browser.gatherUsageStats=false

chromium:
	@bash scripts/ensure_chromium.sh

test: venv chromium
	$(VENV)/bin/python -m pytest -q tests

bench: venv chromium
	$(VENV)/bin/python bench/bench_stages.py
	$(VENV)/bin/python bench/bench_learner.py
	$(VENV)/bin/python bench/bench_step.py
	$(VENV)/bin/python bench/bench_paper.py --quick
	$(VENV)/bin/python bench/bench_browser.py

# digits_demo sequential vs 2 local workers vs a local Ray instance (minutes on 2 cores)
bench-executors: venv
	$(VENV)/bin/python bench/bench_executors.py

clean-venv:
	rm -rf $(VENV) $(VENV).tmp
