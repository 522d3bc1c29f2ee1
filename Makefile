# `make run`: the example app against the bundled development provider.
# `make test`: ruff, mypy and the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROVIDER := tests/provider

.PHONY: setup run check test lint bench dist docs clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[redis,dev]'
	touch $@

$(PROVIDER)/node_modules/.package-lock.json: $(PROVIDER)/package-lock.json
	npm ci --prefix $(PROVIDER) --no-audit --no-fund --loglevel=error

setup: $(BIN)/.installed $(PROVIDER)/node_modules/.package-lock.json

# `make run PORT=8000 PROVIDER_PORT=9500` moves them; the provider's allowed URLs follow.
PORT ?= 5000
PROVIDER_PORT ?= 9400
# The provider runs on the Node.js LTS its package.json pins, when npm could install it.
PINNED_NODE = $(firstword $(wildcard $(PROVIDER)/node_modules/node-linux-*/bin/node) node)

# The example renews its session every minute, so that you can watch it happen.
run: export OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS ?= 60
run: export OP_PORT = $(PROVIDER_PORT)
run: export OP_APP_PORT = $(PORT)
run: setup
	@echo "Provider: http://127.0.0.1:$(PROVIDER_PORT)   App: http://127.0.0.1:$(PORT)   (Ctrl-C stops both)"
	@$(PINNED_NODE) $(PROVIDER)/server.mjs & provider=$$!; \
	trap 'kill $$provider 2>/dev/null' EXIT INT TERM; \
	$(BIN)/flask --app example_app run --host 127.0.0.1 --port $(PORT)

# `flask oidc check` of the example app, against the provider of `make run` (start that first).
check: export OP_PORT = $(PROVIDER_PORT)
check: setup
	$(BIN)/flask --app example_app oidc check --url http://127.0.0.1:$(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/sphinx-build -q -W -b html docs docs/_build/html
	$(BIN)/pytest

# wrk (a load generator in C) keeps the HTTP figures steady; installed when apt can.
bench: setup
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; }; } \
	  >/dev/null 2>&1; } || \
	  echo "(wrk is not installed: the HTTP figures come from a Python load generator)"
	$(BIN)/python bench/bench.py

# The sdist and the wheel, checked, then installed alone (runtime dependencies only) in a clean
# virtual environment, where the package must import and find its script.
dist: setup
	rm -rf dist .dist-venv
	$(BIN)/python -m build --no-isolation --outdir dist
	$(BIN)/twine check --strict dist/*
	$(PYTHON) -m venv .dist-venv
	.dist-venv/bin/python -m pip install --quiet dist/*.whl
	cd /tmp && $(CURDIR)/.dist-venv/bin/python $(CURDIR)/tests/smoke_installed.py

docs: setup
	$(BIN)/sphinx-build -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) $(PROVIDER)/node_modules docs/_build dist .dist-venv .pytest_cache \
	  .mypy_cache .ruff_cache
