"""A small closed-loop HTTP load generator for loopback benchmarks (standard library only).

    python bench/loadgen.py --port PORT --paths PATHS.json --out REPORT.json [--concurrency 64] [--duration 60]

PATHS.json is a list of ``[kind, path]`` pairs; each of ``--concurrency`` threads keeps exactly one
request in flight, on a fresh connection each time (as many distinct clients would), choosing pairs
at random. It stops after ``--duration`` seconds or on SIGTERM/SIGINT, lets the requests in flight
finish, and writes every request as ``[start (epoch s), latency (s), kind, status]`` where status is
the HTTP status or the name of the exception (a connection error). It also counts 5xx bodies that
contain a Python traceback, which must never reach a visitor.

It is deliberately not wrk: pure Python runs anywhere the project runs, and the request log lets
the scripts line requests up with the events they cause (a killed worker, a stopped database).
"""

import argparse
import http.client
import json
import random
import signal
import threading
import time


def worker(args, paths, headers, stop: threading.Event, rows: list, samples: dict, lock: threading.Lock, seed: int):
    rng = random.Random(seed)
    while not stop.is_set():
        kind, path = rng.choice(paths)
        started = time.time()
        clock = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=args.timeout)
        body = b""
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            status = response.status
            retry_after = response.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as err:
            status, retry_after = type(err).__name__, None
        finally:
            conn.close()
        latency = time.perf_counter() - clock
        with lock:
            rows.append([started, latency, kind, status])
            if isinstance(status, int) and status >= 500:
                if b"Traceback" in body:
                    samples["tracebacks"] += 1
                if status == 503 and retry_after:
                    samples["503_with_retry_after"] += 1
                if sum(sample.startswith(f"{status} ") for sample in samples["server_error_bodies"]) < 2:
                    samples["server_error_bodies"].append(f"{status} {path}: {body[:300]!r}")
            elif not isinstance(status, int) and len(samples["connection_errors"]) < 10:
                samples["connection_errors"].append(f"{status} {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--paths", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--timeout", type=float, default=60, help="per-request socket timeout, seconds")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    args = parser.parse_args()

    with open(args.paths) as handle:
        paths = [tuple(pair) for pair in json.load(handle)]
    headers = {"Host": "127.0.0.1", "Connection": "close"}
    for header in args.header:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    rows: list = []
    samples = {"tracebacks": 0, "503_with_retry_after": 0, "server_error_bodies": [], "connection_errors": []}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=worker, args=(args, paths, headers, stop, rows, samples, lock, n), daemon=True)
        for n in range(args.concurrency)
    ]
    started = time.time()
    for thread in threads:
        thread.start()
    stop.wait(args.duration)
    stop.set()
    for thread in threads:
        thread.join()
    with open(args.out, "w") as handle:
        json.dump({"started": started, "finished": time.time(), "requests": rows, **samples}, handle)


if __name__ == "__main__":
    main()
