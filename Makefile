# Two commands on a fresh machine:  `make train`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EPOCHS ?= 15
ARGS   ?=

.PHONY: train test setup setup-test bench figures clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python
	./scripts/apt-deps.sh
	$(BIN)/pip install -q -e '.[all]'

setup-test: $(BIN)/python
	./scripts/apt-deps.sh browser mpi
	$(BIN)/pip install -q -e '.[all,test]'

## Train the lesson's CNN on the default dataset and report test accuracy.
train: setup
	$(BIN)/convlayer train --epochs $(EPOCHS) $(ARGS)

## Run the whole test suite (oracles against TensorFlow and PyTorch included).
test: setup-test
	$(BIN)/python -m pytest -q $(ARGS)

bench: setup-test
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python benchmarks/run.py $(ARGS)

figures: setup
	$(BIN)/python scripts/make_figures.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
