"""Kill gunicorn workers with SIGKILL under load: the master replaces them, and only their requests fail.

    .venv/bin/python bench/kill_worker.py [--articles 10000] [--duration 30] [--kills 3] [--concurrency 64]

Same site as bench/soak.py (production settings, gunicorn.conf.py, generated articles, the mixed
public traffic at 64 connections, which keeps every worker busy). While the load runs, it kills a
worker with ``kill -9`` every few seconds.

Pass: after every kill the master starts a replacement (the worker count is back within 10 s), and
the failed requests of the whole run (5xx or connection errors) number at most what the killed
workers can have had in flight: one request per kill for gunicorn's sync workers (the resolved
configuration decides). Every other request in the backlog is served by the other workers.
Exit status 0 on pass, 1 on fail.
"""

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    PROXY_HEADERS,
    ROOT,
    Gunicorn,
    base_env,
    database,
    mixed_paths,
    prepare_site,
    print_summary,
    start_load,
    summarize,
)

RESPAWN_LIMIT_SECONDS = 10


def kill_one(server: Gunicorn, rng: random.Random) -> dict:
    workers = server.worker_pids()
    victim = rng.choice(workers)
    killed_at = time.time()
    os.kill(victim, signal.SIGKILL)
    respawned_after = None
    while time.time() - killed_at < RESPAWN_LIMIT_SECONDS:
        now = server.worker_pids()
        if victim not in now and len(now) >= len(workers):
            respawned_after = time.time() - killed_at
            break
        time.sleep(0.02)
    return {"pid": victim, "at": killed_at, "respawned_after": respawned_after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    out = ROOT / "bench" / "out" / f"kill-worker-{args.database}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="newsroom-kill-") as tmp, database(args.database, Path(tmp)) as (url, _):
        work = Path(tmp)
        env = base_env(url, work / "var", production=True)
        print(f"Preparing {args.articles:,} articles on {args.database} ...", flush=True)
        print(f"  initial import: {prepare_site(work, env, articles=args.articles)}")
        paths = mixed_paths(env)
        with Gunicorn(env, out) as server:
            server.start(headers=PROXY_HEADERS)
            workers_before = server.worker_pids()
            per_worker = server.requests_per_worker()
            print(f"gunicorn: {len(workers_before)} workers, {args.concurrency} connections, {args.duration:.0f} s")
            load = start_load(
                server.port, paths, out, concurrency=args.concurrency, duration=args.duration, headers=PROXY_HEADERS
            )
            kills = []
            interval = args.duration / (args.kills + 1)
            for _ in range(args.kills):
                time.sleep(interval)
                kills.append(kill_one(server, rng))
            traffic = load.result()
            workers_after = server.worker_pids()
        server_log = server.error_text()

    figures = summarize(traffic)
    print_summary("load", figures)
    failed = figures["server_errors"] + figures["connection_errors"]
    bound = per_worker * len(kills)
    for kill in kills:
        respawn = f"{kill['respawned_after'] * 1000:.0f} ms" if kill["respawned_after"] is not None else "NOT replaced"
        print(f"killed worker {kill['pid']}; replacement after {respawn}")
    print(f"workers before {len(workers_before)}, after {len(workers_after)}")
    print(f"failed requests: {failed} (5xx {figures['server_errors']}, connection errors "
          f"{figures['connection_errors']}: {traffic['connection_errors']}); bound {bound} "
          f"({per_worker} in flight per worker × {len(kills)} kills)")  # fmt: skip
    print(f"master log mentions of the kills: {server_log.count('SIGKILL')}")

    failures = []
    if any(kill["respawned_after"] is None for kill in kills):
        failures.append(f"a killed worker was not replaced within {RESPAWN_LIMIT_SECONDS} s")
    if len(workers_after) < len(workers_before):
        failures.append("fewer workers at the end than at the start")
    if failed > bound:
        failures.append(f"{failed} failed requests, more than the {bound} in flight on the killed workers")
    if figures["server_errors"]:
        failures.append(f"5xx responses: {traffic['server_error_bodies']}")
    (out / "report.json").write_text(json.dumps({"figures": figures, "kills": kills, "failures": failures}, indent=2))
    print(f"logs and report.json in {out}")
    print("PASS" if not failures else "FAIL:\n  " + "\n  ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
