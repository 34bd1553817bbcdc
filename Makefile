# The two commands: `make run` (the whole product) and `make test` (the whole suite).
# Both create .venv, install the pinned requirements, and start an embedded Postgres+pgvector
# and Redis unless DATABASE_URL / REDIS_URL are set.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell sha1sum requirements.txt | cut -c1-12)
STAMP := $(VENV)/.installed-$(REQ_HASH)

.PHONY: setup run test test-fast lint format bench bench-data browsers lock clean-data

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(STAMP)

# Debian's chromium for the browser tests (Playwright drives it; no browser download).
browsers:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null; }

run: setup
	$(PY) -m chatbot_saas.devservices run

# `make test` runs the whole suite in TEST_WORKERS processes (pytest-xdist; each has its own test
# database and Redis database, see tests/support/xdist_isolation.py) and lists the 15 slowest tests.
# loadgroup: the tests sharing a live chat server or a browser stay on one worker (tests/conftest.py);
# the rest go one by one in collection order, so each worker still runs pytest-django's transactional
# tests (which empty the tables) after its other database tests.
# With PYTEST_ARGS it runs exactly those arguments instead (serial unless they say -n).
TEST_WORKERS ?= 2
PARALLEL_ARGS := -n $(TEST_WORKERS) --dist loadgroup
TEST_ARGS := $(if $(PYTEST_ARGS),$(PYTEST_ARGS),$(PARALLEL_ARGS) --durations=15)

test: setup browsers
	$(PY) -m chatbot_saas.devservices test $(TEST_ARGS)

# The quick loop: everything but the tests marked `slow` (live servers, real workers, chromium).
test-fast: setup
	$(PY) -m chatbot_saas.devservices test $(PARALLEL_ARGS) -m "not slow" --durations=15 $(PYTEST_ARGS)

# mypy on the apps: errors listed in scripts/mypy_baseline.txt are known, a new one fails.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo
	$(PY) scripts/mypy_baseline.py

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The quality benchmark's second corpus: SQLite's documentation (public domain), from Debian.
bench-data:
	@test -f /usr/share/doc/sqlite3/lang_vacuum.html || { \
	  echo "installing Debian sqlite3-doc for the quality benchmark"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q sqlite3-doc >/dev/null; }

bench: setup browsers bench-data
	$(PY) -m chatbot_saas.devservices exec -- $(PY) -m benchmarks $(BENCH_ARGS)

# Re-pin requirements.txt from requirements.in (needs the registries).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q -r requirements.in
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^pkg_resources' > requirements.txt
	rm -rf .venv-lock

clean-data:
	rm -rf var/
