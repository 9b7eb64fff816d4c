"""gunicorn settings for Newsroom: `gunicorn -c gunicorn.conf.py newsroom.wsgi` (what `make run` runs).

Every value can be overridden from the environment (documented in README.md, "Configuration"), and
command-line flags override both.
"""

import os


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """An integer from the environment; a bad value stops gunicorn with a message naming the variable."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"{name}={value!r} is not a whole number.") from None
    if number < minimum:
        raise SystemExit(f"{name}={value!r} must be at least {minimum}.")
    return number


def usable_cpus() -> int:
    """CPUs this process may run on (respects container and taskset limits, unlike os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


wsgi_app = "newsroom.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]

# Sync workers: each request holds one worker, and pages are short database reads. The classic
# 2 × CPUs + 1 keeps the CPUs busy while some workers wait on the database.
workers = env_int("GUNICORN_WORKERS", 2 * usable_cpus() + 1, minimum=1)

# A worker silent for this long is killed and replaced (a stuck request must not hold it forever).
timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
# On SIGTERM/HUP, requests in flight get this long to finish before their worker is stopped.
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = env_int("GUNICORN_KEEPALIVE", 5)

# Recycle each worker after about this many requests, so slow leaks cannot grow without bound.
# The jitter spreads the restarts, so the workers never all restart at once.
max_requests = env_int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = env_int("GUNICORN_MAX_REQUESTS_JITTER", max(1, max_requests // 10))

# Access log and errors to stdout/stderr, for systemd, Docker or `make run` to collect.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'

# The worker heartbeat file on tmpfs: a slow disk must not make healthy workers look dead.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# Proxies allowed to set X-Forwarded-Proto (loopback by default; the proxy usually runs there).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# gunicorn ≥ 25 opens a control socket (resize, reload, stop) at one path per user by default, so
# two instances on a machine (tests, benchmarks, staging beside production) would take it from
# each other. Off unless a path is given; nothing here needs it.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
