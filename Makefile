# Two entry points for a fresh machine: `make demo` runs enclave, `make test` checks it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo needs only the runtime dependencies (not the dev extras) and says what it is doing.
DEMO_STAMP := $(VENV)/.installed-runtime
# The demo's own home (database, journal key and anchor), never the shell's $$ENCLAVE_DB: it seeds demo accounts
# and vetted stand-in images, which must not land in an operator's real database (the twin's moves go to the
# twin's own scratch store in any case).
DEMO_HOME ?= $(CURDIR)/.demo-home

$(DEMO_STAMP): pyproject.toml
	@echo "==> creating $(VENV)"
	python3 -m venv $(VENV)
	@echo "==> installing enclave and its runtime dependencies (a minute or two the first time)"
	$(PY) -m pip install --progress-bar on -e .
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	@echo "==> starting enclave: the twin's one-week scenario, demo accounts and vetted images"
	@echo "enclave demo: database, journal key and anchor in $(DEMO_HOME) (not \$$ENCLAVE_DB)"
	env -u ENCLAVE_DB -u ENCLAVE_JOURNAL_KEY -u ENCLAVE_JOURNAL_ANCHOR ENCLAVE_HOME=$(DEMO_HOME) \
		$(VENV)/bin/enclave serve --host 127.0.0.1 --port $${PORT:-8000} --twin one-week --demo

test: $(STAMP)
	bash scripts/test-deps.sh
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	bash scripts/run-tests.sh

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
