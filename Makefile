# The two commands a newcomer needs:  make demo   and   make test
# Both create .venv, install the project and make sure a browser exists first.

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin

.PHONY: demo test setup browser lint bench clean

demo: setup  ## run the main job: the example job against the bundled Gallery site
	$(BIN)/landmark demo $(ARGS)

test: setup  ## run the whole test suite (unit, browser, integration)
	$(BIN)/pytest -q $(ARGS)

setup: $(VENV)/.installed browser

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

browser: $(VENV)/.installed
	$(BIN)/python -m actors.ensure_browser

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup  ## research load tests; see benchmarks/README.md
	$(BIN)/landmark bench all --quick

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
