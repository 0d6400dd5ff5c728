# `make demo` and `make test` each do the whole set-up first (idempotent, a stamp file skips it).
VENV ?= .venv
# Python's UTF-8 mode: without a UTF-8 locale (LANG unset, as on some CI runners) torch.compile's
# inductor fails to read its own non-ASCII kernel templates
export PYTHONUTF8 = 1
STAMP := $(VENV)/.scseg-installed

.PHONY: setup demo models test test-fast lint
setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	SCSEG_VENV=$(VENV) bash scripts/setup.sh
	touch $@

demo: setup
	$(VENV)/bin/scseg demo

models: setup
	$(VENV)/bin/scseg models

test: setup
	$(VENV)/bin/python -m pytest

test-fast: setup
	$(VENV)/bin/python -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
