# The two commands: `make up` (the whole stack on this machine) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install up test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[ml,dev]"
	touch $(STAMP)

install: $(STAMP)

# On a machine with ../shared (weights, u2netp, data sets), the stack trains its first model
# from dress-patterns by itself (pooled-nobg: what `auto` picks there, in ~7 minutes on 2
# cores instead of ~35 for all three candidates); elsewhere Keras and rembg download weights.
SHARED ?= $(abspath ../shared)
up: $(STAMP)
	@if [ -d "$(SHARED)/models" ]; then \
	  export SWATCH_BACKBONE_WEIGHTS="$${SWATCH_BACKBONE_WEIGHTS:-$(SHARED)/models/vgg16_imagenet_notop.weights.h5}" \
	         SWATCH_U2NET_HOME="$${SWATCH_U2NET_HOME:-$(SHARED)/models}" \
	         SWATCH_BOOTSTRAP_DATASET="$${SWATCH_BOOTSTRAP_DATASET:-$(SHARED)/datasets/dress-patterns}" \
	         SWATCH_BOOTSTRAP_RECIPE="$${SWATCH_BOOTSTRAP_RECIPE:-pooled-nobg}"; \
	fi; $(VENV)/bin/swatch up

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Installs Redis/PostgreSQL if missing (as root), starts a throwaway PostgreSQL, lints, tests.
test:
	bash scripts/test.sh

bench: $(STAMP)
	$(PY) -m bench.bench_model

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
