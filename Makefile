# Two entry points: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CVSPEC := $(VENV)/bin/cvspec
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# pip byte-compiles the 13,600 modules of `.[all]` one file at a time (93 s of a 299 s install
# on the 2-core VM); compileall does it on every core (-j0). Compiled up front, not on first
# import: where PYTHONDONTWRITEBYTECODE is set (many CI images), nothing would keep the .pyc
# and every process importing torch would compile it again. Its exit status is ignored: a
# module for a later Python in torch's test helpers does not compile, as under pip.
PIP_INSTALL := $(PY) -m pip install -q --no-compile
COMPILE := { $(PY) -m compileall -qq -j0 $(VENV)/lib || true; }

.PHONY: demo demo-detect test pytest lint typecheck golden schema clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core: pyproject.toml | $(PY)
	$(PIP_INSTALL) -e . && $(COMPILE)
	@touch $@

$(VENV)/.dev: pyproject.toml | $(PY)
	@start=$$(date +%s); $(PIP_INSTALL) -e '.[all]' && $(COMPILE); rc=$$?; \
	  echo "install took $$(( $$(date +%s) - start )) s"; exit $$rc
	@touch $@ $(VENV)/.core $(VENV)/.train $(VENV)/.detect

## demo: install cvspec with training, then the whole job on the built-in digits example
demo: $(VENV)/.train
	$(CVSPEC) init --example digits .
	$(CVSPEC) build
	@start=$$(date +%s); $(CVSPEC) run specs/digits.yaml; rc=$$?; \
	  echo "stages took $$(( $$(date +%s) - start )) s"; exit $$rc
	@echo
	@echo "model:       runs/digits/export/model.onnx (labels.json, preprocess.json beside it)"
	@echo "metrics:     runs/digits/evaluate/metrics.json (gates: runs/digits/evaluate/gates.json)"
	@echo "data report: runs/digits/data/report.md"
	@echo "model card:  runs/digits/evaluate/MODEL_CARD.md"
	@echo "serve it:    $(CVSPEC) serve specs/digits.yaml"

## demo-detect: the same for the synthetic shapes detection example (ultralytics)
demo-detect: $(VENV)/.detect
	$(CVSPEC) init --example shapes .
	$(CVSPEC) build
	$(CVSPEC) run specs/shapes.yaml
	@echo "model card: runs/shapes/evaluate/MODEL_CARD.md"

$(VENV)/.train: pyproject.toml | $(PY)
	@start=$$(date +%s); $(PIP_INSTALL) -e '.[train]' && $(COMPILE); rc=$$?; \
	  echo "install took $$(( $$(date +%s) - start )) s"; exit $$rc
	@touch $@

$(VENV)/.detect: pyproject.toml | $(PY)
	$(PIP_INSTALL) -e '.[detect]' && $(COMPILE)
	@touch $@

## test: lint, check generated/ is current, then type-check beside every test, a worker per core (4 at most:
## each trains models); a test file stays on one worker (its module fixtures train once)
test: $(VENV)/.dev lint
	$(CVSPEC) check
	@# mypy (a minute, one core) runs beside the tests, not before them
	$(MAKE) --no-print-directory -j2 typecheck pytest

pytest: $(VENV)/.dev
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile --durations=20

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
