# Two entry points: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CVSPEC := $(VENV)/bin/cvspec
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint typecheck pytest golden schema clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[all]'
	@touch $@ $(VENV)/.core

## demo: install cvspec and build the example specs (training joins when it lands)
demo: $(VENV)/.core
	$(CVSPEC) validate
	$(CVSPEC) build
	$(CVSPEC) check
	@echo
	@echo "generated files:"
	@find generated -type f | sort | sed 's/^/  /'

## test: lint, type-check, check generated/ is current, then every test
test: $(VENV)/.dev lint typecheck
	$(CVSPEC) check
	$(PY) -m pytest -q

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(VENV)/.dev
	$(PY) -m mypy

## golden: refresh tests/golden/ after an intended change of generated output
golden: $(VENV)/.dev
	CVSPEC_UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/test_golden.py tests/test_errors.py

## schema: rewrite schemas/cvspec.schema.json
schema: $(VENV)/.core
	$(CVSPEC) schema

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
