"""``manage.py import_seeds [PATH ...]``: import seed files; see ``articles.importing`` for the rules."""

import gc
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from articles.importing import FileResult, Outcome, import_seeds, iter_seed_paths
from articles.models import Article


class ProgressBar:
    """A one-line progress bar on a terminal; nothing at all when output is not a terminal."""

    def __init__(self, stream, total: int):
        self.stream = stream
        self.total = max(total, 1)
        self.done = 0
        self.started = self.last_drawn = time.monotonic()

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last_drawn >= 0.1 or self.done == self.total:
            self.last_drawn = now
            width = 30
            filled = width * self.done // self.total
            rate = self.done / max(now - self.started, 1e-6)
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} files, {rate:,.0f}/s"
            )
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\033[K")
        self.stream.flush()


class Command(BaseCommand):
    # An import is data work, often run from cron: the project's system checks (URLs, templates,
    # admin) are run by migrate and at deploy, and would add a tenth of a second to every run.
    requires_system_checks = []
    help = (
        "Import seed files (*.txt) from files or folders (default: the seeds/ folder). Re-importing is safe: "
        "unchanged seeds are left alone and an editor's changes are never overwritten without --overwrite."
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
        paths = paths or [settings.SEEDS_DIR]
        progress = None
        if verbosity >= 1 and _is_terminal(self.stderr):
            progress = ProgressBar(self.stderr, sum(1 for _ in iter_seed_paths(paths)))

        def on_result(result: FileResult) -> None:
            if progress:
                progress.advance()
            self._report(result, verbosity, progress)

        # Everything loaded before the import (Django, the apps, the models) outlives it: keep the
        # garbage collector from re-scanning all of it every few thousand rows (5 % of a large import).
        gc.freeze()
        try:
            summary = import_seeds(paths, status=status, dry_run=dry_run, overwrite=overwrite, on_result=on_result)
        except ValueError as err:
            raise CommandError(str(err)) from err
        finally:
            gc.unfreeze()
            if progress:
                progress.close()

        prefix = "Dry run (nothing written): " if dry_run else ""
        style = self.style.ERROR if summary.rejected else self.style.SUCCESS
        self.stdout.write(style(f"{prefix}{summary.line()}"))
        if summary.rejected:
            raise CommandError(f"{summary.rejected} file(s) rejected (listed above); the others were imported.")

    def _report(self, result: FileResult, verbosity: int, progress) -> None:
        if progress and (result.warnings or result.outcome in (Outcome.REJECTED, Outcome.CONFLICT)):
            self.stderr.write("\r\033[K", ending="")
        if result.outcome is Outcome.REJECTED:
            self.stderr.write(self.style.ERROR(f"{result.path}: {result.detail}"))
            return
        if verbosity >= 1:
            for warning in result.warnings:
                self.stderr.write(self.style.WARNING(f"{result.path}: warning: {warning}"))
        if result.outcome is Outcome.CONFLICT and verbosity >= 1:
            self.stderr.write(self.style.WARNING(f"{result.path}: conflict: {result.detail}"))
        elif result.outcome is Outcome.DUPLICATE and verbosity >= 1:
            self.stdout.write(f"{result.path}: duplicate: {result.detail}")
        elif verbosity >= 2:
            detail = f" ({result.detail})" if result.detail else ""
            self.stdout.write(f"{result.path}: {result.outcome}{detail}")


def _is_terminal(stream) -> bool:
    underlying = getattr(stream, "_out", stream)
    return hasattr(underlying, "isatty") and underlying.isatty()
