"""Settings for the gunicorn and writer processes of the two-process cache test: the real
settings (from the environment, like production), serving the small site of tests/page_cache_urls.py."""

from newsroom.settings import *  # noqa: F403

ROOT_URLCONF = "tests.page_cache_urls"
