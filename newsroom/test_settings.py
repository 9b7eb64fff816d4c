"""Settings for the test suite: the real settings, over plain HTTP, with a fast password hasher.

DATABASE_URL still decides the database, so the same suite runs on SQLite and on PostgreSQL.
"""

import os
import tempfile

os.environ.setdefault("DJANGO_HTTPS", "0")
os.environ.setdefault("NEWSROOM_VAR_DIR", tempfile.mkdtemp(prefix="newsroom-test-"))

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    **STORAGES,  # noqa: F405
    # The manifest storage needs collectstatic; tests render templates without it.
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
