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
# Open MPI as root, in a container, with more ranks than cores (tests/test_distributed.py runs mpirun -n 2).
MPI_ENV := OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none \
           OMPI_MCA_rmaps_base_oversubscribe=1
test: setup-test
	env $(MPI_ENV) $(BIN)/python -m pytest -q $(ARGS)

bench: setup-test
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python benchmarks/run.py $(ARGS)

figures: setup
	$(BIN)/python scripts/make_figures.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
