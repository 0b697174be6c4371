# Every target creates or refreshes .venv itself (idempotent: nothing is reinstalled unless
# pyproject.toml changed). Lava needs Python 3.10 exactly.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
PYTHON310 ?= $(shell for c in python3.10 $$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/3.10*/bin/python3.10; do \
	if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then echo $$c; break; fi; done)

.PHONY: demo test test-fast bench venv clean help

help:
	@echo "make demo   - run the whole pipeline on the embedded digits data (experiments/demo.toml)"
	@echo "make test   - run every test, slow end-to-end ones included"
	@echo "make bench  - speed/memory benchmarks against baselines measured in the same run"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON310)" ]; then \
		echo "error: Python 3.10 not found. lava-nc 0.10 / lava-dl 0.6 require Python >=3.10,<3.11."; \
		echo "  Install it, e.g. 'pyenv install 3.10' (the repo's .python-version selects it),"; \
		echo "  or 'apt-get install python3.10 python3.10-venv', or 'uv python install 3.10';"; \
		echo "  or point make at one: make PYTHON310=/path/to/python3.10 test"; \
		exit 1; fi
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then \
		echo "$(VENV) is not Python 3.10: recreating it"; rm -rf $(VENV); fi
	@[ -x $(PY) ] || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/harness run experiments/demo.toml

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) runs benchmarks/results .pytest_cache
