"""Settings from the environment, checked in fresh processes (settings are read once, at startup)."""

import os
import runpy
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
STRONG_KEY = secrets.token_urlsafe(64)

#: Variables a developer's shell or CI may set that would change what these tests check.
CLEARED = {
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_ENV",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_HTTPS",
    "DJANGO_BEHIND_PROXY",
    "DJANGO_HSTS_SECONDS",
    "DATABASE_URL",
    "CACHE_URL",
    "REDIS_URL",
    "NEWSROOM_PAGE_CACHE",
}


def run_manage(tmp_path, *args, **env) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in CLEARED}
    environment.update(NEWSROOM_VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=environment,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def production(**extra) -> dict:
    return {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": STRONG_KEY,
        "DJANGO_ALLOWED_HOSTS": "news.example.com",
        **extra,
    }


def setting(tmp_path, expression: str, **env) -> str:
    code = f"from django.conf import settings; print({expression})"
    result = run_manage(tmp_path, "shell", "--no-imports", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# --- Secure by default ----------------------------------------------------------------------


def test_production_with_only_key_and_hosts_passes_the_deploy_check(tmp_path):
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **production())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_check_does_catch_plain_http(tmp_path):
    """The passing check above is not vacuous: switching HTTPS off explicitly makes it fail."""
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **production(DJANGO_HTTPS="0"))
    assert result.returncode != 0
    assert "security.W008" in result.stderr  # SECURE_SSL_REDIRECT
    assert "security.W004" in result.stderr  # HSTS


def test_https_protections_are_on_by_default(tmp_path):
    values = setting(
        tmp_path,
        "settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, "
        "settings.SECURE_HSTS_SECONDS, settings.SECURE_PROXY_SSL_HEADER, settings.DEBUG",
        **production(),
    )
    assert values == "True True True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https') False"


def test_plain_http_only_through_the_explicit_variable(tmp_path):
    values = setting(
        tmp_path,
        "settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS, "
        "'upgrade-insecure-requests' in settings.NEWSROOM_CONTENT_SECURITY_POLICY",
        DJANGO_HTTPS="0",
    )
    assert values == "False False 0 False"


# --- Refusing to start ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "DJANGO_SECRET_KEY is not set"),
        ("", "DJANGO_SECRET_KEY is not set"),
        ("short-key", "too weak"),
        ("django-insecure-" + secrets.token_urlsafe(64), "too weak"),
        ("a" * 80, "too weak"),
    ],
    ids=["missing", "empty", "short", "django-insecure", "one-character"],
)
def test_production_refuses_a_missing_or_weak_secret_key(tmp_path, key, message):
    env = production()
    if key is None:
        del env["DJANGO_SECRET_KEY"]
    else:
        env["DJANGO_SECRET_KEY"] = key
    result = run_manage(tmp_path, "check", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "secret_key").exists()  # nothing invented in production


def test_production_refuses_debug(tmp_path):
    result = run_manage(tmp_path, "check", **production(DJANGO_DEBUG="1"))
    assert result.returncode != 0
    assert "DJANGO_DEBUG=1 is refused in production" in result.stderr


def test_local_use_generates_and_keeps_a_secret_key(tmp_path):
    first = setting(tmp_path, "settings.SECRET_KEY")
    second = setting(tmp_path, "settings.SECRET_KEY")
    assert first == second
    assert len(first) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_ENV": "staging"}, "DJANGO_ENV must be 'local' or 'production'"),
        ({"DJANGO_HTTPS": "maybe"}, "DJANGO_HTTPS='maybe' is not a boolean"),
        ({"NEWSROOM_PAGE_CACHE": "nope"}, "NEWSROOM_PAGE_CACHE='nope' is not a boolean"),
        ({"CACHE_URL": "memcached://127.0.0.1:11211"}, "CACHE_URL must be a redis://"),
        ({"NEWSROOM_PAGE_MAX_AGE": "abc"}, "NEWSROOM_PAGE_MAX_AGE='abc' is not an integer"),
        ({"DJANGO_CONN_MAX_AGE": "1.5"}, "DJANGO_CONN_MAX_AGE='1.5' is not an integer"),
        ({"NEWSROOM_WEBHOOK_INTERVAL": "0"}, "NEWSROOM_WEBHOOK_INTERVAL='0' must be at least 1"),
        ({"NEWSROOM_IMPORT_SETTLE_SECONDS": "nan"}, "NEWSROOM_IMPORT_SETTLE_SECONDS='nan' must be at least 0"),
        ({"NEWSROOM_UPLOAD_MAX_FILES": "-5"}, "NEWSROOM_UPLOAD_MAX_FILES='-5' must be at least 1"),
    ],
)
def test_bad_values_stop_startup_with_a_message(tmp_path, env, message):
    result = run_manage(tmp_path, "check", **env)
    assert result.returncode != 0
    assert message in result.stderr


# --- Cache selection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "backend"),
    [
        ({}, "django.core.cache.backends.locmem.LocMemCache"),
        ({"CACHE_URL": "redis://127.0.0.1:6379/1"}, "django.core.cache.backends.redis.RedisCache"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/2"}, "django.core.cache.backends.redis.RedisCache"),
    ],
)
def test_cache_backend_from_the_environment(tmp_path, env, backend):
    assert setting(tmp_path, "settings.CACHES['default']['BACKEND']", **env) == backend


def test_cache_url_wins_over_redis_url(tmp_path):
    location = setting(
        tmp_path,
        "settings.CACHES['default']['LOCATION']",
        CACHE_URL="redis://cache:6379/0",
        REDIS_URL="redis://other/0",
    )
    assert location == "redis://cache:6379/0"


def test_the_test_suite_uses_a_local_cache():
    from django.conf import settings

    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"


# --- Login throttling configuration ---------------------------------------------------------


def test_axes_is_wired_as_it_requires():
    from django.conf import settings

    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert settings.AXES_ENABLED
    assert settings.AXES_FAILURE_LIMIT == 5


def test_login_throttling_limits_from_the_environment(tmp_path):
    values = setting(
        tmp_path,
        "settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME.total_seconds()",
        NEWSROOM_LOGIN_FAILURE_LIMIT="3",
        NEWSROOM_LOGIN_COOLOFF_MINUTES="60",
    )
    assert values == "3 3600.0"


# --- gunicorn.conf.py -----------------------------------------------------------------------


def gunicorn_config(monkeypatch, **env) -> dict:
    for name in ("GUNICORN_WORKERS", "GUNICORN_BIND", "GUNICORN_TIMEOUT", "GUNICORN_MAX_REQUESTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(BASE_DIR / "gunicorn.conf.py"))


def test_gunicorn_defaults(monkeypatch):
    config = gunicorn_config(monkeypatch)
    assert config["workers"] == 2 * len(os.sched_getaffinity(0)) + 1
    assert config["bind"] == ["127.0.0.1:8000"]
    assert config["wsgi_app"] == "newsroom.wsgi:application"
    assert config["accesslog"] == "-"
    assert config["timeout"] == 30
    assert config["graceful_timeout"] == 30
    assert config["max_requests"] == 2000
    assert 0 < config["max_requests_jitter"] < config["max_requests"]


def test_gunicorn_control_socket_is_off_unless_asked_for(monkeypatch):
    monkeypatch.delenv("GUNICORN_CONTROL_SOCKET", raising=False)
    assert gunicorn_config(monkeypatch)["control_socket_disable"] is True
    config = gunicorn_config(monkeypatch, GUNICORN_CONTROL_SOCKET="/run/newsroom/gunicorn.ctl")
    assert (config["control_socket_disable"], config["control_socket"]) == (False, "/run/newsroom/gunicorn.ctl")


def test_gunicorn_environment_overrides(monkeypatch):
    config = gunicorn_config(
        monkeypatch, GUNICORN_WORKERS="3", GUNICORN_BIND="0.0.0.0:9000", GUNICORN_TIMEOUT="60"
    )
    assert (config["workers"], config["bind"], config["timeout"]) == (3, ["0.0.0.0:9000"], 60)


@pytest.mark.parametrize(
    ("name", "value"), [("GUNICORN_WORKERS", "0"), ("GUNICORN_WORKERS", "many"), ("GUNICORN_TIMEOUT", "-1")]
)
def test_gunicorn_rejects_bad_numbers(monkeypatch, name, value):
    with pytest.raises(SystemExit, match=name):
        gunicorn_config(monkeypatch, **{name: value})


def test_gunicorn_accepts_the_config_file():
    result = subprocess.run(
        [Path(sys.executable).parent / "gunicorn", "-c", "gunicorn.conf.py", "--check-config"],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_HTTPS": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_run_uses_the_config_file():
    makefile = (BASE_DIR / "Makefile").read_text()
    run_recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "gunicorn -c gunicorn.conf.py" in run_recipe


# --- Which environment, when DJANGO_ENV is not said ------------------------------------------


def test_real_host_name_without_djangoenv_is_production_and_refuses_a_missing_key(tmp_path):
    """Deployed with only DJANGO_ALLOWED_HOSTS: no key is invented (each host would invent its own)."""
    result = run_manage(tmp_path, "check", DJANGO_ALLOWED_HOSTS="news.example.com")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_real_host_name_with_a_strong_key_passes_the_deploy_check_without_djangoenv(tmp_path):
    result = run_manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_ALLOWED_HOSTS="news.example.com",
        DJANGO_SECRET_KEY=STRONG_KEY,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert setting(tmp_path, "settings.DJANGO_ENV", DJANGO_ALLOWED_HOSTS="news.example.com", DJANGO_SECRET_KEY=STRONG_KEY) == "production"


@pytest.mark.parametrize("hosts", [None, "127.0.0.1,localhost", "[::1]"])
def test_loopback_only_is_local_and_generates_a_key_once(tmp_path, hosts):
    env = {"DJANGO_ALLOWED_HOSTS": hosts} if hosts else {}
    assert setting(tmp_path, "settings.DJANGO_ENV", **env) == "local"
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    assert setting(tmp_path, "settings.SECRET_KEY", **env) == key, "a restart keeps the same key"


def test_explicit_local_overrides_the_host_names(tmp_path):
    assert setting(tmp_path, "settings.DJANGO_ENV", DJANGO_ENV="local", DJANGO_ALLOWED_HOSTS="news.example.com") == "local"
