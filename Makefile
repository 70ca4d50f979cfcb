# The two commands a new user needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JARS := .cache/jars/resolved.txt
SIZES ?= 200000,1000000
ARGS ?=

.PHONY: setup demo test lint bench clean help
help:
	@echo "make demo   - set up if needed, generate a user base, run every stage on local Spark + Delta"
	@echo "make test   - set up if needed, run the test suite"
	@echo "make setup  - virtual environment, pinned packages, Delta jars (once; offline afterwards)"
	@echo "make bench SIZES=200000,1000000 - benchmark against the pandas/scikit-learn reference"

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

$(JARS): $(STAMP) conf/base.yml
	$(PY) -m prospects.jars fetch

setup: $(STAMP) $(JARS)

demo: setup
	$(PY) -m jobs.pipeline --generate $(ARGS)

test: setup
	$(PY) -m pytest -q tests $(ARGS)

lint: setup
	$(VENV)/bin/ruff check lib jobs tests

bench: setup
	$(PY) -m jobs.bench --sizes $(SIZES) $(ARGS)

clean:
	rm -rf lakehouse data/raw dist build .pytest_cache
