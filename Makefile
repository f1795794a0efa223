# make run   — set up, then compare every strategy on the embedded default (offline)
# make test  — set up, then run the test suite (make test-fast: without the slow tests)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: setup                       # prints a line per job and epoch, then the report's table
	$(PY) -m ftbench.train -m experiment=compare seed=0,1 hydra.sweep.dir=multirun/make-run

test: setup
	$(PY) -m pytest -q

test-fast: setup                 # the quick loop: everything but the tests marked slow
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(PY) -m ruff check src tests benchmarks

bench: setup
	$(PY) -m benchmarks.overhead
	$(PY) -m benchmarks.feature_cache
	$(PY) -m benchmarks.make_run

clean:
	rm -rf outputs multirun .pytest_cache
