# The two commands a newcomer needs:  make demo   and   make test
# Both create .venv, install the project and make sure a browser exists first; the tests
# also want a redis-server (installed from Debian's packages when run as root).

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin

.PHONY: demo test setup browser redis lint bench clean

demo: setup  ## run the main job: the example job against the bundled Gallery site
	$(BIN)/landmark demo $(ARGS)

test: setup redis  ## run the whole test suite (unit, browser, integration with Redis)
	$(BIN)/pytest -q $(ARGS)

setup: $(VENV)/.installed browser

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

browser: $(VENV)/.installed
	$(BIN)/python -m landmark.actors.ensure_browser

redis:  ## a redis-server for the tests (they skip, saying why, when there is none)
	@if command -v redis-server >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq redis-server; \
	else echo "landmark setup: no redis-server (apt-get install redis-server): Redis tests skip"; fi

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup  ## research load tests; see benchmarks/README.md
	$(BIN)/landmark bench all --quick

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
