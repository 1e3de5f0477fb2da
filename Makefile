# Two commands for a fresh machine with Python 3.11:
#   make demo   set up, load the demo, run billing, start the server (embedded PostgreSQL, tasks in-process)
#   make test   set up and run the test suite (embedded PostgreSQL, or DATABASE_URL when set)
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test setup lint stop-db bench-ingest bench-usage bench-invoice-run bench-webhooks bench-scale

$(STAMP): requirements.txt constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	DEBUG=$${DEBUG:-true} $(PY) manage.py demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Stops the embedded server of .pgdata/ (or EMBEDDED_PGDATA) whoever started it, and says so.
stop-db:
	@$(PY) -m billing_project.embedded_db stop

bench-ingest: $(STAMP)
	$(PY) bench/ingest.py

bench-usage: $(STAMP)
	$(PY) bench/usage.py

bench-invoice-run: $(STAMP)
	$(PY) bench/invoice_run.py

bench-webhooks: $(STAMP)
	$(PY) -m bench.webhooks

# 10M, 40M then 100M events in its own database (about 100 minutes and 40 GB on 2 cores)
bench-scale: $(STAMP)
	BENCH_DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/billing_bench_scale} $(PY) -m bench.scale
