# The two commands a user needs: `make run` and `make test`. Both create .venv when it is missing; each
# installs what it needs once (a stamp file per set, redone when pyproject.toml changes): `make run` only
# Beacon and what it runs on, `make test` also the test toolchain (the `test` extra).
PYTHON     ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
# A real client of the Statuspage JSON from npm (tests/consumers), pinned by its package-lock.json.
NPM_DIR    := tests/consumers/npm
NPM_STAMP  := $(NPM_DIR)/node_modules/.installed

.PHONY: run test lint typecheck install install-run clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

# The test extra includes everything running needs, so it satisfies `make run` too.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(TEST_STAMP) $(RUN_STAMP)

install-run: $(RUN_STAMP)

# Without npm the consumer test that needs it skips, saying so.
$(NPM_STAMP): $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(NPM_DIR) --no-audit --no-fund --loglevel=error && touch $(NPM_STAMP); \
	else echo "npm not found: tests/consumers skips the statuspage.io npm client"; fi

install: $(TEST_STAMP) $(NPM_STAMP)

run: $(RUN_STAMP)
	$(BIN)/beacon serve

lint: $(TEST_STAMP)
	$(BIN)/ruff check $(wildcard domain infra projections process_managers api tests bench)

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

test: lint typecheck $(NPM_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(NPM_DIR)/node_modules
