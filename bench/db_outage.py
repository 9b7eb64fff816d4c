"""Stop PostgreSQL under load and start it again: visitors get a 503 page, and the site recovers by itself.

    .venv/bin/python bench/db_outage.py [--articles 10000] [--outage 10] [--concurrency 64]

Builds the production site on a throwaway PostgreSQL cluster (tests/with_postgres.py), serves it with
gunicorn and gunicorn.conf.py, and runs the mixed public traffic of bench/soak.py. After a few
seconds it stops the server (``pg_ctl stop -m fast``: connections are cut, as in a failover or a
restart), keeps it down for ``--outage`` seconds, starts it again and keeps the load on for a while.
gunicorn is never touched.

Pass: every failed request is a 503 (no 500, no traceback in a body, no connection error), none
fail before the outage, and from at most 10 s after PostgreSQL is back every request succeeds
again. Reports the time to recovery. Exit status 0 on pass, 1 on fail.
"""

import argparse
import json
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

BEFORE_SECONDS = 8
AFTER_SECONDS = 20
RECOVERY_LIMIT_SECONDS = 10


def failed(row) -> bool:
    status = row[3]
    return not isinstance(status, int) or status >= 500


def recovered_at(rows: list, since: float) -> float | None:
    """The start time of the first request after ``since`` from which no request failed, or None."""
    later = sorted((row for row in rows if row[0] >= since), key=lambda row: row[0])
    last_failure = max((index for index, row in enumerate(later) if failed(row)), default=-1)
    if last_failure + 1 >= len(later):
        return None
    return later[last_failure + 1][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--outage", type=float, default=10, help="seconds PostgreSQL stays down")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    out = ROOT / "bench" / "out" / f"db-outage-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="newsroom-outage-") as tmp, database("postgres", Path(tmp)) as (url, pg):
        work = Path(tmp)
        env = base_env(url, work / "var", production=True)
        print(f"Preparing {args.articles:,} articles on PostgreSQL ...", flush=True)
        print(f"  initial import: {prepare_site(work, env, articles=args.articles)}")
        paths = mixed_paths(env)
        with Gunicorn(env, out) as server:
            server.start(headers=PROXY_HEADERS)
            workers_before = server.worker_pids()
            duration = BEFORE_SECONDS + args.outage + AFTER_SECONDS
            print(f"gunicorn: {len(workers_before)} workers, {args.concurrency} connections, {duration:.0f} s")
            load = start_load(
                server.port, paths, out, concurrency=args.concurrency, duration=duration, headers=PROXY_HEADERS
            )
            time.sleep(BEFORE_SECONDS)
            down_at = time.time()
            pg.stop_server("fast")
            print(f"PostgreSQL stopped in {time.time() - down_at:.2f} s", flush=True)
            time.sleep(max(0.0, args.outage - (time.time() - down_at)))
            restart_at = time.time()
            pg.start_server()
            up_at = time.time()
            print(f"PostgreSQL accepting connections again after {up_at - restart_at:.2f} s", flush=True)
            traffic = load.result()
            workers_after = server.worker_pids()

    rows = traffic["requests"]
    print_summary("before the outage", summarize(traffic, until=down_at))
    print_summary("PostgreSQL down", summarize(traffic, since=down_at, until=up_at))
    print_summary("after PostgreSQL is back", summarize(traffic, since=up_at))
    failures_by_status: dict[str, int] = {}
    for row in rows:
        if failed(row):
            failures_by_status[str(row[3])] = failures_by_status.get(str(row[3]), 0) + 1
    early = [row for row in rows if failed(row) and row[0] + row[1] < down_at]
    recovery_at = recovered_at(rows, down_at)
    recovery = None if recovery_at is None else max(0.0, recovery_at - up_at)
    first_ok = min((row[0] for row in rows if row[0] >= up_at and not failed(row)), default=None)
    last_failure = max((row[0] + row[1] for row in rows if failed(row)), default=None)
    print(f"failed requests by status: {failures_by_status}; 503s with Retry-After: {traffic['503_with_retry_after']}")
    print(f"tracebacks in response bodies: {traffic['tracebacks']}")
    if last_failure is not None:
        print(f"last failed request answered {last_failure - up_at:+.2f} s after PostgreSQL was back")
    if first_ok is not None:
        print(f"first successful request {first_ok - up_at:+.2f} s after PostgreSQL was back")
    print(f"time to recovery (every request succeeds from then on): "
          f"{'never' if recovery is None else f'{recovery:.2f} s'} after PostgreSQL was back")  # fmt: skip
    print(f"gunicorn workers unchanged: {workers_before == workers_after}")

    failures = []
    if any(status != "503" for status in failures_by_status):
        failures.append(f"failures other than 503: {failures_by_status} {traffic['server_error_bodies']}")
    if traffic["tracebacks"]:
        failures.append(f"{traffic['tracebacks']} response bodies contained a traceback")
    if early:
        failures.append(f"{len(early)} requests failed before the outage")
    if not failures_by_status:
        failures.append("no request failed during the outage: was the database really used?")
    if recovery is None or recovery > RECOVERY_LIMIT_SECONDS:
        failures.append(f"did not recover within {RECOVERY_LIMIT_SECONDS} s of PostgreSQL coming back")
    report = {
        "args": vars(args), "down_at": down_at, "up_at": up_at, "recovery_seconds": recovery,
        "failures_by_status": failures_by_status, "failures": failures,
    }  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(f"logs and report.json in {out}")
    print("PASS" if not failures else "FAIL:\n  " + "\n  ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
