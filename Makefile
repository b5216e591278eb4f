# Two entry points for a fresh machine: `make demo` and `make test`.
# TORCH_SPEC picks the torch build; override it for CUDA (e.g. make TORCH_SPEC=torch demo).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test experiment clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test,demo]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/sdvideo demo --out runs/demo

experiment: $(STAMP)
	$(BIN)/python bench/experiment.py --out runs/experiment

# Two worker processes (pytest-xdist): much of the suite is single-threaded Python, which one process
# cannot spread over two cores.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
