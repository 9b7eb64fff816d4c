# Two commands do everything: `make run` and `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

# `make run` serves plain HTTP on loopback: switch off the HTTPS-only protections explicitly.
RUN_ENV := DJANGO_HTTPS=0

.PHONY: run test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the project's metadata changed, so a second `make run` is quick.
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED)

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
	$(RUN_ENV) $(BIN)/gunicorn -c gunicorn.conf.py --bind $(HOST):$(PORT)

# The whole suite twice: on SQLite, then on a throwaway PostgreSQL cluster (tests/with_postgres.py
# starts it, and stops and removes it afterwards, also when tests fail). PYTEST_ARGS narrows both runs.
# A failing SQLite pass does not stop the PostgreSQL pass: both always run, and the worse status wins.
test: $(INSTALLED)
	@status=0; \
	echo "=== test suite on SQLite ==="; \
	$(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	echo "=== test suite on PostgreSQL ==="; \
	$(BIN)/python tests/with_postgres.py $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	exit $$status

clean:
	rm -rf $(VENV) staticfiles
