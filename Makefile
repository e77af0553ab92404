# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint install real docs docs-serve

# DVC stages call `crossemo`: put the environment's commands first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

# Re-install only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Set everything up and run the main job (`dvc repro`) on the embedded demo corpora.
demo: $(STAMP)
	$(BIN)/crossemo demo generate data/demo
	$(BIN)/dvc add --quiet data
	$(BIN)/dvc repro
	$(BIN)/dvc status

# Run the whole test suite (style first: ruff lint and format, as configured in pyproject.toml).
# Two pytest processes, one test file each at a time (module fixtures, such as test_pipeline's
# demo project, are built once): much of the suite waits on servers and subprocesses.
test: lint docs
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# The documentation site (MkDocs, Material): strict, so a broken link, a missing page or a bad
# reference fails the build (and `make test`). `make docs-serve` serves it on 127.0.0.1:8000.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

# The edit loop: everything but the tests marked slow (servers, worker processes, dvc repro).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Run the same pipeline on real corpora placed beside the checkout (see README).
CORPORA ?= ../shared/corpora
real: $(STAMP)
	$(BIN)/crossemo corpora import $(CORPORA) data/real
	$(BIN)/crossemo params use params.real.yaml
	$(BIN)/dvc add --quiet data
	$(BIN)/dvc repro
