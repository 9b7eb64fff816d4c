"""Importing seed files into Articles: the only code that writes imported content.

The rules, in the order a person would ask about them:

* **Identity.** A seed's identity is its file name without extension. It decides create or update.
* **Never lose an editor's work.** A changed seed is merged field by field against what the importer
  last wrote (``Article.imported_fields``): a field the editor never touched takes the seed's new
  value; a field the editor changed keeps the editor's value, and if the seed changed it too the file is
  reported as a *conflict* naming the fields. ``overwrite=True`` takes the seed's values deliberately.
* **Duplicates.** The same text under another file name is reported and not imported twice.
* **All or nothing per file.** Files are written in batches inside a transaction for speed; if a batch
  fails in the database, it is retried file by file so one bad file never rolls back the others.
* **Flat memory.** Files are streamed from the walk in batches, at most two batches in memory; the
  walk keeps one entry per folder and the sorted names of the folder it is in, nothing per file.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from .models import SEED_FIELDS, Article, ContentVersion, SlugRedirect, Source
from .search import inserts_indexed_together
from .seeds import MAX_SEED_BYTES, SeedArticle, SeedError, parse_seed

logger = logging.getLogger(__name__)

IMPORTER_USERNAME = "importer"
BATCH_SIZE = 1000
SLUG_BASE_LENGTH = 100  # leaves room for a "-<n>" suffix within Article.slug's 120 characters
SLUG_PROBE_WINDOW = 50  # suffixes looked up at once for a slug that is taken


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class FileResult:
    """What happened to one file, with the reason or the conflicting fields where there are any."""

    path: str
    outcome: Outcome
    detail: str = ""
    warnings: tuple[str, ...] = ()
    conflict_fields: tuple[str, ...] = ()


@dataclass
class ImportSummary:
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))

    def add(self, result: FileResult) -> None:
        self.counts[result.outcome] += 1

    @property
    def rejected(self) -> int:
        return self.counts[Outcome.REJECTED]

    def line(self) -> str:
        c = self.counts
        return (
            f"created {c[Outcome.CREATED]}, updated {c[Outcome.UPDATED]}, unchanged {c[Outcome.UNCHANGED]}, "
            f"conflicts {c[Outcome.CONFLICT]}, duplicates {c[Outcome.DUPLICATE]}, rejected {c[Outcome.REJECTED]}"
        )


@dataclass(frozen=True)
class _Seed:
    """A parsed seed with where it came from."""

    path: str
    article: SeedArticle
    mtime: float


class _DryRunRollback(Exception):
    """Raised at the end of a dry run to roll back everything it wrote."""


# --- Finding files -------------------------------------------------------------------------------


def iter_seed_paths(paths: Iterable[Path | str]) -> Iterator[Path | SeedError]:
    """Every ``*.txt`` file under the given files and folders, each real file once, in a stable order.

    Symlinks are followed, but a file is yielded only where it really lives when that place is
    walked anyway: a link (to a file, or to a folder) pointing inside the given folders is skipped,
    so the file is imported once, and a folder link pointing back up the tree does not loop. This
    keeps nothing per file (only one entry per folder, and the listing of the folder being walked).
    A named path that is
    missing, or a named file that is not ``.txt``, is yielded as a ``SeedError`` to report.
    """
    paths = [Path(raw) for raw in paths]
    real_roots = [path.resolve() for path in paths if path.is_dir()]

    def walked_anyway(real: Path, *, other_than: Path | None = None) -> bool:
        return any(real.is_relative_to(root) for root in real_roots if root != other_than)

    seen_dirs: set[Path] = set()  # one entry a folder, for links that loop outside the roots
    for root in paths:
        if root.is_dir():
            real_root = root.resolve()
            if real_root in seen_dirs or walked_anyway(real_root, other_than=real_root):
                continue  # the same folder named twice, or a folder inside another one named
            unreadable: list[OSError] = []
            for directory, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable.append):
                yield from _folder_errors(unreadable)
                real_dir = Path(directory).resolve()
                reached_by_link = real_dir != Path(os.path.abspath(directory))
                if real_dir in seen_dirs or (reached_by_link and walked_anyway(real_dir)):
                    dirnames[:] = []
                    continue
                seen_dirs.add(real_dir)
                dirnames.sort()
                for name in sorted(filenames):
                    path = Path(directory) / name
                    if not name.lower().endswith(".txt"):
                        continue
                    if path.is_symlink() and path.exists():
                        target = path.resolve()
                        if target.suffix.lower() == ".txt" and walked_anyway(target):
                            continue  # the real file is (or was) yielded where it lives
                    yield path
            yield from _folder_errors(unreadable)
        elif root.exists():
            if root.suffix.lower() != ".txt":
                yield SeedError(root, "not a .txt file; only *.txt seed files are imported")
            elif not walked_anyway(root.resolve()):
                yield root
        else:
            yield SeedError(root, "no such file or folder")


def _folder_errors(errors: list[OSError]) -> Iterator[SeedError]:
    """A folder the walk could not list is reported, not skipped in silence."""
    while errors:
        err = errors.pop(0)
        yield SeedError(err.filename, f"cannot read folder: {err.strerror or err}")


def read_seed(path: Path) -> _Seed:
    """Read and parse one file; every failure becomes a ``SeedError`` naming the file."""
    try:
        with path.open("rb") as handle:
            stat_result = os.fstat(handle.fileno())
            if stat_result.st_size > MAX_SEED_BYTES:
                raise SeedError(path, f"file is {stat_result.st_size:,} bytes; the limit is {MAX_SEED_BYTES:,} (5 MB)")
            data = handle.read(MAX_SEED_BYTES + 1)
    except OSError as err:
        raise SeedError(path, f"cannot read: {err.strerror or err}") from err
    return _Seed(path=str(path), article=parse_seed(data, path), mtime=stat_result.st_mtime)


def _read_item(item: Path | SeedError) -> _Seed | SeedError:
    if isinstance(item, SeedError):
        return item
    try:
        return read_seed(item)
    except SeedError as err:
        return err


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def read_seeds(paths: Iterable[Path | str], *, chunk_size: int) -> Iterator[_Seed | SeedError]:
    """Read and parse the seeds under ``paths``, in order; failures come back as ``SeedError``.

    Parsing costs half as much as writing, so on a multi-core machine a worker process parses the
    next chunk while the caller writes the current one. The first chunk is parsed here while the
    worker starts on the second, so writing begins as early as it can. At most two chunks are in
    flight, so memory stays flat however large the corpus. A run that fits in one chunk is parsed
    here, without a pool.
    """
    chunks = _chunks(iter(iter_seed_paths(paths)), chunk_size)
    first = next(chunks, [])
    second = next(chunks, None)
    workers = min(4, (os.cpu_count() or 1) - 1)
    if second is None or workers < 1 or "fork" not in multiprocessing.get_all_start_methods():
        for chunk in itertools.chain([first], [second] if second else [], chunks):
            yield from map(_read_item, chunk)
        return
    # fork: the workers only read files and run pure parsing; they never touch the parent's DB connection.
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pending = pool.map_async(_read_item, second, chunksize=64)
        yield from map(_read_item, first)
        for chunk in chunks:
            following = pool.map_async(_read_item, chunk, chunksize=64)
            yield from pending.get()
            pending = following
        yield from pending.get()


# --- Slugs and sources -----------------------------------------------------------------------------


def slug_base(text: str, *, fallback: str) -> str:
    return slugify(text, allow_unicode=True)[:SLUG_BASE_LENGTH].strip("-_") or fallback


def _allocate_slugs(bases: list[str], *, taken_in: list[tuple[type, str]]) -> list[str]:
    """Unique slugs for ``bases``: the base itself where free, else ``base-2``, ``base-3`` …

    ``taken_in`` names the (model, field) pairs a slug must not collide with: for articles, the
    other articles' slugs and the old addresses kept as redirects (taking one would hijack its
    links). One query per pair for the whole batch; a base that collides probes its suffixes
    ``SLUG_PROBE_WINDOW`` at a time by exact value, which every database answers from the unique
    index (a ``startswith`` is a ``LIKE`` on SQLite, which scans the whole table).
    """
    taken = _taken_slugs(set(bases), taken_in)
    next_suffix: dict[str, int] = {}
    probed_below: dict[str, int] = {}
    result = []
    for base in bases:
        if base in taken:
            suffix = next_suffix.get(base, 2)
            while True:
                if suffix >= probed_below.get(base, 2):
                    window = range(suffix, suffix + SLUG_PROBE_WINDOW)
                    taken |= _taken_slugs({f"{base}-{n}" for n in window}, taken_in)
                    probed_below[base] = window.stop
                if f"{base}-{suffix}" not in taken:
                    break
                suffix += 1
            next_suffix[base] = suffix + 1
            slug = f"{base}-{suffix}"
        else:
            slug = base
        taken.add(slug)
        result.append(slug)
    return result


def _taken_slugs(candidates: set[str], taken_in: list[tuple[type, str]]) -> set[str]:
    taken = set()
    for model, field_name in taken_in:
        lookup = model.objects.filter(**{f"{field_name}__in": candidates}).order_by()
        taken.update(lookup.values_list(field_name, flat=True))
    return taken


def _resolve_sources(names: set[str], *, importer) -> dict[str, Source]:
    """Sources by name, creating the missing ones (with unique slugs and a revision) in one batch."""
    found = {source.name: source for source in Source.objects.filter(name__in=names)}
    missing = sorted(names - found.keys())
    if missing:
        slugs = _allocate_slugs([slug_base(name, fallback="source") for name in missing], taken_in=[(Source, "slug")])
        created = Source.objects.bulk_create([Source(name=name, slug=slug) for name, slug in zip(missing, slugs)])
        Source.history.bulk_history_create(
            created, default_user=importer, default_change_reason="Created by seed import"
        )
        found.update((source.name, source) for source in created)
    return found


def importer_user():
    """The account import revisions are attributed to; it cannot log in."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=IMPORTER_USERNAME, defaults={"is_active": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


# --- Fast inserts ----------------------------------------------------------------------------------


def insert_rows(model, rows: list[dict]) -> None:
    """INSERT rows (``{attname: value}``) with one ``executemany``, bypassing the ORM's compiler.

    ``bulk_create`` spends most of an import preparing values one by one; here only datetime and
    JSON columns are adapted and the database driver handles the rest. No signals are sent and no
    defaults applied: callers give every column but an auto-increment primary key.
    """
    if not rows:
        return
    fields = [f for f in model._meta.concrete_fields if f.attname in rows[0]]
    converters = [_column_converter(f) for f in fields]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    by_column = []
    for model_field, convert in zip(fields, converters):
        column = [row[model_field.attname] for row in rows]
        by_column.append(list(map(convert, column)) if convert else column)
    values = list(zip(*by_column))  # column by column: the per-value work stays in C where it can
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", values)


def _column_converter(model_field):
    kind = model_field.get_internal_type()
    if kind == "DateTimeField" and connection.vendor == "sqlite":
        return _sqlite_datetime
    if kind in ("DateTimeField", "JSONField"):
        return lambda value: model_field.get_db_prep_save(value, connection)
    return None


def _sqlite_datetime(value: datetime | None) -> str | None:
    """What Django's SQLite backend stores: naive UTC in str() form; 10x cheaper than get_db_prep_save."""
    return None if value is None else str(value.astimezone(UTC).replace(tzinfo=None))


def record_revisions(identities: list[str], *, history_type: str, user, reason: str, when) -> None:
    """Write a simple-history revision of each imported article, copying its row inside the database.

    What ``bulk_history_create`` does, without reading every body back into Python and binding it again.
    """
    if not identities:
        return
    history = Article.history.model
    qn = connection.ops.quote_name
    tracked = ", ".join(qn(f.column) for f in history.tracked_fields)
    meta = ", ".join(qn(name) for name in ("history_date", "history_type", "history_user_id", "history_change_reason"))
    placeholders = ", ".join(["%s"] * len(identities))
    convert_date = _column_converter(history._meta.get_field("history_date"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(history._meta.db_table)} ({tracked}, {meta}) "
            f"SELECT {tracked}, %s, %s, %s, %s FROM {qn(Article._meta.db_table)} "
            f"WHERE {qn('seed_identity')} IN ({placeholders})",
            [convert_date(when), history_type, user.pk, reason, *identities],
        )


# --- Planning and writing a batch --------------------------------------------------------------------


@dataclass(frozen=True)
class _Merge:
    changes: dict[str, str | None]
    conflicts: tuple[str, ...]
    baseline: dict[str, str | None]


def merge_fields(*, baseline: dict, current: dict, incoming: dict, overwrite: bool) -> _Merge:
    """Three-way merge of the seed fields; a pure function so the rule is testable on its own.

    ``baseline`` is what the importer last wrote, ``current`` the article now, ``incoming`` the new
    seed. The returned baseline keeps the old value for a conflicting field, so the conflict is
    reported again if the seed changes once more.
    """
    changes: dict[str, str | None] = {}
    conflicts: list[str] = []
    for name in SEED_FIELDS:
        if incoming[name] == current[name]:
            continue
        seed_changed = incoming[name] != baseline.get(name)
        editor_changed = current[name] != baseline.get(name)
        if overwrite or not editor_changed:
            changes[name] = incoming[name]
        elif seed_changed:
            conflicts.append(name)
    new_baseline = {name: baseline.get(name) if name in conflicts else incoming[name] for name in SEED_FIELDS}
    return _Merge(changes=changes, conflicts=tuple(conflicts), baseline=new_baseline)


class _Batch:
    """Plans and writes one batch of parsed seeds; returns a result per seed."""

    def __init__(self, seeds: list[_Seed], *, status: str, overwrite: bool, run_started, importer):
        self.seeds = seeds
        self.status = status
        self.overwrite = overwrite
        self.run_started = run_started
        self.importer = importer
        self.now = timezone.now()

    def run(self) -> list[FileResult]:
        identities = {seed.article.identity for seed in self.seeds}
        existing_articles = Article.objects.filter(seed_identity__in=identities).select_related("source", "cited_source")
        if connection.features.has_select_for_update:
            # Locked until the batch commits: an editor's save between this read and the write
            # below would otherwise be overwritten. In primary-key order, like every other locking
            # writer, so two never deadlock.
            existing_articles = existing_articles.select_for_update(of=("self",)).order_by("pk")
        else:
            # SQLite: one writer at a time, no row locks; and ordered by pk, its planner would scan
            # the whole table instead of looking the identities up in their index.
            existing_articles = existing_articles.order_by()
        existing = {article.seed_identity: article for article in existing_articles}
        new_hashes = {seed.article.sha256 for seed in self.seeds if seed.article.identity not in existing}
        known_hashes = dict(
            Article.objects.filter(seed_sha256__in=new_hashes).order_by().values_list("seed_sha256", "seed_identity")
        )
        results: list[FileResult] = []
        to_create: list[_Seed] = []
        to_update: list[tuple[_Seed, Article, _Merge]] = []
        for seed in self.seeds:
            parsed = seed.article
            article = existing.get(parsed.identity)
            if article is None:
                if parsed.sha256 in known_hashes:
                    results.append(self._result(seed, Outcome.DUPLICATE, f"same text as seed {known_hashes[parsed.sha256]!r}"))
                    continue
                known_hashes[parsed.sha256] = parsed.identity
                to_create.append(seed)
                continue
            if article.imported_at and article.imported_at >= self.run_started and article.seed_sha256 != parsed.sha256:
                results.append(
                    self._result(
                        seed, Outcome.REJECTED, f"another file named {parsed.identity!r} was already imported in this run"
                    )
                )
                continue
            current = article.seed_field_values()
            incoming = parsed.field_values()
            if article.seed_sha256 == parsed.sha256 and (not self.overwrite or current == incoming):
                results.append(self._result(seed, Outcome.UNCHANGED))
                continue
            merge = merge_fields(
                baseline=article.imported_fields or {}, current=current, incoming=incoming, overwrite=self.overwrite
            )
            to_update.append((seed, article, merge))

        sources = _resolve_sources(self._source_names(to_create, to_update), importer=self.importer)
        results += self._create(to_create, sources)
        results += self._update(to_update, sources)
        if to_create or to_update:
            ContentVersion.bump()
        return results

    def _source_names(self, to_create, to_update) -> set[str]:
        names = set()
        for seed in to_create:
            names.update(n for n in (seed.article.publisher, seed.article.cited_outlet) if n)
        for _seed, _article, merge in to_update:
            names.update(merge.changes[f] for f in ("source", "cited_source") if merge.changes.get(f))
        return names

    def _create(self, to_create, sources) -> list[FileResult]:
        if not to_create:
            return []
        slugs = _allocate_slugs(
            [slug_base(seed.article.title, fallback="article") for seed in to_create],
            taken_in=[(Article, "slug"), (SlugRedirect, "old_slug")],
        )
        rows = []
        for seed, slug in zip(to_create, slugs):
            parsed = seed.article
            rows.append(
                {
                    "title": parsed.title,
                    "slug": slug,
                    "summary": parsed.summary,
                    "body": parsed.body,
                    "source_id": sources[parsed.publisher].pk if parsed.publisher else None,
                    "cited_source_id": sources[parsed.cited_outlet].pk if parsed.cited_outlet else None,
                    "status": self.status,
                    "published_at": datetime.fromtimestamp(seed.mtime, tz=UTC),
                    "created_at": self.now,
                    "updated_at": self.now,
                    "version": 1,
                    "seed_identity": parsed.identity,
                    "seed_sha256": parsed.sha256,
                    "imported_at": self.now,
                    "edited_since_import": False,
                    "imported_fields": parsed.field_values(),
                }
            )
        with inserts_indexed_together():
            insert_rows(Article, rows)
        record_revisions(
            [row["seed_identity"] for row in rows],
            history_type="+",
            user=self.importer,
            reason="Created by seed import",
            when=self.now,
        )
        return [self._result(seed, Outcome.CREATED) for seed in to_create]

    def _update(self, to_update, sources) -> list[FileResult]:
        if not to_update:
            return []
        results, changed = [], []
        for seed, article, merge in to_update:
            for name, value in merge.changes.items():
                if name in ("source", "cited_source"):
                    setattr(article, name, sources[value] if value else None)
                else:
                    setattr(article, name, value)
            article.seed_sha256 = seed.article.sha256
            article.imported_fields = merge.baseline
            article.imported_at = self.now
            if self.overwrite:
                article.edited_since_import = False
            if merge.changes:
                article.version += 1
                article.updated_at = self.now
            changed.append(article)
            if merge.conflicts:
                outcome = Outcome.CONFLICT
                detail = "editor's changes kept for " + ", ".join(merge.conflicts) + " (use --overwrite to take the seed's)"
            else:
                outcome = Outcome.UPDATED if merge.changes else Outcome.UNCHANGED
                detail = ", ".join(merge.changes)
            results.append(self._result(seed, outcome, detail, conflict_fields=merge.conflicts))
        Article.objects.bulk_update(
            changed,
            fields=[
                "title", "summary", "body", "source", "cited_source", "seed_sha256", "imported_fields",
                "imported_at", "edited_since_import", "version", "updated_at",
            ],
        )
        record_revisions(
            [article.seed_identity for (_seed, article, merge) in to_update if merge.changes],
            history_type="~",
            user=self.importer,
            reason="Updated by seed import",
            when=self.now,
        )
        return results

    @staticmethod
    def _result(seed: _Seed, outcome: Outcome, detail: str = "", *, conflict_fields=()) -> FileResult:
        return FileResult(
            path=seed.path,
            outcome=outcome,
            detail=detail,
            warnings=seed.article.warnings,
            conflict_fields=tuple(conflict_fields),
        )


# --- The service ------------------------------------------------------------------------------------


def import_seeds(
    paths: Iterable[Path | str],
    *,
    status: str = Article.Status.PUBLISHED,
    dry_run: bool = False,
    overwrite: bool = False,
    batch_size: int = BATCH_SIZE,
    on_result: Callable[[FileResult], None] | None = None,
) -> ImportSummary:
    """Import every seed under ``paths``; report each file through ``on_result``; return the counts.

    ``dry_run`` does all the same work inside one transaction and rolls it back, so its summary is
    exactly what a real run would report.
    """
    if status not in Article.Status.values:
        raise ValueError(f"unknown status {status!r}; choose one of {', '.join(Article.Status.values)}")
    summary = ImportSummary()

    def report(result: FileResult) -> None:
        summary.add(result)
        if on_result:
            on_result(result)

    def run() -> None:
        run_started = timezone.now()
        importer = importer_user()
        batch: list[_Seed] = []
        batch_identities: set[str] = set()
        for seed in read_seeds(paths, chunk_size=batch_size):
            if isinstance(seed, SeedError):
                report(FileResult(path=seed.path, outcome=Outcome.REJECTED, detail=seed.reason))
                continue
            if seed.article.identity in batch_identities:
                # Two files with one name in different folders: flush so the second meets the first in the database.
                _write_batch(batch, report, status=status, overwrite=overwrite, run_started=run_started, importer=importer)
                batch, batch_identities = [], set()
            batch.append(seed)
            batch_identities.add(seed.article.identity)
            if len(batch) >= batch_size:
                _write_batch(batch, report, status=status, overwrite=overwrite, run_started=run_started, importer=importer)
                batch, batch_identities = [], set()
        _write_batch(batch, report, status=status, overwrite=overwrite, run_started=run_started, importer=importer)

    if dry_run:
        try:
            with transaction.atomic():
                run()
                raise _DryRunRollback
        except _DryRunRollback:
            pass
    else:
        run()
        if summary.counts[Outcome.CREATED] or summary.counts[Outcome.UPDATED]:
            refresh_planner_statistics()
    return summary


def refresh_planner_statistics() -> None:
    """Let SQLite's query planner see the new data (PostgreSQL's autovacuum does this by itself).

    Without statistics SQLite picks poor indexes for the public listings once thousands of articles
    exist; a sampled ANALYZE takes a few milliseconds.
    """
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA analysis_limit=1000")
        cursor.execute("ANALYZE")


def _write_batch(batch: list[_Seed], report, **options) -> None:
    """Write a batch in one transaction; if the database refuses it, retry file by file."""
    if not batch:
        return
    try:
        with transaction.atomic():
            results = _Batch(batch, **options).run()
    except DatabaseError:
        logger.warning("batch of %d seeds failed; retrying one file at a time", len(batch), exc_info=True)
        for seed in batch:
            try:
                with transaction.atomic():
                    results = _Batch([seed], **options).run()
            except DatabaseError as err:
                results = [FileResult(path=seed.path, outcome=Outcome.REJECTED, detail=f"database error: {err}")]
            for result in results:
                report(result)
        return
    for result in results:
        report(result)
