# localai-authd — developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STATE := $(CURDIR)/.state

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes -r requirements/dev.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(STAMP) ## create .venv from the hash-pinned lock file

run: $(STAMP) ## run the daemon in the foreground; state + keyring under ./.state
	mkdir -p -m 0700 $(STATE)
	$(BIN)/localai-authd --state-dir $(STATE) --control-socket $(STATE)/control.sock \
	  --keyring-backend file --listen 127.0.0.1:11435 --upstream http://127.0.0.1:11434

FAKE_UPSTREAM_PORT ?= 11434
fake-upstream: $(STAMP) ## the tests' fake Ollama/OpenAI upstream on 127.0.0.1:11434, for make run
	$(BIN)/python -m tests.fakeupstream --port $(FAKE_UPSTREAM_PORT)

test: $(STAMP) ## run the test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff
	$(BIN)/ruff check localai_authd tests packaging $(wildcard bench) soak
	$(BIN)/ruff format --check localai_authd tests packaging $(wildcard bench) soak

typecheck: $(STAMP) ## mypy --strict on the package
	$(BIN)/mypy

deb: ## build dist/localai-authd_*.deb from a clean export (lintian clean)
	packaging/build-deb.sh --install-deps

package-check: ## .deb + lintian + unit checks + a booted Debian 12 systemd (root, ~2 min)
	packaging/test/package-stage.sh

BENCH_VENV := bench/.venv
$(BENCH_VENV)/.installed: requirements/bench.lock
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements/bench.lock
	touch $@

bench: $(STAMP) $(BENCH_VENV)/.installed ## gateway vs direct vs nginx, published to bench/ (~16 min)
	$(BENCH_VENV)/bin/python -m bench --publish $(BENCH_ARGS)

bench-quick: $(STAMP) $(BENCH_VENV)/.installed ## the same in about a minute (not published)
	$(BENCH_VENV)/bin/python -m bench --quick $(BENCH_ARGS)

SOAK_SECONDS ?= 600
soak: $(STAMP) ## mixed traffic against a real daemon; RSS, fds, tasks must not grow (SOAK_SECONDS=600)
	$(BIN)/python -m soak --seconds $(SOAK_SECONDS)

check: lint typecheck test package-check ## lint, types, tests, the package stage (what CI runs)

lock: ## re-pin requirements/*.lock from requirements/*.in (needs uv)
	cd requirements && uv pip compile --python-version 3.11 --generate-hashes --no-header -q runtime.in -o runtime.lock
	cd requirements && uv pip compile --python-version 3.11 --generate-hashes --no-header -q dev.in -o dev.lock
	cd requirements && uv pip compile --python-version 3.11 --generate-hashes --no-header -q bench.in -o bench.lock

clean: ## remove the venv, caches and ./.state
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache $(STATE) build dist *.egg-info

.PHONY: help venv run fake-upstream test soak lint typecheck deb package-check bench bench-quick check lock clean
