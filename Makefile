# LASER: the two commands a fresh machine needs (see README).
#   make demo   set up, then run the main job
#   make test   set up, then run the test suite
# Both create .venv and install the pinned torch build plus this package on first use.
# GPU machines: pass TORCH_INDEX to pick a CUDA build (README, "Install on a GPU machine").

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.laser-installed

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet "$(TORCH)" --index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Until the LASER-vs-baselines experiment lands, the main job is the bandit benchmark suite.
demo: $(STAMP)
	$(PY) benchmarks/bandit_speed.py
	$(PY) benchmarks/bandit_regret.py

test: $(STAMP)
	$(VENV)/bin/ruff check laser tests benchmarks
	WANDB_MODE=disabled $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check laser tests benchmarks

bench: demo

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
