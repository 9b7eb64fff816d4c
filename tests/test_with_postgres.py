"""tests/with_postgres.py: the throwaway cluster `make test` runs the second pass of the suite on.

These run real PostgreSQL servers, so they need the binaries (as `make test` does); they are skipped,
not failed, when the binaries are missing, because then `make test` itself already says so.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import with_postgres

SCRIPT = Path(with_postgres.__file__)

try:
    with_postgres.find_bindir()
    HAVE_POSTGRES = True
except with_postgres.PostgresUnavailable:
    HAVE_POSTGRES = False
needs_postgres = pytest.mark.skipif(not HAVE_POSTGRES, reason="PostgreSQL server binaries are not installed")


@needs_postgres
def test_runs_the_command_against_a_fresh_database_and_removes_the_cluster(tmp_path):
    """The command sees a working DATABASE_URL; its failing exit status is passed on; nothing is left."""
    report = tmp_path / "report"
    probe = (
        "import os, pathlib, psycopg; url = os.environ['DATABASE_URL'];"
        "n = psycopg.connect(url.replace('postgres://', 'postgresql://')).execute('select 1').fetchone()[0];"
        f"pathlib.Path({str(report)!r}).write_text(url + ' ' + str(n)); raise SystemExit(3)"
    )
    result = subprocess.run(
        [sys.executable, SCRIPT, sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 3, result.stderr
    url, answer = report.read_text().split()
    assert url.startswith("postgres://postgres@127.0.0.1:") and url.endswith("/newsroom")
    assert answer == "1"
    data_dir = Path(result.stderr.split("(data in ")[1].split(")")[0])
    assert not data_dir.exists()


@needs_postgres
def test_sigterm_stops_the_command_and_removes_the_cluster(tmp_path):
    started = tmp_path / "started"
    wrapper = subprocess.Popen(
        [sys.executable, SCRIPT, "sh", "-c", f'echo "$DATABASE_URL" > {started}; exec sleep 60'],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the command never started"

    wrapper.send_signal(signal.SIGTERM)
    stderr = wrapper.communicate(timeout=30)[1]

    assert wrapper.returncode == 128 + signal.SIGTERM
    data_dir = Path(stderr.split("(data in ")[1].split(")")[0])
    assert not data_dir.exists()


def test_missing_binaries_say_how_to_install_them(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_config
    monkeypatch.setattr(with_postgres, "DEBIAN_ROOT", tmp_path / "postgresql")

    status = with_postgres.main(["true"])

    assert status == with_postgres.MISSING_STATUS != 0
    assert "apt-get install -y postgresql" in capsys.readouterr().err


def test_a_debian_folder_without_the_server_is_not_taken(monkeypatch, tmp_path):
    """libpq-dev alone ships pg_config but no server: such a folder must not be chosen."""
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "postgresql" / "16" / "bin").mkdir(parents=True)
    (tmp_path / "postgresql" / "16" / "bin" / "pg_config").touch()
    full = tmp_path / "postgresql" / "15" / "bin"
    full.mkdir(parents=True)
    for name in ("initdb", "pg_ctl", "postgres"):
        (full / name).touch()
    monkeypatch.setattr(with_postgres, "DEBIAN_ROOT", tmp_path / "postgresql")

    assert with_postgres.find_bindir() == full


def test_without_a_command_it_prints_usage_and_fails(capsys):
    assert with_postgres.main([]) == 2
    assert "with_postgres.py CMD" in capsys.readouterr().err

