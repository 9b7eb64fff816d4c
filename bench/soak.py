"""Soak test: mixed public traffic at 64 connections for 60 s while imports and admin saves run.

    .venv/bin/python bench/soak.py [--articles 10000] [--duration 60] [--concurrency 64] [--database sqlite]

Builds a throwaway site (a SQLite file, or with ``--database postgres`` a throwaway PostgreSQL
cluster) with ``--articles`` generated articles, serves it with gunicorn and gunicorn.conf.py under
the production settings (DJANGO_ENV=production, a generated strong secret key, HTTPS protections on,
the load generator playing the TLS proxy with ``X-Forwarded-Proto: https``), then runs
bench/loadgen.py (home, deep listing pages, articles, search, feeds, source pages, 404s) for a
warm-up and ``--duration`` seconds. During the measured part, ``manage.py import_seeds`` re-imports
2,000 changed seeds (and adds 2,000 new ones the first time) over and over, and an editor thread
saves articles through the ORM as the admin does.

Pass: zero 5xx, zero connection errors, every editor save persisted, no lock errors in any log,
and no gunicorn worker's memory (VmRSS) growing more than 20 % between the end of the warm-up
and the end of the run. Worker recycling (gunicorn's max_requests) is switched off for the run:
recycling would hide a leak this is meant to find.

Everything runs on 127.0.0.1 and stops by itself; logs and a JSON report go to bench/out/.
Exit status 0 on pass, 1 on fail.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import (
    LOCK_ERRORS,
    PROXY_HEADERS,
    ROOT,
    Gunicorn,
    base_env,
    database,
    mixed_paths,
    prepare_site,
    print_summary,
    rss_kib,
    save_as_editor,
    start_load,
    summarize,
    write_seeds,
)

MAX_RSS_GROWTH = 0.20
WARMUP_SECONDS = 10


class Imports(threading.Thread):
    """Runs ``manage.py import_seeds`` back to back, alternating two changed versions of the seeds."""

    def __init__(self, env: dict, folders: list[Path], stop: threading.Event, log: Path):
        super().__init__(name="imports")
        self.env, self.folders, self.stop, self.log = env, folders, stop, log
        self.runs: list[tuple[float, int, str]] = []

    def run(self):
        with self.log.open("w") as log:
            while not self.stop.is_set():
                folder = self.folders[len(self.runs) % len(self.folders)]
                started = time.perf_counter()
                result = subprocess.run(
                    [sys.executable, str(ROOT / "manage.py"), "import_seeds", str(folder)],
                    cwd=ROOT, env=self.env, capture_output=True, text=True, check=False,
                )  # fmt: skip
                log.write(result.stdout + result.stderr)
                last_line = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
                self.runs.append((time.perf_counter() - started, result.returncode, last_line))


class Editor(threading.Thread):
    """Saves random articles through the admin's save service (bench/_common.save_as_editor).

    A form that opens with another title than this editor's last save of that article means the
    save was lost (only this editor changes titles; an import keeps an editor's title).
    """

    def __init__(self, stop: threading.Event, pause: float = 0.05):
        super().__init__(name="editor")
        self.stop, self.pause = stop, pause
        self.saved: dict[int, str] = {}
        self.saves = 0
        self.conflicts = 0
        self.overwritten: list[int] = []
        self.errors: list[str] = []

    def run(self):
        from django.db import connections

        from articles.models import Article

        ids = list(Article.objects.values_list("id", flat=True))
        rng = random.Random(1)
        try:
            while not self.stop.is_set():
                pk = rng.choice(ids)
                title = f"Soak edit {self.saves} of article {pk}"
                try:
                    seen, conflicts = save_as_editor(pk, title=title)
                except Exception as err:  # counted and reported, the soak goes on
                    self.errors.append(repr(err))
                else:
                    if pk in self.saved and seen != self.saved[pk]:
                        self.overwritten.append(pk)
                    self.saved[pk] = title
                    self.saves += 1
                    self.conflicts += conflicts
                time.sleep(self.pause)
        finally:
            connections.close_all()

    def lost_saves(self) -> list[int]:
        from articles.models import Article

        now = dict(Article.objects.filter(pk__in=self.saved).values_list("pk", "title"))
        return [pk for pk, title in self.saved.items() if now.get(pk) != title]


def memory(workers: list[int]) -> dict[int, int]:
    return {pid: kib for pid in workers if (kib := rss_kib(pid)) is not None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=60, help="measured seconds, after the warm-up")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    out = ROOT / "bench" / "out" / f"soak-{args.database}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="newsroom-soak-") as tmp, database(args.database, Path(tmp)) as (url, _):
        work = Path(tmp)
        env = base_env(url, work / "var", production=True)
        env["GUNICORN_MAX_REQUESTS"] = "0"
        print(f"Preparing {args.articles:,} articles on {args.database} ...", flush=True)
        print(f"  initial import: {prepare_site(work, env, articles=args.articles)}")
        changed = min(2000, args.articles)
        folders = []
        for version in (2, 3):
            folder = write_seeds(work / f"incoming-{version}", range(changed), seed=version)
            write_seeds(folder, range(args.articles, args.articles + 2000), seed=4)  # new articles, same in both
            folders.append(folder)
        paths = mixed_paths(env)

        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()

        with Gunicorn(env, out) as server:
            server.start(headers=PROXY_HEADERS)
            workers = server.worker_pids()
            print(f"gunicorn: {len(workers)} workers on {server.url}, {args.concurrency} connections, "
                  f"{WARMUP_SECONDS} s warm-up + {args.duration:.0f} s")  # fmt: skip
            rss_start = memory(workers)
            load = start_load(
                server.port, paths, out, concurrency=args.concurrency,
                duration=WARMUP_SECONDS + args.duration, headers=PROXY_HEADERS,
            )  # fmt: skip
            time.sleep(WARMUP_SECONDS)
            measured_from = time.time()
            rss_base = memory(server.worker_pids())
            stop = threading.Event()
            imports = Imports(env, folders, stop, out / "imports.log")
            editor = Editor(stop)
            imports.start()
            editor.start()
            samples = []  # every 2 s while the load runs; the last one is the end of the run
            while load.process.poll() is None:
                samples.append(memory(server.worker_pids()))
                time.sleep(2)
            rss_end = samples[-1]
            stop.set()
            traffic = load.result()
            editor.join()
            imports.join()
            final_workers = server.worker_pids()
        server_log = server.error_text()
        lost = editor.lost_saves()

    overall = summarize(traffic)
    measured = summarize(traffic, since=measured_from)
    print_summary("whole run", overall)
    print_summary("measured part (imports and saves running)", measured)
    growth = {
        pid: (rss_end[pid] - rss_base[pid]) / rss_base[pid] for pid in rss_base if pid in rss_end and rss_base[pid]
    }
    print("worker RSS (MiB) at start / after warm-up / at end, growth since warm-up:")
    for pid in sorted(rss_base):
        start, base, end = (
            f"{kib / 1024:.1f}" if kib else "-" for kib in (rss_start.get(pid), rss_base[pid], rss_end.get(pid))
        )
        print(f"  pid {pid}: {start} / {base} / {end}  {growth.get(pid, float('nan')):+.1%}")
    # A leak keeps growing; a cache filling up to its bound flattens out. Tell them apart.
    halfway = samples[len(samples) // 2]
    late = [(rss_end[pid] - halfway[pid]) / halfway[pid] for pid in halfway if pid in rss_end and halfway[pid]]
    if late:
        print(f"growth over the second half of the run: {min(late):+.1%} to {max(late):+.1%}")
    replaced = sorted(set(workers) - set(final_workers))
    print(f"workers replaced during the run: {len(replaced)}")
    print(f"imports: {len(imports.runs)} runs; " + "; ".join(f"{t:.1f} s rc={rc} {line}" for t, rc, line in imports.runs))
    print(f"editor: {editor.saves} saves ({editor.conflicts} refused as stale and redone), "
          f"{len(editor.errors)} errors, {len(editor.overwritten) + len(lost)} lost")  # fmt: skip
    lock_errors = LOCK_ERRORS.findall(server_log + (out / "imports.log").read_text())

    failures = []
    if overall["server_errors"]:
        failures.append(f"{overall['server_errors']} responses were 5xx: {traffic['server_error_bodies']}")
    if overall["connection_errors"]:
        failures.append(f"{overall['connection_errors']} connection errors: {traffic['connection_errors']}")
    if any(value > MAX_RSS_GROWTH for value in growth.values()):
        failures.append(f"worker memory grew more than {MAX_RSS_GROWTH:.0%}")
    if replaced:
        failures.append(f"workers died or were replaced: {replaced}")
    if any(rc != 0 for _t, rc, _line in imports.runs) or not imports.runs:
        failures.append("an import failed (see imports.log)")
    if editor.errors or lost or editor.overwritten:
        failures.append(f"editor saves failed or were lost: {editor.errors[:3]} lost={(lost + editor.overwritten)[:10]}")
    if lock_errors:
        failures.append(f"lock errors or tracebacks in the logs: {sorted(set(lock_errors))}")

    report = {
        "args": vars(args), "overall": overall, "measured": measured, "rss_kib": {
            "start": rss_start, "after_warmup": rss_base, "end": rss_end, "samples": samples},
        "growth": growth, "imports": imports.runs, "editor_saves": editor.saves, "failures": failures,
    }  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"logs and report.json in {out}")
    print("PASS" if not failures else "FAIL:\n  " + "\n  ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
