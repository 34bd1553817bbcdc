# The two commands: `make run` (the whole product) and `make test` (the whole suite).
# Both create .venv, install the pinned requirements, and start an embedded Postgres+pgvector
# and Redis unless DATABASE_URL / REDIS_URL are set.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell sha1sum requirements.txt | cut -c1-12)
STAMP := $(VENV)/.installed-$(REQ_HASH)

.PHONY: setup run test lint format bench bench-data browsers lock clean-data

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

test: setup browsers
	$(PY) -m chatbot_saas.devservices test $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo

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
