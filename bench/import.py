"""Benchmark the seed importer: generate N seed files, import them into a fresh database, report.

    .venv/bin/python bench/import.py                 # N=10,000 on SQLite
    .venv/bin/python bench/import.py -n 100000       # the memory check
    .venv/bin/python bench/import.py --database-url postgres://...   # an empty PostgreSQL database

Prints articles/s for the import command (process start-up included, migrations not), the peak
resident memory of the import, the command's own memory a quarter, half, three quarters of the way
through and at the end (flat = no growth as the corpus streams through), and the time of a second,
all-unchanged run. Target (issue 2): at least 5,000 articles/s at N=10,000 on SQLite on a 2-core
machine, and flat memory up to N=100,000.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _common import rss_kib  # noqa: E402
from seedgen import write_seeds  # noqa: E402


def manage(*args, env):
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True
    )


@dataclass
class ImportRun:
    seconds: float
    peak_mb: float  # of the import's process tree (the command and its parsing worker)
    rss_mb_by_progress: dict[int, float]  # the command's own resident memory at 25/50/75/100 % of the run
    summary: str


def timed_import(seeds: Path, env) -> ImportRun:
    """Run the import command once, sampling its resident memory every 50 ms to show whether it grows."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "import_seeds", str(seeds)], env=env, cwd=ROOT, stdout=out, stderr=err
        )
        samples: list[tuple[float, int]] = []
        while True:
            # wait4: the resource usage of this one process (and the workers it waited for), not of
            # every child this script ran before (migrate).
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if (kib := rss_kib(process.pid)) is not None:
                samples.append((time.perf_counter() - started, kib))
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        out.seek(0), err.seek(0)
        if os.waitstatus_to_exitcode(status):
            sys.exit(f"import failed:\n{err.read()[-2000:]}")
        by_progress = {}
        for percent in (25, 50, 75, 100):
            at = elapsed * percent / 100
            by_progress[percent] = max((kib for t, kib in samples if t <= at), default=0) / 1024
        return ImportRun(elapsed, usage.ru_maxrss / 1024, by_progress, out.read().strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--count", type=int, default=10_000)
    parser.add_argument("--database-url", help="an empty database to import into (default: a new SQLite file)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="newsroom-bench-import-"))
    seeds = workdir / "seeds"
    print(f"generating {args.count:,} seed files in {seeds} …", flush=True)
    write_seeds(seeds, args.count)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "newsroom.settings",
        "NEWSROOM_VAR_DIR": str(workdir),
        "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "DJANGO_HTTPS": "0",
    }
    migrated = manage("migrate", "--noinput", env=env)
    if migrated.returncode:
        sys.exit(migrated.stderr)

    first = timed_import(seeds, env)
    print(f"first import:  {first.summary}")
    print(f"  {first.seconds:.2f} s, {args.count / first.seconds:,.0f} articles/s, peak RSS {first.peak_mb:.0f} MB")
    growth = ", ".join(f"{percent} %: {mb:.0f} MB" for percent, mb in first.rss_mb_by_progress.items())
    print(f"  memory (the command's RSS, highest so far) at {growth}")
    again = timed_import(seeds, env)
    print(f"re-import:     {again.summary}")
    print(f"  {again.seconds:.2f} s, {args.count / again.seconds:,.0f} files/s")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(workdir)])


if __name__ == "__main__":
    main()
