# The project's commands. Each sets up .venv from pyproject.toml when it is missing or stale.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run demo test bench lint clean browser dashboard-assets

$(STAMP): pyproject.toml
	@if ! $(BIN)/python -c "" 2>/dev/null; then rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/aios up

demo: setup
	$(BIN)/aios demo

test: setup browser lint
	$(BIN)/python -m pytest

# Debian's Chromium for the browser test of approvals in the Prefect UI.
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium; }

# The dashboard's browser assets, refreshed from the npm registry (the versions in
# aios/dashboard/package-lock.json); they are shipped, so running AIOS needs neither npm nor
# the internet.
ASSETS := build/dashboard-assets
VENDOR := aios/dashboard/static/vendor
dashboard-assets:
	rm -rf $(ASSETS) && mkdir -p $(ASSETS)
	cp aios/dashboard/package.json aios/dashboard/package-lock.json $(ASSETS)/
	cd $(ASSETS) && npm ci --ignore-scripts --no-audit --no-fund
	cp $(ASSETS)/node_modules/uplot/dist/uPlot.iife.min.js $(ASSETS)/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	cp $(ASSETS)/node_modules/uplot/LICENSE $(VENDOR)/uPlot.LICENSE
	cd $(VENDOR) && sha256sum uPlot.iife.min.js uPlot.min.css uPlot.LICENSE > SHA256SUMS

bench: setup
	$(BIN)/python -m benchmarks

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
