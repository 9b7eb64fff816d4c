"""Pieces shared by the load and failure scripts in bench/ and by tests/test_concurrency.py.

Everything here starts or inspects real processes on loopback: gunicorn on a socket we bind
ourselves (so there is no race for a free port), manage.py commands, the load generator
(bench/loadgen.py, always a separate process so it does not share a GIL with what it measures).
Measuring and judging stays in the scripts.
"""

import contextlib
import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
LOADGEN = ROOT / "bench" / "loadgen.py"

sys.path.insert(0, str(ROOT))
from bench.seedgen import WORDS, seed_text  # noqa: E402

#: Text that must never appear in a server's or a command's stderr: lock errors and crashes.
LOCK_ERRORS = re.compile(
    r"database is locked|database table is locked|deadlock detected|could not serialize|"
    r"lock timeout|could not obtain lock|Traceback \(most recent call last\)",
    re.IGNORECASE,
)


def base_env(database_url: str, var_dir: Path, *, production: bool) -> dict[str, str]:
    """The environment for every process of a run: one database, one var/ folder, one secret.

    ``production`` is what the issue calls "the production settings": DJANGO_ENV=production with
    a generated strong secret key and HTTPS protections on, as behind a TLS-terminating proxy;
    clients then send ``X-Forwarded-Proto: https`` (see ``PROXY_HEADERS``), which the settings trust
    from loopback. Without it, plain HTTP as in ``make run``.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "newsroom.settings",
        "DATABASE_URL": database_url,
        "NEWSROOM_VAR_DIR": str(var_dir),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CACHE_URL", None)
    env.pop("REDIS_URL", None)
    if production:
        env.update(DJANGO_ENV="production", DJANGO_SECRET_KEY=secrets.token_urlsafe(64), DJANGO_HTTPS="1")
        env.pop("DJANGO_DEBUG", None)
    else:
        env.update(DJANGO_ENV="local", DJANGO_HTTPS="0")
    return env


PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


def manage(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``manage.py ARGS`` and fail loudly with its output if it fails."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def write_seeds(directory: Path, indices: range, *, seed: int) -> Path:
    """Seed files ``bench_<index>.txt`` for ``indices``; the same index with another ``seed`` is an update."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    now = time.time()
    for index in indices:
        name, text = seed_text(index, rng)
        path = directory / f"{name}.txt"
        path.write_text(text, encoding="utf-8")
        mtime = now - rng.uniform(3600, 365 * 86400)
        os.utime(path, (mtime, mtime))
    return directory


@contextlib.contextmanager
def database(kind: str, work: Path):
    """Yield a DATABASE_URL: a SQLite file in ``work``, or a throwaway PostgreSQL cluster (yielded too)."""
    if kind == "sqlite":
        yield f"sqlite:///{work / 'newsroom.sqlite3'}", None
        return
    from tests.with_postgres import Cluster

    with Cluster() as cluster:
        yield cluster.url, cluster


def prepare_site(work: Path, env: dict, *, articles: int) -> str:
    """Migrate, collect static files and import ``articles`` generated seeds; return the import's summary."""
    seeds = write_seeds(work / "seeds", range(articles), seed=1)
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    started = time.perf_counter()
    summary = manage(env, "import_seeds", str(seeds)).stdout.strip().splitlines()[-1]
    return f"{summary} in {time.perf_counter() - started:.1f} s"


_SAMPLE = """
import json
from articles.models import Article, Source
published = Article.objects.published()
print(json.dumps({
    "count": published.count(),
    "slugs": list(published.order_by("?").values_list("slug", flat=True)[:2000]),
    "sources": list(Source.objects.order_by("?").values_list("slug", flat=True)[:100]),
}))
"""


def mixed_paths(env: dict, *, seed: int = 0) -> list[tuple[str, str]]:
    """The public traffic mix as weighted ``(kind, path)`` pairs, from what the database holds.

    Roughly: 40 % articles, 15 % home, 15 % deep listing pages, 10 % search, 5 % feeds,
    5 % source pages, 10 % addresses that do not exist (404).
    """
    sample = json.loads(manage(env, "shell", "--no-imports", "-c", _SAMPLE).stdout)
    rng = random.Random(seed)
    last_page = max(1, -(-sample["count"] // 20))
    pages = sorted({2, 10, 50, min(200, last_page), last_page})
    paths = [("article", f"/articles/{slug}/") for slug in rng.sample(sample["slugs"], min(400, len(sample["slugs"])))]
    paths += [("home", "/")] * 150
    paths += [("page", f"/?page={page}") for page in pages for _ in range(150 // len(pages))]
    paths += [("search", f"/search/?q={'+'.join(rng.sample(WORDS, rng.randint(1, 2)))}") for _ in range(100)]
    paths += [("feed", "/feed/")] * 40 + [("feed", "/feed/atom/")] * 10
    paths += [("source", f"/sources/{slug}/") for slug in rng.choices(sample["sources"], k=50)]
    paths += [("missing", f"/articles/no-such-article-{n}/") for n in range(70)]
    paths += [("missing", f"/no/such/page/{n}/") for n in range(30)]
    return paths


def save_as_editor(pk: int, *, title: str, retries: int = 50) -> tuple[str, int]:
    """Change an article's title the way the admin's change form does; return (title seen, conflicts).

    Open the form (read the article and its version), then save through ``articles.publishing``:
    lock the row, refuse a stale version, save and bump the version in one transaction. A refusal
    means another writer (an import) changed the article in between; the editor is told, reopens
    the form and saves again, as a person would. "title seen" is the title the form opened with.
    Needs Django set up (the caller's process talks to the database directly).
    """
    from django.db import transaction

    from articles import publishing
    from articles.models import Article

    for conflicts in range(retries):
        opened = Article.objects.get(pk=pk)
        seen = opened.title
        opened.title = title
        try:
            with transaction.atomic():
                locked = publishing.lock_for_edit(pk, opened.version)
                publishing.save_edit(opened, locked=locked, fields=["title"])
        except publishing.StaleEditError:
            continue
        return seen, conflicts
    raise RuntimeError(f"article {pk}: still conflicting after {retries} attempts")


def listening_socket() -> socket.socket:
    """A socket listening on a free loopback port, handed to gunicorn with ``--bind fd://N``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def get(port: int, path: str, *, headers: dict | None = None, timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": "127.0.0.1", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Gunicorn:
    """gunicorn serving newsroom.wsgi on a socket of ours, with its logs in ``log_dir``.

    Uses gunicorn.conf.py (the production configuration) when it exists; ``options`` are extra
    command-line flags, which override it.
    """

    def __init__(self, env: dict, log_dir: Path, *, options: tuple[str, ...] = ()):
        self.env = env
        self.socket = listening_socket()
        self.port = self.socket.getsockname()[1]
        self.access_log = log_dir / "gunicorn.access.log"
        self.error_log = log_dir / "gunicorn.error.log"
        #: gunicorn's own log, and the process's stderr, where Django's logging writes (tracebacks).
        self.stderr_log = log_dir / "gunicorn.stderr.log"
        config = ("-c", str(GUNICORN_CONF)) if GUNICORN_CONF.exists() else ()
        self.command = [
            str(BIN / "gunicorn"), *config, "--bind", f"fd://{self.socket.fileno()}",
            "--access-logfile", str(self.access_log), "--error-logfile", str(self.error_log),
            *_no_control_socket(), *options, "newsroom.wsgi",
        ]  # fmt: skip
        self.process: subprocess.Popen | None = None

    def start(self, *, ready_path: str = "/", headers: dict | None = None, timeout: float = 60) -> "Gunicorn":
        # The real settings use whitenoise's manifest storage: without collected static files every
        # page is a 500 ("Missing staticfiles manifest entry"), as on a fresh clone before `make run`.
        manage(self.env, "collectstatic", "--noinput", "--verbosity", "0")
        with self.stderr_log.open("ab") as stderr:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                pass_fds=(self.socket.fileno(),),
                stdout=stderr,
                stderr=stderr,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.error_text()[-3000:]}")
            try:
                get(self.port, ready_path, headers=headers, timeout=5)
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {timeout} s:\n{self.error_text()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests_per_worker(self) -> int:
        """The most requests one worker can have in flight, from the resolved configuration.

        A sync worker handles one request at a time; other worker classes accept up to
        ``worker_connections`` at once.
        """
        resolved = subprocess.run(
            [*self.command[:-1], "--print-config", self.command[-1]],
            cwd=ROOT, env=self.env, pass_fds=(self.socket.fileno(),), capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        settings = dict(re.findall(r"^(\w+)\s+= (.*)$", resolved, re.MULTILINE))
        return 1 if settings["worker_class"] == "sync" else int(settings["worker_connections"])

    def worker_pids(self) -> list[int]:
        return child_pids(self.process.pid)

    def error_text(self) -> str:
        """gunicorn's error log and the workers' stderr (Django's log: tracebacks, lock errors)."""
        text = ""
        for log in (self.error_log, self.stderr_log):
            try:
                text += log.read_text(errors="replace")
            except OSError:
                pass
        return text

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if the master does not exit in time."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                for pid in self.worker_pids():
                    _kill(pid)
                self.process.kill()
                self.process.wait()
        self.socket.close()

    def __enter__(self) -> "Gunicorn":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _no_control_socket() -> tuple[str, ...]:
    """gunicorn ≥ 24 opens a control socket at one fixed path per user; parallel servers would share it."""
    import gunicorn.config

    return ("--no-control-socket",) if hasattr(gunicorn.config, "ControlSocketDisable") else ()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def child_pids(parent: int) -> list[int]:
    """PIDs whose parent is ``parent`` (gunicorn's workers are the master's children)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces, so split after the last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            children.append(int(entry.name))
    return sorted(children)


def rss_kib(pid: int) -> int | None:
    """Resident memory of ``pid`` in KiB (VmRSS), or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class LoadRun:
    """A bench/loadgen.py process; ``result()`` waits for it and returns its JSON report."""

    process: subprocess.Popen
    output: Path

    def stop(self) -> None:
        """Ask it to finish now (it completes the requests in flight, then reports)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def result(self, timeout: float = 120) -> dict:
        self.process.wait(timeout=timeout)
        if self.process.returncode != 0:
            raise RuntimeError(f"loadgen exited with {self.process.returncode}")
        return json.loads(self.output.read_text())


def start_load(
    port: int,
    paths: list[tuple[str, str]],
    out_dir: Path,
    *,
    concurrency: int,
    duration: float,
    headers: dict | None = None,
    name: str = "load",
) -> LoadRun:
    """Start bench/loadgen.py against ``port`` with weighted ``(kind, path)`` pairs."""
    paths_file = out_dir / f"{name}.paths.json"
    paths_file.write_text(json.dumps(paths))
    output = out_dir / f"{name}.json"
    command = [
        sys.executable, str(LOADGEN), "--port", str(port), "--paths", str(paths_file), "--out", str(output),
        "--concurrency", str(concurrency), "--duration", str(duration),
    ]  # fmt: skip
    for key, value in (headers or {}).items():
        command += ["--header", f"{key}: {value}"]
    return LoadRun(subprocess.Popen(command, cwd=ROOT), output)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summarize(report: dict, *, since: float = 0.0, until: float = float("inf")) -> dict:
    """Counts and latencies of the requests that started in [since, until) (wall-clock seconds)."""
    rows = [row for row in report["requests"] if since <= row[0] < until]
    statuses: dict[str, int] = {}
    by_kind: dict[str, list[float]] = {}
    for started, latency, kind, status in rows:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        by_kind.setdefault(kind, []).append(latency)
    span = (max(r[0] for r in rows) - min(r[0] for r in rows)) if len(rows) > 1 else 0
    latencies = [row[1] for row in rows]
    return {
        "requests": len(rows),
        "per_second": len(rows) / span if span else 0.0,
        "statuses": dict(sorted(statuses.items())),
        "server_errors": sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500),
        "connection_errors": sum(n for s, n in statuses.items() if not s.isdigit()),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=0) * 1000,
        "kinds": {
            kind: {"requests": len(v), "p50_ms": percentile(v, 0.5) * 1000, "p95_ms": percentile(v, 0.95) * 1000}
            for kind, v in sorted(by_kind.items())
        },
    }


def print_summary(title: str, figures: dict) -> None:
    print(f"{title}: {figures['requests']} requests, {figures['per_second']:.0f}/s, statuses {figures['statuses']}")
    print(
        f"  latency p50 {figures['p50_ms']:.0f} ms, p95 {figures['p95_ms']:.0f} ms, "
        f"p99 {figures['p99_ms']:.0f} ms, max {figures['max_ms']:.0f} ms"
    )
    for kind, numbers in figures["kinds"].items():
        print(f"  {kind:<10} {numbers['requests']:>7} requests  p50 {numbers['p50_ms']:.0f} ms  p95 {numbers['p95_ms']:.0f} ms")
