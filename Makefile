# labkit: `make demo` runs the main experiment; `make test` runs the test suite.
# Both create .venv on first use: torch first (TORCH_SPEC, the CPU build here; a torch already
# in .venv is kept, so GPU sites install their own build first), then labkit through the
# pinned versions in constraints.txt.

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
PY          := $(VENV)/bin/python
PIP         := $(PY) -m pip --disable-pip-version-check -q
STAMP       := $(VENV)/.labkit-installed
PYTEST_ARGS ?=

.PHONY: venv demo test test-fast check lint format constraints clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -c constraints.txt -e ".[dev]"
	touch $@

demo: venv
	$(VENV)/bin/labkit run experiments/digits_mlp.yaml
	$(VENV)/bin/labkit tune experiments/digits_mlp_search.yaml --trials 8 --workers 2

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

# the unit tests alone: no training, no server, no subprocess (a few minutes on 2 cores)
test-fast: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

check: venv
	$(VENV)/bin/ruff check labkit tests benchmarks
	$(VENV)/bin/ruff format --check labkit tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff format labkit tests benchmarks
	$(VENV)/bin/ruff check --fix labkit tests benchmarks

constraints: venv
	( sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable \
	  | grep -v -E '^(torch|labkit)==' ) > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) runs mlruns mlflow.db .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
