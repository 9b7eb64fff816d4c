"""Run a command against a throwaway PostgreSQL cluster, then remove the cluster.

    python tests/with_postgres.py CMD [ARG ...]

``make test`` uses it to run the whole suite a second time on PostgreSQL: it creates a cluster with
``initdb`` in a temporary folder, starts it on a free port on 127.0.0.1, creates the database
``newsroom``, runs CMD with ``DATABASE_URL=postgres://postgres@127.0.0.1:PORT/newsroom`` in its
environment, and stops and deletes the cluster afterwards -- also when CMD fails, on Ctrl-C and on
SIGTERM. The exit status is CMD's.

Why the details:

* ``initdb`` refuses to run as root, so as root the server runs as the unprivileged system user
  ``newsroom-pg`` (created on first use; ``nobody`` if it cannot be created). CMD itself keeps the
  caller's identity.
* The cluster is disposable, so durability is switched off (``fsync``, ``synchronous_commit``,
  ``full_page_writes``): the suite runs faster and nothing of value is lost if the machine crashes.
  Stopping and starting the server (see ``bench/db_outage.py``) is still clean.
* Authentication is ``trust``, and the server listens on loopback only and on a socket in the
  temporary folder, so nothing outside this machine can reach it.

The binaries are found with ``pg_config --bindir`` or in ``/usr/lib/postgresql/*/bin``; where they
are missing the script says how to install them and exits with status 2.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

SERVER_USER = "newsroom-pg"
DATABASE = "newsroom"
SUPERUSER = "postgres"
INSTALL_HINT = "Install them with: apt-get install -y postgresql"
MISSING_STATUS = 2
_NEEDED = ("initdb", "pg_ctl", "postgres")
#: Where Debian's postgresql-NN packages put the server binaries, one folder per major version.
DEBIAN_ROOT = Path("/usr/lib/postgresql")


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or the cluster could not be started."""


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres: pg_config's, else the newest Debian one."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    # Debian's pg_config may come from libpq-dev alone (bindir /usr/bin, no server), so also look here.
    versions = sorted(DEBIAN_ROOT.glob("*/bin"), key=_version_key, reverse=True)
    candidates.extend(versions)
    for bindir in candidates:
        if all((bindir / name).is_file() for name in _NEEDED):
            return bindir
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found via `pg_config --bindir` "
        f"or in /usr/lib/postgresql/*/bin. {INSTALL_HINT}"
    )


def _version_key(path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in path.parent.name.split("."))
    except ValueError:
        return (0,)


def free_port() -> int:
    """A TCP port nobody listens on right now (start() retries if another process takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_account() -> pwd.struct_passwd | None:
    """The account the server runs as: None (ourselves) unless we are root, which initdb refuses."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        pass
    useradd = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent"]
    created = subprocess.run(
        [*useradd, "--shell", "/usr/sbin/nologin", SERVER_USER], capture_output=True, text=True, check=False
    )
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        reason = created.stderr.strip()
        print(f"with_postgres: could not create user {SERVER_USER} ({reason}); using nobody", file=sys.stderr)
        return pwd.getpwnam("nobody")


class Cluster:
    """A PostgreSQL cluster in a temporary folder; a context manager that always removes it."""

    def __init__(self, bindir: Path | None = None):
        self.bindir = bindir or find_bindir()
        self.account = _server_account()
        # As root, under /tmp whatever TMPDIR says: the server account must be able to reach the folder.
        self.root = Path(tempfile.mkdtemp(prefix="newsroom-pg-", dir="/tmp" if self.account else None))
        if self.account:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a server binary as the server account, quietly unless it fails."""
        kwargs = {}
        if self.account:
            kwargs = {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}
        result = subprocess.run(
            [str(self.bindir / program), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            # Our own session: a Ctrl-C in the terminal must not shut the server down under the
            # command that is still using it; we stop it ourselves afterwards.
            start_new_session=True,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise PostgresUnavailable(f"{program} {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def start(self) -> "Cluster":
        """initdb, start the server on a free loopback port, create the database."""
        self._run(
            "initdb", "--pgdata", str(self.data), "--username", SUPERUSER, "--auth", "trust",
            "--encoding", "UTF8", "--locale", "C.UTF-8", "--no-sync",
        )  # fmt: skip
        for _attempt in range(3):
            self.port = free_port()
            if self.start_server(check=False):
                break
        else:
            raise PostgresUnavailable(f"the server did not start:\n{self.server_log_tail()}")
        self._run("createdb", "--host", "127.0.0.1", "--port", str(self.port), "--username", SUPERUSER, DATABASE)
        return self

    def start_server(self, *, check: bool = True) -> bool:
        """Start (or restart) the server on self.port and wait until it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        result = self._run(
            "pg_ctl", "start", "--pgdata", str(self.data), "--log", str(self.log),
            "--wait", "--timeout", "60", "--options", options, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise PostgresUnavailable(f"the server did not start:\n{self.server_log_tail()}")
        return result.returncode == 0

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (``fast``: disconnect clients, shut down cleanly)."""
        if not (self.data / "postmaster.pid").exists():
            return
        result = self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", mode, "--wait", check=False)
        if result.returncode != 0:
            self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass

    def server_log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def remove(self) -> None:
        """Stop the server if it runs and delete the whole temporary folder."""
        try:
            self.stop_server()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        try:
            return self.start()
        except BaseException:
            self.remove()
            raise

    def __exit__(self, *exc_info) -> None:
        self.remove()


def _terminal_delivers_sigint() -> bool:
    """Whether a SIGINT we got came from the terminal, which sent it to the command as well."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except OSError:
        return False


def run(command: list[str]) -> int:
    """Run ``command`` with DATABASE_URL set to a fresh cluster; return its exit status."""
    child: subprocess.Popen | None = None

    def on_signal(signum, _frame):
        if child is None:
            raise KeyboardInterrupt  # still starting the cluster: unwind, which removes it
        if signum == signal.SIGINT and _terminal_delivers_sigint():
            return  # the command got the same Ctrl-C; wait for it to finish, then clean up
        child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        with Cluster() as cluster:
            print(f"with_postgres: PostgreSQL at {cluster.url} (data in {cluster.root})", file=sys.stderr)
            try:
                child = subprocess.Popen(command, env={**os.environ, "DATABASE_URL": cluster.url})
            except OSError as err:
                print(f"with_postgres: cannot run {command[0]}: {err}", file=sys.stderr)
                return 127
            status = child.wait()
            # Removing the cluster takes a moment; a second Ctrl-C must not leave it behind.
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)
    except KeyboardInterrupt:
        return 130
    return status if status >= 0 else 128 - status


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__.strip(), file=sys.stderr)
        return 0 if argv else 2
    try:
        find_bindir()
    except PostgresUnavailable as err:
        print(f"with_postgres: {err}", file=sys.stderr)
        return MISSING_STATUS
    try:
        return run(argv)
    except PostgresUnavailable as err:
        print(f"with_postgres: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
