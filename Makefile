# Two commands do everything: `make run` and `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two install stamps: serving needs only the runtime dependencies; the tests also need the dev extras.
INSTALLED := $(VENV)/.installed
INSTALLED_DEV := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8000

# `make run` serves plain HTTP on loopback: switch off the HTTPS-only protections explicitly.
RUN_ENV := DJANGO_HTTPS=0

.PHONY: run test install demo stop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the project's metadata changed, so a second `make run` is quick.
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(INSTALLED_DEV): $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED)

# A living site for a newcomer: DEMO_ARTICLES generated articles from a few hundred publishers,
# published over the last DEMO_DAYS days, imported into the same database `make run` serves.
DEMO_ARTICLES ?= 600
DEMO_DAYS ?= 42
demo: $(INSTALLED)
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput --verbosity 0
	rm -rf .demo-seeds
	$(BIN)/python bench/seedgen.py .demo-seeds $(DEMO_ARTICLES) --days $(DEMO_DAYS)
	$(RUN_ENV) $(BIN)/python manage.py import_seeds .demo-seeds
	rm -rf .demo-seeds
	@echo "Demo articles imported: start the site with 'make run'."

# Stops a `make run` started in the background or in another terminal (Ctrl+C works in its own).
stop:
	@pid=$$(cat $(VENV)/gunicorn.pid 2>/dev/null) && kill -TERM $$pid 2>/dev/null \
		&& echo "Stopped gunicorn ($$pid) and its task worker." || echo "Newsroom is not running."

run: $(INSTALLED)
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput
	$(RUN_ENV) $(BIN)/python manage.py setup_roles
	$(RUN_ENV) $(BIN)/python manage.py import_seeds seeds || echo "Some seed files were rejected (listed above); the rest were imported."
	$(RUN_ENV) $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(RUN_ENV) $(BIN)/python manage.py ensure_admin --url http://$(HOST):$(PORT)/admin/
	$(RUN_ENV) $(BIN)/python manage.py schedule_tasks --verbosity 0
	@# One background worker beside gunicorn (database-backed task queue: admin uploads, the inbox,
	@# webhooks); it stops with gunicorn. Quiet: each task's outcome is under Task results in the admin.
	@$(RUN_ENV) $(BIN)/python manage.py db_worker --queue-name '*' --interval 1 --verbosity 0 & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(RUN_ENV) $(BIN)/gunicorn -c gunicorn.conf.py --bind $(HOST):$(PORT) --pid $(VENV)/gunicorn.pid

# The whole suite twice: on SQLite, then on a throwaway PostgreSQL cluster (tests/with_postgres.py
# starts it, and stops and removes it afterwards, also when tests fail). PYTEST_ARGS narrows both runs.
# A failing SQLite pass does not stop the PostgreSQL pass: both always run, and the worse status wins.
test: $(INSTALLED_DEV)
	@status=0; \
	echo "=== test suite on SQLite ==="; \
	$(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	echo "=== test suite on PostgreSQL ==="; \
	$(BIN)/python tests/with_postgres.py $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	exit $$status

clean:
	rm -rf $(VENV) staticfiles .demo-seeds
