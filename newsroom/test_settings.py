"""Settings for the test suite: the real settings, over plain HTTP, with a fast password hasher.

DATABASE_URL still decides the database, so the same suite runs on SQLite and on PostgreSQL.
"""

import os
import tempfile

os.environ.setdefault("DJANGO_HTTPS", "0")
os.environ.setdefault("NEWSROOM_VAR_DIR", tempfile.mkdtemp(prefix="newsroom-test-"))

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file (in the per-run temporary folder), not the default in-memory database, so tests can
    # start real gunicorn and manage.py processes against the same database (WAL, as in production).
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
STORAGES = {
    **STORAGES,  # noqa: F405
    # The manifest storage needs collectstatic; tests render templates without it.
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Whitenoise serves STATIC_ROOT and warns on every request when it does not exist (a fresh clone
# before collectstatic); tests serve static files from the app and project folders instead.
STATIC_ROOT = VAR_DIR / "staticfiles"  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Tests write seed files and import them at once; the settle rule has tests of its own.
NEWSROOM_IMPORT_SETTLE_SECONDS = 0
