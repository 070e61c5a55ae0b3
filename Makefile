# Xypr — the two commands are `make run` and `make test`; both go through `make install`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run up test test-faults test-fast lint typecheck services bench clean vendor

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	@uv=$$(command -v uv || echo $(HOME)/.local/bin/uv); [ -x "$$uv" ] || uv="python3 -m uv"; \
	  $$uv sync --frozen --python python3 --quiet
	@touch $@

## Run the whole system in one process on embedded backends with the sandbox (PORT=3000 by default).
run: install
	@$(VENV)/bin/xypr run --sandbox $(if $(PORT),--port $(PORT))

## The service table as processes on this machine (PostgreSQL, RabbitMQ, Redis, a local S3 server), restarted
## when they die; Ctrl+C stops them all. PORT_BASE moves the table (default 3000), WORKERS sets the worker count.
up: install
	@bash scripts/services.sh
	@$(VENV)/bin/xypr up --local $(if $(PORT_BASE),--port-base $(PORT_BASE)) $(if $(WORKERS),--workers $(WORKERS))

## Install everything, start the local services the tests need, run the whole suite.
test: install
	@bash scripts/services.sh
	@$(VENV)/bin/ruff check src tests bench
	@$(VENV)/bin/ruff format --check src tests bench
	@$(VENV)/bin/mypy
	@$(VENV)/bin/pytest -q -p no:cacheprovider -m "not faults"
	@$(MAKE) --no-print-directory test-faults

## The fault suite (docs/reliability.md): gateway + 2 workers on private PostgreSQL/RabbitMQ/Redis, one fault per
## scenario. FAULT_REPEAT=3 runs each scenario three times; the figures go to .xypr-faults/latest.{json,md}.
FAULT_REPEAT ?= 1
test-faults: install
	@mkdir -p .xypr-faults
	@XYPR_FAULT_REPEAT=$(FAULT_REPEAT) XYPR_FAULT_REPORT=.xypr-faults/latest.json \
	  $(VENV)/bin/pytest -q -p no:cacheprovider -m faults tests/faults

test-fast: install
	@$(VENV)/bin/pytest -q -m "not services and not browser and not schemathesis and not faults"

lint: install
	@$(VENV)/bin/ruff check src tests bench && $(VENV)/bin/ruff format --check src tests bench

typecheck: install
	@$(VENV)/bin/mypy

services:
	@bash scripts/services.sh

## Measure the bridge against same-run ceilings (docs/performance.md); BENCH_ARGS=--quick for a ~3 min subset.
bench: install
	@bash scripts/services.sh
	@$(PY) -m bench.run $(BENCH_ARGS)

## Fetch the pinned browser assets (htmx, uPlot, Genesys Client App SDK) from the npm registry and check them.
vendor:
	@bash scripts/vendor.sh

clean:
	rm -rf $(VENV) .xypr-data .xypr-faults .pytest_cache .mypy_cache .ruff_cache
