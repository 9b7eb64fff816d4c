"""Bulk writes of articles: what ``Article.objects.create()`` / ``save()`` do, done for a thousand rows.

The importer writes a thousand articles per transaction. Through the ORM each would be a separate
INSERT, a ``post_save`` signal, a django-simple-history revision and a search-index trigger run,
which is most of an import's time. This module is the one place that does the same things in bulk,
so nothing else hand-writes rows:

==============================  ============================================================
Django mechanism                done here by
==============================  ============================================================
``Model.__init__`` defaults,    :func:`article_rows` fills every column from the model's own
``auto_now``/``auto_now_add``   defaults, and refuses a row that misses a column with none
ORM ``INSERT``                  :func:`insert_rows` (one ``executemany``)
simple-history revision         :func:`record_revisions` (``INSERT … SELECT`` inside the database)
``post_save`` receivers         :func:`content_changed` (``articles.signals`` only bumps the
                                content version; a new receiver must be added here too)
FTS5 insert trigger (SQLite)    ``search.inserts_indexed_together`` around the inserts
==============================  ============================================================

``tests/test_bulk_writes.py`` checks that an article written here and one written through the ORM
are identical, column by column, in history and in search, so a new field, receiver or library
upgrade that this module misses fails a test instead of silently missing imported rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Model

from .models import Article, ContentVersion
from .search import inserts_indexed_together


def article_rows(values: Iterable[Mapping], *, now: datetime) -> list[dict]:
    """Complete rows (``{attname: value}``) for new articles from the values the caller decides.

    Every column the caller leaves out takes the field's default exactly as ``Article()`` would
    (``Field.get_default()``, evaluated once per call), and ``auto_now``/``auto_now_add`` columns take
    ``now``, as ``save()`` would. A column the model does not have is an error here rather than a
    database error half-way through a batch.
    """
    columns = [f for f in Article._meta.concrete_fields if not f.primary_key]
    auto_now = {f.attname for f in columns if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)}
    defaults = {f.attname: f.get_default() for f in columns if f.attname not in auto_now}
    rows = []
    for given in values:
        unknown = given.keys() - defaults.keys() - auto_now
        if unknown:
            raise ValueError(f"article row: unknown columns {sorted(unknown)}")
        rows.append({**defaults, **given, **dict.fromkeys(auto_now, now)})
    return rows


def create_articles(rows: list[dict], *, user, reason: str) -> None:
    """Insert complete article rows (:func:`article_rows`), index them for search, record revisions.

    Call inside ``transaction.atomic()``; call :func:`content_changed` once the batch is written.
    """
    if not rows:
        return
    with inserts_indexed_together():
        insert_rows(Article, rows)
    record_revisions(
        [row["seed_identity"] for row in rows], history_type="+", user=user, reason=reason, when=rows[0]["created_at"]
    )


def update_articles(
    articles: list[Article], *, fields: list[str], revised: list[Article], user, reason: str, when: datetime
) -> None:
    """Save ``fields`` of ``articles`` in bulk and record a revision of those in ``revised``.

    The search index follows by itself (its update trigger on SQLite, a generated column on
    PostgreSQL).
    """
    if not articles:
        return
    Article.objects.bulk_update(articles, fields=fields)
    record_revisions([a.seed_identity for a in revised], history_type="~", user=user, reason=reason, when=when)


def content_changed() -> None:
    """What ``articles.signals`` does after a save: cached pages are stale from the next request."""
    ContentVersion.bump()


def insert_rows(model: type[Model], rows: list[dict]) -> None:
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


def record_revisions(identities: list[str], *, history_type: str, user, reason: str, when: datetime) -> None:
    """Write a simple-history revision of each article, copying its row inside the database.

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
