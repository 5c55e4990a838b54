# Two commands on a fresh machine: `make run` starts the node on embedded defaults,
# `make test` runs the whole suite. Both build .venv first (torch 2.13.0 CPU before the rest).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv run test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: venv
	$(VENV)/bin/dicom-agent db upgrade
	$(VENV)/bin/dicom-agent serve

test: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check agent workers models tests bench
	$(VENV)/bin/ruff format --check agent workers models tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
