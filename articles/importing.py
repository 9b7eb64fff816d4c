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

import functools
import hashlib
import itertools
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from . import bulk_writes
from .models import SEED_FIELDS, Article, ImportConflict, ImportOutcome, ImportRun, SlugRedirect, Source
from .seed_files import SeedFile, StillBeingWritten, display_path, iter_seed_files, read_seed_file
from .seeds import SeedArticle, SeedError, parse_seed

logger = logging.getLogger(__name__)

IMPORTER_USERNAME = "importer"
BATCH_SIZE = 1000
SLUG_BASE_LENGTH = 100  # leaves room for a "-<n>" suffix within Article.slug's 120 characters
SLUG_PROBE_WINDOW = 50  # suffixes looked up at once for a slug that is taken


#: What became of a file; the same choices the run's outcome rows store.
Outcome = ImportOutcome.Kind


@dataclass(frozen=True)
class FileResult:
    """What happened to one file, with the reason or the conflicting fields where there are any."""

    path: str
    outcome: Outcome
    detail: str = ""
    warnings: tuple[str, ...] = ()
    conflict_fields: tuple[str, ...] = ()
    #: The article the file created or updated, where there is one.
    article_id: int | None = None


@dataclass
class ImportSummary:
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))

    def add(self, result: FileResult) -> None:
        self.counts[result.outcome] += 1

    @property
    def rejected(self) -> int:
        return self.counts[Outcome.REJECTED]

    def line(self) -> str:
        """The one-line summary; ``skipped N`` appears only when files were left for the next run."""
        c = self.counts
        skipped = f"skipped {c[Outcome.SKIPPED]}, " if c[Outcome.SKIPPED] else ""
        return (
            f"created {c[Outcome.CREATED]}, updated {c[Outcome.UPDATED]}, unchanged {c[Outcome.UNCHANGED]}, "
            f"conflicts {c[Outcome.CONFLICT]}, duplicates {c[Outcome.DUPLICATE]}, {skipped}rejected {c[Outcome.REJECTED]}"
        )


@dataclass(frozen=True)
class _Seed:
    """A parsed seed with where it came from."""

    path: str
    article: SeedArticle
    mtime: float


class _DryRunRollback(Exception):
    """Raised at the end of a dry run to roll back everything it wrote."""


# --- Reading files ---------------------------------------------------------------------------------


def read_seed(seed_file: SeedFile, *, settle_seconds: float = 0) -> _Seed:
    """Read and parse one file safely (see ``articles.seed_files``); every failure is a ``SeedError``."""
    raw = read_seed_file(seed_file, settle_seconds=settle_seconds)
    return _Seed(path=str(raw.path), article=parse_seed(raw.data, raw.path), mtime=raw.mtime)


def _read_item(item: SeedFile | SeedError, settle_seconds: float) -> _Seed | SeedError:
    if isinstance(item, SeedError):
        return item
    try:
        return read_seed(item, settle_seconds=settle_seconds)
    except SeedError as err:
        return err


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def read_seeds(
    paths: Iterable[Path | str], *, chunk_size: int, settle_seconds: float = 0
) -> Iterator[_Seed | SeedError]:
    """Read and parse the seeds under ``paths``, in order; failures come back as ``SeedError``.

    Parsing costs half as much as writing, so on a multi-core machine a worker process parses the
    next chunk while the caller writes the current one. The first chunk is parsed here while the
    worker starts on the second, so writing begins as early as it can. At most two chunks are in
    flight, so memory stays flat however large the corpus. A run that fits in one chunk is parsed
    here, without a pool.
    """
    read_item = functools.partial(_read_item, settle_seconds=settle_seconds)
    chunks = _chunks(iter(iter_seed_files(paths)), chunk_size)
    first = next(chunks, [])
    second = next(chunks, None)
    workers = min(4, (os.cpu_count() or 1) - 1)
    if second is None or workers < 1 or "fork" not in multiprocessing.get_all_start_methods():
        for chunk in itertools.chain([first], [second] if second else [], chunks):
            yield from map(read_item, chunk)
        return
    # fork: the workers only read files and run pure parsing; they never touch the parent's DB connection.
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pending = pool.map_async(read_item, second, chunksize=64)
        yield from map(read_item, first)
        for chunk in chunks:
            following = pool.map_async(read_item, chunk, chunksize=64)
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


@dataclass(frozen=True)
class _Options:
    """How a run imports, shared by every batch of it."""

    status: str
    overwrite: bool
    run_started: datetime
    importer: object
    #: Where the run is recorded; ``None`` for a dry run, which records nothing.
    run: ImportRun | None


@dataclass
class _Plan:
    """What a batch will do: results already decided, articles to create, merges to write."""

    results: list[FileResult] = field(default_factory=list)
    to_create: list[_Seed] = field(default_factory=list)
    to_update: list[tuple[_Seed, Article, _Merge]] = field(default_factory=list)


def _look_up(seeds: list[_Seed]) -> tuple[dict[str, Article], dict[str, str]]:
    """The stored articles with these seeds' identities (locked), and the identities of known texts."""
    identities = {seed.article.identity for seed in seeds}
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
    new_hashes = {seed.article.sha256 for seed in seeds if seed.article.identity not in existing}
    known_hashes = dict(
        Article.objects.filter(seed_sha256__in=new_hashes).order_by().values_list("seed_sha256", "seed_identity")
    )
    return existing, known_hashes


def plan_batch(
    seeds: list[_Seed], *, existing: Mapping[str, Article], known_hashes: Mapping[str, str], options: _Options
) -> _Plan:
    """Decide each seed's fate from what is stored; a pure function of its arguments (no database).

    ``existing``: stored articles by seed identity; ``known_hashes``: identity of each stored text.
    """
    plan = _Plan()
    known_hashes = dict(known_hashes)
    for seed in seeds:
        parsed = seed.article
        article = existing.get(parsed.identity)
        if article is None:
            if parsed.sha256 in known_hashes:
                plan.results.append(_file_result(seed, Outcome.DUPLICATE, f"same text as seed {known_hashes[parsed.sha256]!r}"))
                continue
            known_hashes[parsed.sha256] = parsed.identity
            plan.to_create.append(seed)
            continue
        if article.imported_at and article.imported_at >= options.run_started and article.seed_sha256 != parsed.sha256:
            detail = f"another file named {parsed.identity!r} was already imported in this run"
            plan.results.append(_file_result(seed, Outcome.REJECTED, detail))
            continue
        current = article.seed_field_values()
        incoming = parsed.field_values()
        if article.seed_sha256 == parsed.sha256 and (not options.overwrite or current == incoming):
            plan.results.append(_file_result(seed, Outcome.UNCHANGED, article_id=article.pk))
            continue
        merge = merge_fields(
            baseline=article.imported_fields or {}, current=current, incoming=incoming, overwrite=options.overwrite
        )
        plan.to_update.append((seed, article, merge))
    return plan


def _write_plan(plan: _Plan, options: _Options) -> list[FileResult]:
    """Carry out a batch's plan; inside the batch's transaction."""
    now = timezone.now()
    sources = _resolve_sources(_source_names(plan), importer=options.importer)
    results = plan.results + _create(plan.to_create, sources, options, now=now)
    results += _update(plan.to_update, sources, options, now=now)
    if plan.to_create or plan.to_update:
        bulk_writes.content_changed()
    return results


def _source_names(plan: _Plan) -> set[str]:
    names = set()
    for seed in plan.to_create:
        names.update(n for n in (seed.article.publisher, seed.article.cited_outlet) if n)
    for _seed, _article, merge in plan.to_update:
        names.update(merge.changes[f] for f in ("source", "cited_source") if merge.changes.get(f))
    return names


def _create(to_create: list[_Seed], sources, options: _Options, *, now: datetime) -> list[FileResult]:
    if not to_create:
        return []
    slugs = _allocate_slugs(
        [slug_base(seed.article.title, fallback="article") for seed in to_create],
        taken_in=[(Article, "slug"), (SlugRedirect, "old_slug")],
    )
    rows = bulk_writes.article_rows(
        (
            {
                "title": seed.article.title,
                "slug": slug,
                "summary": seed.article.summary,
                "body": seed.article.body,
                "source_id": sources[seed.article.publisher].pk if seed.article.publisher else None,
                "cited_source_id": sources[seed.article.cited_outlet].pk if seed.article.cited_outlet else None,
                "status": options.status,
                "published_at": datetime.fromtimestamp(seed.mtime, tz=UTC),
                "seed_identity": seed.article.identity,
                "seed_sha256": seed.article.sha256,
                "imported_at": now,
                "imported_fields": seed.article.field_values(),
            }
            for seed, slug in zip(to_create, slugs)
        ),
        now=now,
    )
    bulk_writes.create_articles(rows, user=options.importer, reason="Created by seed import")
    ids = {}
    if options.run is not None:  # the run's outcome rows link to the new articles
        identities = [row["seed_identity"] for row in rows]
        ids = dict(Article.objects.filter(seed_identity__in=identities).order_by().values_list("seed_identity", "pk"))
    return [_file_result(seed, Outcome.CREATED, article_id=ids.get(seed.article.identity)) for seed in to_create]


def _update(to_update, sources, options: _Options, *, now: datetime) -> list[FileResult]:
    if not to_update:
        return []
    results, changed = [], []
    for seed, article, merge in to_update:
        apply_seed_values(article, merge.changes, sources)
        article.seed_sha256 = seed.article.sha256
        article.imported_fields = merge.baseline
        article.imported_at = now
        if options.overwrite:
            article.edited_since_import = False
        if merge.changes:
            article.version += 1
            article.updated_at = now
        changed.append(article)
        if merge.conflicts:
            outcome = Outcome.CONFLICT
            detail = (
                "editor's changes kept for " + ", ".join(merge.conflicts)
                + "; the seed's values wait in the admin's import conflicts (or use --overwrite)"
            )
        else:
            outcome = Outcome.UPDATED if merge.changes else Outcome.UNCHANGED
            detail = ", ".join(merge.changes)
        results.append(_file_result(seed, outcome, detail, conflict_fields=merge.conflicts, article_id=article.pk))
    bulk_writes.update_articles(
        changed,
        fields=[
            "title", "summary", "body", "source", "cited_source", "seed_sha256", "imported_fields",
            "imported_at", "edited_since_import", "version", "updated_at",
        ],
        revised=[article for (_seed, article, merge) in to_update if merge.changes],
        user=options.importer,
        reason="Updated by seed import",
        when=now,
    )
    _record_conflicts(to_update, options, now=now)
    return results


def _record_conflicts(to_update, options: _Options, *, now: datetime) -> None:
    """Keep each merged article's pending conflicts equal to what this merge found.

    A newer seed replaces a pending incoming value; a seed that no longer disagrees with the
    editor (or ``--overwrite``) clears the conflict.
    """
    settled = [article.pk for _seed, article, merge in to_update if not merge.conflicts]
    if settled:
        ImportConflict.objects.filter(article_id__in=settled).delete()
    pending = []
    for seed, article, merge in to_update:
        if not merge.conflicts:
            continue
        ImportConflict.objects.filter(article=article).exclude(field__in=merge.conflicts).delete()
        incoming = seed.article.field_values()
        pending += [
            ImportConflict(
                article=article,
                field=name,
                base_value=(article.imported_fields or {}).get(name),
                incoming_value=incoming[name],
                seed_path=display_path(seed.path),
                run=options.run,
                detected_at=now,
            )
            for name in merge.conflicts
        ]
    if pending:
        ImportConflict.objects.bulk_create(
            pending,
            update_conflicts=True,
            unique_fields=["article", "field"],
            update_fields=["base_value", "incoming_value", "seed_path", "run", "detected_at"],
        )


def _file_result(seed: _Seed, outcome: Outcome, detail: str = "", *, conflict_fields=(), article_id=None) -> FileResult:
    return FileResult(
        path=seed.path,
        outcome=outcome,
        detail=detail,
        warnings=seed.article.warnings,
        conflict_fields=tuple(conflict_fields),
        article_id=article_id,
    )


def apply_seed_values(article: Article, values: dict[str, str | None], sources: dict[str, Source]) -> None:
    """Set seed-field ``values`` (sources by name, as seeds give them) on ``article``, without saving.

    The one place a seed's values become an article's: the importer's merge, ``--overwrite`` and an
    editor's "take the seed's" in the conflict inbox all use it.
    """
    for name, value in values.items():
        if name in ("source", "cited_source"):
            setattr(article, name, sources[value] if value else None)
        else:
            setattr(article, name, value)


# --- Resolving conflicts ------------------------------------------------------------------------------


class Choice(StrEnum):
    """An editor's answer to one import conflict."""

    MINE = "mine"
    SEED = "seed"


class StaleConflictError(Exception):
    """A newer seed changed a conflict after the editor looked at it; they must look again."""

    def __init__(self, fields: list[str]):
        self.fields = fields
        super().__init__("a newer seed changed " + ", ".join(fields) + " since the page was opened")


@dataclass(frozen=True)
class Resolution:
    kept: tuple[str, ...]
    taken: tuple[str, ...]


def conflict_token(conflict: ImportConflict) -> str:
    """What the editor was shown, in short: a choice is applied only to the value they saw."""
    incoming = "\x00" if conflict.incoming_value is None else conflict.incoming_value
    return hashlib.sha256(f"{conflict.pk}:{incoming}".encode()).hexdigest()[:16]


def resolve_conflicts(article_id: int, choices: Mapping[str, Choice], *, tokens: Mapping[str, str], user) -> Resolution:
    """Apply an editor's choice per conflicting field of one article, as one revision by ``user``.

    *Keep mine* leaves the article's value; *take the seed's* writes the seed's value through
    :func:`apply_seed_values`, as ``--overwrite`` does. Either way the seed's value becomes the merge
    baseline, so re-importing the same seed is quiet, and the conflict is gone. Fields without a
    choice stay pending; a choice for a conflict already resolved is ignored. Raises
    :class:`StaleConflictError` if a newer seed changed a chosen conflict since ``tokens`` were read.
    """
    with transaction.atomic():
        article = Article.objects.select_for_update().get(pk=article_id)
        conflicts = {
            conflict.field: conflict
            for conflict in ImportConflict.objects.filter(article=article, field__in=list(choices))
        }
        stale = [name for name, conflict in conflicts.items() if tokens.get(name) != conflict_token(conflict)]
        if stale:
            raise StaleConflictError(sorted(stale, key=SEED_FIELDS.index))
        taken = {name: c.incoming_value for name, c in conflicts.items() if choices[name] == Choice.SEED}
        kept = [name for name in conflicts if choices[name] == Choice.MINE]
        if not conflicts:
            return Resolution(kept=(), taken=())
        names = {value for name, value in taken.items() if name in ("source", "cited_source") and value}
        apply_seed_values(article, taken, _resolve_sources(names, importer=importer_user()))
        article.imported_fields = {
            **(article.imported_fields or {}),
            **{name: conflict.incoming_value for name, conflict in conflicts.items()},
        }
        article.version += 1
        parts = [f"took the seed's {name}" for name in sorted(taken, key=SEED_FIELDS.index)]
        parts += [f"kept the editor's {name}" for name in sorted(kept, key=SEED_FIELDS.index)]
        article._history_user = user
        article._change_reason = "Import conflict resolved: " + "; ".join(parts)
        article.save()
        ImportConflict.objects.filter(pk__in=[conflict.pk for conflict in conflicts.values()]).delete()
    return Resolution(
        kept=tuple(sorted(kept, key=SEED_FIELDS.index)), taken=tuple(sorted(taken, key=SEED_FIELDS.index))
    )


# --- The run's record ---------------------------------------------------------------------------------


class _RunRecorder:
    """Writes the ``ImportRun`` and, in bulk, an outcome row for every file not left unchanged.

    Rows wait in memory until the next batch is written and go into the database in that batch's
    transaction, so a run of 100,000 files costs one multi-row INSERT per batch, not one per file.
    The same transaction moves the run's progress (files done, counts so far, last sign of life),
    which the admin's run page shows while it runs.
    """

    def __init__(self, run: ImportRun):
        self.run = run
        self.pending: list[dict] = []
        self.summary = ImportSummary()

    def add(self, result: FileResult) -> None:
        """Keep a file's outcome for the next write (files rejected before any batch reached them)."""
        self.summary.add(result)
        self.pending += self._rows([result])

    def write(self, results: list[FileResult]) -> None:
        """Insert the waiting rows and those of ``results``, and the progress; inside the batch's transaction.

        The waiting rows are dropped by :meth:`committed` once that transaction has committed, so a
        batch that fails and is retried file by file does not lose them.
        """
        bulk_writes.insert_rows(ImportOutcome, self.pending + self._rows(results))
        counts = self.summary.counts.copy()
        for result in results:
            counts[result.outcome] += 1
        ImportRun.objects.filter(pk=self.run.pk).update(
            done_files=sum(counts.values()),
            heartbeat_at=timezone.now(),
            **{field: counts[outcome] for outcome, field in RUN_COUNT_FIELDS.items()},
        )
        self._written = counts

    def committed(self) -> None:
        self.pending = []
        self.summary.counts = self._written

    def _rows(self, results: list[FileResult]) -> list[dict]:
        return [
            {
                "run_id": self.run.pk,
                "path": display_path(result.path),
                "outcome": str(result.outcome),
                "detail": display_path(result.detail),
                "article_id": result.article_id,
            }
            for result in results
            if result.outcome is not Outcome.UNCHANGED
        ]

    def finish(self, summary: ImportSummary, *, keep_quiet_run: bool = True, error: BaseException | None = None) -> None:
        """Record the end of the run; a run that changed nothing is dropped if ``keep_quiet_run`` is off."""
        with transaction.atomic():
            run = self.run
            if error is None and not keep_quiet_run and summary.counts[Outcome.UNCHANGED] == sum(summary.counts.values()):
                run.delete()
                return
            self.write([])
            run.refresh_from_db(fields=["total_files"])
            for outcome, count_field in RUN_COUNT_FIELDS.items():
                setattr(run, count_field, summary.counts[outcome])
            run.done_files = sum(summary.counts.values())
            run.finished_at = timezone.now()
            if error is None:
                run.state = ImportRun.State.FINISHED
                run.exit_status = 1 if summary.rejected else 0
            else:
                run.state = ImportRun.State.FAILED
                run.exit_status = 1
                run.error = display_path(f"{type(error).__name__}: {error}")
            run.save()
        self.committed()


RUN_COUNT_FIELDS = {
    Outcome.CREATED: "created",
    Outcome.UPDATED: "updated",
    Outcome.UNCHANGED: "unchanged",
    Outcome.CONFLICT: "conflicts",
    Outcome.DUPLICATE: "duplicates",
    Outcome.SKIPPED: "skipped",
    Outcome.REJECTED: "rejected",
}


# --- The service ------------------------------------------------------------------------------------


def import_seeds(
    paths: Iterable[Path | str],
    *,
    status: str = Article.Status.PUBLISHED,
    dry_run: bool = False,
    overwrite: bool = False,
    batch_size: int = BATCH_SIZE,
    settle_seconds: float | None = None,
    command: str = "",
    started_by: str = "",
    user=None,
    run: ImportRun | None = None,
    keep_quiet_run: bool = True,
    on_result: Callable[[FileResult], None] | None = None,
) -> ImportSummary:
    """Import every seed under ``paths``; report each file through ``on_result``; return the counts.

    A real run is recorded as an ``ImportRun`` (``command``, ``started_by`` and ``user`` say who
    started it) with an outcome row for every file it did not leave unchanged. ``dry_run`` does all
    the same work inside one transaction and rolls it back, so its summary is exactly what a real
    run would report, and it records nothing. ``settle_seconds`` (default: the
    ``NEWSROOM_IMPORT_SETTLE_SECONDS`` setting) is how long a file must have been left alone before
    it is read. ``run`` is a run queued beforehand (an admin upload); ``keep_quiet_run=False``
    drops the record of a run in which every file was unchanged (the inbox's frequent passes).
    """
    if status not in Article.Status.values:
        raise ValueError(f"unknown status {status!r}; choose one of {', '.join(Article.Status.values)}")
    if settle_seconds is None:
        settle_seconds = settings.NEWSROOM_IMPORT_SETTLE_SECONDS
    paths = [Path(path) for path in paths]
    summary = ImportSummary()
    recorder = None
    if not dry_run:
        if run is None:
            run = ImportRun(command=command, started_by=started_by, user=user, paths=[display_path(p) for p in paths])
        run.state = ImportRun.State.RUNNING
        run.heartbeat_at = timezone.now()
        run.save()
        recorder = _RunRecorder(run)

    def report(result: FileResult) -> None:
        summary.add(result)
        if on_result:
            on_result(result)

    def run_import() -> None:
        options = _Options(
            status=status,
            overwrite=overwrite,
            run_started=timezone.now(),
            importer=importer_user(),
            run=recorder.run if recorder else None,
        )
        write = functools.partial(_write_batch, report=report, options=options, recorder=recorder)
        batch: list[_Seed] = []
        batch_identities: set[str] = set()
        for seed in read_seeds(paths, chunk_size=batch_size, settle_seconds=settle_seconds):
            if isinstance(seed, SeedError):
                outcome = Outcome.SKIPPED if isinstance(seed, StillBeingWritten) else Outcome.REJECTED
                result = FileResult(path=seed.path, outcome=outcome, detail=seed.reason)
                if recorder:
                    recorder.add(result)
                report(result)
                continue
            if seed.article.identity in batch_identities:
                # Two files with one name in different folders: flush so the second meets the first in the database.
                write(batch)
                batch, batch_identities = [], set()
            batch.append(seed)
            batch_identities.add(seed.article.identity)
            if len(batch) >= batch_size:
                write(batch)
                batch, batch_identities = [], set()
        write(batch)

    if dry_run:
        try:
            with transaction.atomic():
                run_import()
                raise _DryRunRollback
        except _DryRunRollback:
            pass
        return summary
    try:
        run_import()
    except BaseException as err:  # KeyboardInterrupt too: the run is marked failed, not left "running"
        _finish_quietly(recorder, summary, err)
        raise
    recorder.finish(summary, keep_quiet_run=keep_quiet_run)
    if summary.counts[Outcome.CREATED] or summary.counts[Outcome.UPDATED]:
        refresh_planner_statistics()
    return summary


def _finish_quietly(recorder: _RunRecorder, summary: ImportSummary, error: BaseException) -> None:
    """Mark the run failed if the database still lets us; the original error is what matters."""
    try:
        recorder.finish(summary, error=error)
    except DatabaseError:
        logger.warning("could not mark import run %s as failed", recorder.run.pk, exc_info=True)


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


def _write_batch(batch: list[_Seed], *, report, options: _Options, recorder: _RunRecorder | None) -> None:
    """Write a batch in one transaction; if the database refuses it, retry file by file.

    The run's outcome rows are written in the same transaction as the files they describe, and
    files are reported only once their transaction has committed.
    """
    if not batch:
        return
    try:
        results = _write_in_transaction(batch, options, recorder)
    except DatabaseError:
        logger.warning("batch of %d seeds failed; retrying one file at a time", len(batch), exc_info=True)
        results = []
        for seed in batch:
            try:
                results += _write_in_transaction([seed], options, recorder)
            except DatabaseError as err:
                result = FileResult(path=seed.path, outcome=Outcome.REJECTED, detail=f"database error: {err}")
                if recorder:
                    recorder.add(result)
                results.append(result)
    for result in results:
        report(result)


def _write_in_transaction(seeds: list[_Seed], options: _Options, recorder: _RunRecorder | None) -> list[FileResult]:
    with transaction.atomic():
        existing, known_hashes = _look_up(seeds)
        results = _write_plan(plan_batch(seeds, existing=existing, known_hashes=known_hashes, options=options), options)
        if recorder:
            recorder.write(results)
    if recorder:
        recorder.committed()
    return results
