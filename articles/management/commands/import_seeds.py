"""``manage.py import_seeds [PATH ...]``: import seed files; see ``articles.importing`` for the rules."""

import gc
import getpass
import shlex
import socket
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from articles.importing import FileResult, Outcome, import_seeds
from articles.models import Article
from articles.seed_files import display_path, iter_seed_files


class ProgressBar:
    """A one-line progress bar redrawn in place on a terminal.

    It writes to the raw stream, not through Django's ``OutputWrapper``, which would end every
    redraw with a newline and colour it as an error. Report lines go through :meth:`clear` first, so
    they never share a line with the bar; the next update draws the bar again below them.
    """

    WIDTH = 30

    def __init__(self, stream, total: int):
        self.stream = stream
        self.total = max(total, 1)
        self.done = 0
        self.started = self.last_drawn = time.monotonic()
        self.shown = False

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last_drawn >= 0.1 or self.done == self.total or not self.shown:
            self.last_drawn = now
            filled = self.WIDTH * self.done // self.total
            rate = self.done / max(now - self.started, 1e-6)
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} files, {rate:,.0f}/s\033[K"
            )
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


class Command(BaseCommand):
    # An import is data work, often run from cron: the project's system checks (URLs, templates,
    # admin) are run by migrate and at deploy, and would add a tenth of a second to every run.
    requires_system_checks = []
    help = (
        "Import seed files (*.txt) from files or folders (default: the seeds/ folder). Re-importing is safe: "
        "unchanged seeds are left alone and an editor's changes are never overwritten without --overwrite; "
        "where both changed a field, the seed's value waits in the admin's import conflicts."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", metavar="PATH", help="Seed files or folders (searched recursively).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Parse and report the same summary without writing anything."
        )
        parser.add_argument(
            "--status",
            choices=Article.Status.values,
            default=Article.Status.PUBLISHED,
            help="Status of newly created articles (default: published).",
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Take the seed's values even for fields an editor changed (resolves conflicts in the seed's favour).",
        )

    def handle(self, *args, paths, dry_run, status, overwrite, verbosity, **options):
        paths = paths or [str(settings.SEEDS_DIR)]
        progress = None
        if verbosity >= 1 and _is_terminal(self.stderr):
            raw_stderr = getattr(self.stderr, "_out", self.stderr)
            progress = ProgressBar(raw_stderr, sum(1 for _ in iter_seed_files(paths)))

        def on_result(result: FileResult) -> None:
            self._report(result, verbosity, progress)
            if progress:
                progress.advance()

        # Everything loaded before the import (Django, the apps, the models) outlives it: keep the
        # garbage collector from re-scanning all of it every few thousand rows (5 % of a large import).
        gc.freeze()
        try:
            summary = import_seeds(
                paths,
                status=status,
                dry_run=dry_run,
                overwrite=overwrite,
                command=_command_line(paths, status=status, overwrite=overwrite),
                started_by=_who(),
                on_result=on_result,
            )
        except ValueError as err:
            raise CommandError(str(err)) from err
        finally:
            gc.unfreeze()
            if progress:
                progress.clear()

        prefix = "Dry run (nothing written): " if dry_run else ""
        style = self.style.ERROR if summary.rejected else self.style.SUCCESS
        self.stdout.write(style(f"{prefix}{summary.line()}"))
        if summary.rejected:
            raise CommandError(f"{summary.rejected} file(s) rejected (listed above); the others were imported.")

    def _report(self, result: FileResult, verbosity: int, progress: ProgressBar | None) -> None:
        """One line per file that needs a line; names and reasons with control characters escaped."""
        lines = []
        path = display_path(result.path)
        detail = display_path(result.detail)
        if result.outcome is Outcome.REJECTED:
            lines.append((self.stderr, self.style.ERROR, f"{path}: {detail}"))
        elif verbosity >= 1:
            lines += [
                (self.stderr, self.style.WARNING, f"{path}: warning: {display_path(warning)}")
                for warning in result.warnings
            ]
            if result.outcome is Outcome.CONFLICT:
                lines.append((self.stderr, self.style.WARNING, f"{path}: conflict: {detail}"))
            elif result.outcome is Outcome.SKIPPED:
                lines.append((self.stderr, self.style.WARNING, f"{path}: {detail}"))
            elif result.outcome is Outcome.DUPLICATE:
                lines.append((self.stdout, None, f"{path}: duplicate: {detail}"))
            elif verbosity >= 2:
                suffix = f" ({detail})" if detail else ""
                lines.append((self.stdout, None, f"{path}: {result.outcome}{suffix}"))
        if lines and progress:
            progress.clear()
        for stream, style, line in lines:
            stream.write(style(line) if style else line)


def _command_line(paths, *, status: str, overwrite: bool) -> str:
    """The run as a command line for the run's record (the options that change what it writes)."""
    words = ["manage.py", "import_seeds", *map(display_path, paths)]
    if status != Article.Status.PUBLISHED:
        words += ["--status", status]
    if overwrite:
        words.append("--overwrite")
    return shlex.join(words)


def _who() -> str:
    """The operating-system account and host that ran the command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (some containers)
        user = "uid unknown"
    return f"{user}@{socket.gethostname()}"


def _is_terminal(stream) -> bool:
    underlying = getattr(stream, "_out", stream)
    return hasattr(underlying, "isatty") and underlying.isatty()
