# Two commands on a fresh machine with only Python >= 3.11 and make:
#   make demo   set up the environment, then run the whole pipeline on offline synthetic data
#   make test   set up the environment, then run lint, type checks and the test suite
SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)
VENV := .venv
STAMP := $(VENV)/.liqheat-synced

.PHONY: demo test lint typecheck pytest browser-deps bench clean help

help:
	@echo "make demo   - set up and run the pipeline on offline demo data (site in data/site/)"
	@echo "make test   - set up and run ruff, mypy and the test suite"
	@echo "make bench  - run the benchmarks (prints figures)"

# uv itself: the only thing installed outside the project's venv, and only into ./.tools
$(TOOLS)/bin/uv:
	@echo "installing uv into $(TOOLS)/ (not found on PATH)"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(TOOLS) "uv==0.13.9"

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

demo: $(STAMP)
	$(UV) run --frozen liqheat demo

lint: $(STAMP)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: $(STAMP)
	$(UV) run --frozen mypy

# the browser tests need Chromium (Debian package); installed here when missing
browser-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package) for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

pytest: $(STAMP) browser-deps
	$(UV) run --frozen pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(UV) run --frozen python benchmarks/bench_ingest.py
	$(UV) run --frozen python benchmarks/bench_model.py
	$(UV) run --frozen python benchmarks/bench_site.py

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
