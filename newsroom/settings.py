"""Settings for Newsroom, read from the environment in this one place.

Every variable is documented in README.md ("Configuration"). Defaults are safe: DEBUG is off,
HTTPS protections are on, and a missing secret key is generated once into a git-ignored file so
that a local restart does not log everybody out. Production (``DJANGO_ENV=production``) refuses to
start without a real secret key instead of inventing one.
"""

import math
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("NEWSROOM_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    """Read a yes/no variable; anything unrecognised is a configuration error, not a silent default."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off).")


def env_number(name: str, default: float, *, kind: type = int, minimum: float = 0) -> float:
    """Read a number; a malformed or too small value names the variable instead of a bare traceback."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return kind(default)
    try:
        number = kind(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {'an integer' if kind is int else 'a number'}.") from None
    if not math.isfinite(number) or number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at least {minimum}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


def deployment_environment() -> str:
    """``DJANGO_ENV``, or, when it is not set, what the host names say.

    A server that answers to a real host name is a deployment, and must not quietly invent a
    secret key (each host would invent a different one); only loopback use counts as local.
    """
    explicit = os.environ.get("DJANGO_ENV", "").strip().lower()
    if not explicit:
        return "production" if set(ALLOWED_HOSTS) - LOOPBACK_HOSTS else "local"
    if explicit not in {"local", "production"}:
        raise ImproperlyConfigured(f"DJANGO_ENV must be 'local' or 'production', not {explicit!r}.")
    return explicit


DJANGO_ENV = deployment_environment()
PRODUCTION = DJANGO_ENV == "production"

DEBUG = env_bool("DJANGO_DEBUG", False)
if PRODUCTION and DEBUG:
    # Debug pages print settings, SQL and tracebacks to anyone who triggers an error.
    raise ImproperlyConfigured(
        "DJANGO_DEBUG=1 is refused in production (DJANGO_ENV=production): debug pages expose settings "
        "and source code. Unset DJANGO_DEBUG, or use DJANGO_ENV=local on a development machine."
    )


def load_secret_key() -> str:
    """The secret key from DJANGO_SECRET_KEY, or (outside production) one generated once into var/."""
    key = os.environ.get("DJANGO_SECRET_KEY", "").strip()
    if key:
        if PRODUCTION and (len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure")):
            raise ImproperlyConfigured(
                "DJANGO_SECRET_KEY is too weak for production: use at least 50 random characters "
                "(python -c 'import secrets; print(secrets.token_urlsafe(64))')."
            )
        return key
    if PRODUCTION:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Production (DJANGO_ENV=production) will not start with a "
            "missing secret key; set it to at least 50 random characters."
        )
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must not both write a different key.
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(64))
    return key_file.read_text().strip()


SECRET_KEY = load_secret_key()

CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sitemaps",
    "django_filters",
    "simple_history",
    "articles",
    "axes",
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before WhiteNoise, so static files carry the security headers too.
    "newsroom.middleware.SecurityHeadersMiddleware",
    # Turns a database outage into a 503 page instead of a 500 traceback.
    "newsroom.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes requires: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "newsroom.urls"
WSGI_APPLICATION = "newsroom.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DEFAULT_DATABASE_URL = f"sqlite:///{VAR_DIR / 'newsroom.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        conn_max_age=env_number("DJANGO_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers (gunicorn workers) run beside a writer (an import); IMMEDIATE transactions
    # plus a busy timeout make writers queue instead of failing with "database is locked".
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["CONN_MAX_AGE"] = 0 if DATABASES["default"]["NAME"] == ":memory:" else 600
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        # page_size only takes effect on a new, empty database (it must come before WAL): 16 KiB
        # pages hold a whole article row where 4 KiB pages chain overflow pages (imports ~10% faster).
        "init_command": (
            "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"
        ),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------
# One gunicorn host: a per-process local-memory cache is enough, because cached pages are keyed on
# the content version read from the database (articles/caching.py), never invalidated by messages.
# Several hosts: CACHE_URL (or REDIS_URL) = redis://host:6379/0 shares one cache between them.
CACHE_URL = os.environ.get("CACHE_URL") or os.environ.get("REDIS_URL") or ""
if CACHE_URL:
    if not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"CACHE_URL must be a redis://, rediss:// or unix:// URL, not {CACHE_URL!r}.")
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "newsroom",
            # Fail fast: a slow or dead Redis makes pages uncached (articles/caching.py), not hung.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "newsroom",
            # Per worker process; when full, the least recently used third is dropped.
            # ~300 rendered pages (about 10 MB) keep the hot pages without letting a
            # worker's memory grow by a quarter (the soak test's 20% bound failed at 1,000).
            "OPTIONS": {"MAX_ENTRIES": env_number("NEWSROOM_LOCAL_CACHE_ENTRIES", 300, minimum=1)},
        }
    }

# --- Public page cache and conditional GET (articles/caching.py) ----------------------------
NEWSROOM_PAGE_CACHE = env_bool("NEWSROOM_PAGE_CACHE", True)  # 0: render every page (benchmarks)
NEWSROOM_PAGE_MAX_AGE = env_number("NEWSROOM_PAGE_MAX_AGE", 60)  # browsers and proxies
NEWSROOM_PAGE_CACHE_TIMEOUT = env_number("NEWSROOM_PAGE_CACHE_TIMEOUT", 600)  # server cache
# Part of every cache key and ETag, so a deploy with new templates never serves old renderings.
# Unset: a fingerprint of the project's templates and code, the same on every host.
NEWSROOM_RELEASE = os.environ.get("NEWSROOM_RELEASE", "")

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# Login throttling (django-axes): after NEWSROOM_LOGIN_FAILURE_LIMIT wrong passwords for one
# username from one IP address, that pair is locked out for the cool-off period, even with the
# right password. Attempts live in the database, so every gunicorn worker and host counts together.
# Behind a proxy REMOTE_ADDR is the proxy's, so the lock becomes per username: stricter, not weaker.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # must come first: refuses locked-out credentials
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_number("NEWSROOM_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_number("NEWSROOM_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["ip_address", "username"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "lockout.html"

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files (whitenoise: hashed, compressed, long-cached) -----------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Seeds ----------------------------------------------------------------------------------
SEEDS_DIR = BASE_DIR / "seeds"
# A seed file modified less than this many seconds ago is taken to be still being written and is
# left for the next import (see articles/seed_files.py).
NEWSROOM_IMPORT_SETTLE_SECONDS = env_number("NEWSROOM_IMPORT_SETTLE_SECONDS", 1, kind=float)

# --- Background work: Django's task framework (the django-tasks backport on 5.2) -------------
# By default tasks are rows in this database, run by `manage.py db_worker` (no extra service; works
# on SQLite and PostgreSQL). With NEWSROOM_TASKS_REDIS_URL (default: REDIS_URL) they go to RQ, and
# `manage.py rqworker --job-class django_tasks_rq.Job --with-scheduler default` runs them, on as
# many machines as you like (README, "Background work").
TASKS_REDIS_URL = os.environ.get("NEWSROOM_TASKS_REDIS_URL", os.environ.get("REDIS_URL", ""))
if TASKS_REDIS_URL:
    INSTALLED_APPS += ["django_rq", "django_tasks_rq"]
    RQ_QUEUES = {"default": {"URL": TASKS_REDIS_URL, "DEFAULT_TIMEOUT": 3600}}
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
else:
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
# A folder a wire service drops seed files into; a periodic task imports new and changed files.
NEWSROOM_INBOX = os.environ.get("NEWSROOM_INBOX", "")
NEWSROOM_INBOX_INTERVAL = env_number("NEWSROOM_INBOX_INTERVAL", 30, kind=float, minimum=1)  # seconds between passes
# Seed files and zips uploaded in the admin are unpacked here, one folder per run, removed afterwards.
# Workers on other machines need it on shared storage (README).
NEWSROOM_UPLOAD_DIR = Path(os.environ.get("NEWSROOM_UPLOAD_DIR", VAR_DIR / "uploads"))
NEWSROOM_UPLOAD_MAX_BYTES = env_number("NEWSROOM_UPLOAD_MAX_BYTES", 50 * 1024 * 1024, minimum=1)
NEWSROOM_UPLOAD_MAX_FILES = env_number("NEWSROOM_UPLOAD_MAX_FILES", 20000, minimum=1)
# A running import that has not reported progress for this long lost its worker (killed, crashed).
NEWSROOM_IMPORT_STALE_SECONDS = env_number("NEWSROOM_IMPORT_STALE_SECONDS", 120, kind=float, minimum=1)
# The public site's address, for absolute links in webhook payloads (e.g. https://news.example.com).
NEWSROOM_SITE_URL = os.environ.get("NEWSROOM_SITE_URL", "")
# Webhooks: how often the site looks for articles published, changed or unpublished (and for
# scheduled articles whose time has come), and how deliveries retry.
NEWSROOM_WEBHOOK_INTERVAL = env_number("NEWSROOM_WEBHOOK_INTERVAL", 10, kind=float, minimum=1)
NEWSROOM_WEBHOOK_TIMEOUT = env_number("NEWSROOM_WEBHOOK_TIMEOUT", 10, kind=float, minimum=1)
NEWSROOM_WEBHOOK_MAX_ATTEMPTS = env_number("NEWSROOM_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
NEWSROOM_WEBHOOK_RETRY_BASE_SECONDS = env_number("NEWSROOM_WEBHOOK_RETRY_BASE_SECONDS", 30, kind=float)

# --- Logging: to stderr, so gunicorn and systemd collect it ---------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "WARNING")},
}

# --- HTTPS: on by default; `make run` on plain-HTTP 127.0.0.1 sets DJANGO_HTTPS=0 --------------
HTTPS = env_bool("DJANGO_HTTPS", True)
SECURE_SSL_REDIRECT = HTTPS
# Load balancers probe /healthz over plain HTTP on the private network: answer, don't redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_number("DJANGO_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env_bool("DJANGO_BEHIND_PROXY", HTTPS):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy, sent on every response by newsroom.middleware.SecurityHeadersMiddleware
# (our own setting name: django-csp reads CONTENT_SECURITY_POLICY in another shape).
# Scripts and styles only from our own origin: no inline script, no inline style, no eval. A JSON-LD
# <script type="application/ld+json"> block is data that browsers never execute, so it needs no
# exception. frame-ancestors repeats X-Frame-Options for browsers that only read CSP.
NEWSROOM_CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
if HTTPS:
    NEWSROOM_CONTENT_SECURITY_POLICY["upgrade-insecure-requests"] = []
