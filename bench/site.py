"""Serve the site with gunicorn on 127.0.0.1 over 10,000 articles and measure the public pages.

    .venv/bin/python bench/site.py [--articles 10000] [--requests 400] [--concurrency 2] [--keep DIR]

What it does, all on loopback and in a throwaway directory:

1. a fresh SQLite database (migrate), ``bench/seedgen.py`` seed files, ``manage.py import_seeds``;
2. gunicorn with 2 sync workers, once with the page cache off (``NEWSROOM_PAGE_CACHE=0``: every
   request renders) and once with it on;
3. for each page — home, page 200, an article, a search, the feed — a short warm-up, then a bounded
   load (``--requests`` requests, stopped early after ``--seconds``) from ``--concurrency`` client
   processes separate from the server, each opening a new connection per request as a browser
   talking to a sync worker does;
4. a table of requests/s and p50/p99 latency (client-side, connect to last byte).

Nothing leaves the machine and nothing outside the temporary directory is written except
``staticfiles/`` (collectstatic, as ``make run`` does).
"""

import argparse
import http.client
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env, *args, capture=False):
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, text=True, capture_output=capture
    )
    return result.stdout if capture else None


def prepare(workdir: Path, articles: int) -> dict:
    """Create the database and import the seeds; return the environment the server runs with."""
    env = {
        **os.environ,
        "DJANGO_ENV": "local",
        "DJANGO_DEBUG": "0",
        "DJANGO_HTTPS": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "NEWSROOM_VAR_DIR": str(workdir / "var"),
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "DJANGO_LOG_LEVEL": "ERROR",
    }
    env.pop("CACHE_URL", None)
    env.pop("REDIS_URL", None)
    started = time.perf_counter()
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    if (workdir / "bench.sqlite3").exists():  # --keep: reuse the database of an earlier run
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        return env
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    seeds = workdir / "seeds"
    subprocess.run([PYTHON, str(ROOT / "bench" / "seedgen.py"), str(seeds), str(articles)], check=True, cwd=ROOT)
    manage(env, "import_seeds", str(seeds), "--verbosity", "0")
    print(f"prepared {articles:,} articles in {time.perf_counter() - started:.1f} s", flush=True)
    return env


def pick_paths(env) -> tuple[str, str]:
    """An article some way down the list, and its source's page."""
    code = (
        "from articles.models import Article; "
        "a = Article.objects.published().newest_first().select_related('source')[500]; "
        "print(a.get_absolute_url(), a.source.get_absolute_url())"
    )
    # The last line: `shell` may print its automatic-import notice first.
    article, source = manage(env, "shell", "-c", code, capture=True).strip().splitlines()[-1].split()
    return article, source


def wait_until_up(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _ = fetch(port, "/healthz")
            if status < 500:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


def fetch(port: int, path: str) -> tuple[int, float]:
    """One GET on a new connection; the status and the seconds from connect to the last byte."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Host": "127.0.0.1", "Accept-Encoding": "gzip"})
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def client(port: int, path: str, count: int, seconds: float, results) -> None:
    """A load-generating process: up to ``count`` sequential requests, for at most ``seconds``."""
    latencies, statuses = [], {}
    deadline = time.monotonic() + seconds
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        status, elapsed = fetch(port, path)
        latencies.append(elapsed)
        statuses[status] = statuses.get(status, 0) + 1
    results.put((latencies, statuses))


def measure(port: int, path: str, *, requests: int, concurrency: int, seconds: float) -> dict:
    for _ in range(10):  # warm-up: imports, connections, and (when on) the page cache
        fetch(port, path)
    results = multiprocessing.Queue()
    per_client = max(1, requests // concurrency)
    processes = [
        multiprocessing.Process(target=client, args=(port, path, per_client, seconds, results))
        for _ in range(concurrency)
    ]
    started = time.perf_counter()
    for process in processes:
        process.start()
    collected = [results.get() for _ in processes]
    wall = time.perf_counter() - started
    for process in processes:
        process.join()
    latencies = sorted(latency for batch, _ in collected for latency in batch)
    statuses: dict[int, int] = {}
    for _, batch in collected:
        for status, n in batch.items():
            statuses[status] = statuses.get(status, 0) + n
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "statuses": statuses,
    }


def run_server(env: dict, *, page_cache: bool, port: int) -> subprocess.Popen:
    server_env = {**env, "NEWSROOM_PAGE_CACHE": "1" if page_cache else "0"}
    command = [
        str(Path(PYTHON).with_name("gunicorn")),
        "newsroom.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
        "--access-logfile",
        "/dev/null",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=server_env)
    wait_until_up(port)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400, help="requests per page and mode (default 400)")
    parser.add_argument("--concurrency", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per page and mode")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (default: a temp dir)")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="newsroom-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        env = prepare(workdir, args.articles)
        article, source = pick_paths(env)
        pages = {
            "home": "/",
            "page 200": "/?page=200",
            "article": article,
            "search": "/search/?q=election+budget",
            "feed": "/feed/",
            "filtered home": "/?source=publisher-007&published_after=2020-01-01",
            "source page": source,
            "sources": "/sources/",
        }
        rows = []
        for page_cache in (False, True):
            port = free_port()
            server = run_server(env, page_cache=page_cache, port=port)
            try:
                for name, path in pages.items():
                    result = measure(
                        port, path, requests=args.requests, concurrency=args.concurrency, seconds=args.seconds
                    )
                    rows.append(("on" if page_cache else "off", name, path, result))
                    print(f"  cache {rows[-1][0]:3} {name:18} {result['p50']:7.2f} ms p50", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)
        cpus, load = os.cpu_count(), os.getloadavg()[0]
        print(
            f"\n{args.articles:,} articles, gunicorn 2 sync workers, {args.concurrency} client processes, "
            f"{cpus} CPUs, load average {load:.1f} at the end"
        )
        print(f"{'cache':5} {'page':18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses  path")
        for mode, name, path, result in rows:
            statuses = ",".join(f"{code}x{n}" for code, n in sorted(result["statuses"].items()))
            print(
                f"{mode:5} {name:18} {result['rps']:8.1f} {result['p50']:8.2f} {result['p99']:8.2f}  {statuses}  {path}"
            )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
