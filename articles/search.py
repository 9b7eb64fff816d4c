"""Full-text search over published articles, behind one function that works on SQLite and PostgreSQL.

``search_articles(query)`` returns a QuerySet of published articles annotated with ``rank`` (higher
is better) and ``snippet`` (a short extract of the body), ordered best first. Views, feeds and tests
only ever call it; which engine answers is decided here by ``connection.vendor``:

* SQLite: an FTS5 index (``articles_article_fts``, external content over ``articles_article``) kept
  in step by triggers, so every write path — ``save()``, ``bulk_create``, ``QuerySet.update`` and raw
  SQL — updates it without application code remembering to. Created by migration 0003. The
  importer, inserting thousands of rows at a time, indexes each batch in one statement instead
  (:func:`inserts_indexed_together`).
* PostgreSQL: a weighted ``tsvector`` column that PostgreSQL generates from title, summary and body
  (so it too follows every write), with a GIN index, queried with ``websearch_to_tsquery``. The
  column is not a model field, because the model is shared with SQLite; a ``GeneratedField`` on
  the model would be the tidier home for it once the model may change.

User input is never handed to either query language as-is: it is reduced to words and quoted
phrases (:func:`parse_query`), so operators, column filters, stray quotes and parentheses are plain
text and cannot raise a syntax error. The snippet marks matches with private-use sentinel
characters, not HTML; the ``highlight`` template filter escapes the whole snippet first and only
then turns the sentinels into ``<mark>``, so imported text is never trusted as markup.
"""

import re
from contextlib import contextmanager

from django.db import connection
from django.db.models import BooleanField, F, FloatField, QuerySet, TextField
from django.db.models.expressions import Col, Expression, RawSQL

from .models import Article

#: Characters of the query that are looked at; the rest is ignored (a search box, not an essay).
MAX_QUERY_LENGTH = 200
#: Words and phrases that are ANDed together; more make the query slower without making it better.
MAX_TERMS = 12

#: Private-use characters that bracket a match in a snippet until it is escaped and rendered.
MARK_START = "\ue000"
MARK_END = "\ue001"
#: Joins the fragments of a snippet, and ends one that stops mid-text.
ELLIPSIS = "…"
#: Roughly how many words a snippet shows.
SNIPPET_WORDS = 32

#: Relative weight of a match in the title, the summary and the body.
SQLITE_WEIGHTS = (10.0, 4.0, 1.0)
POSTGRES_CONFIG = "english"
POSTGRES_COLUMN = "search_document"

FTS_TABLE = "articles_article_fts"
#: The FTS5 table (SQLite) and tsvector column (PostgreSQL) are created by migration 0003_search.
#: The trigger that indexes each new article as it is inserted, and the columns it indexes.
FTS_INSERT_TRIGGER = f"{FTS_TABLE}_ai"
FTS_COLUMNS = ("title", "summary", "body")

_TERM_RE = re.compile(r'"([^"]*)"|([^"\s]+)')
_WORD_RE = re.compile(r"\w+")


def parse_query(query: str) -> list[tuple[str, ...]]:
    """Reduce free text to at most MAX_TERMS terms, each a tuple of words (more than one: a phrase).

    Only letters and digits survive, so ``AND``, ``NEAR(``, ``title:``, ``*``, quotes and emoji are
    either plain words or nothing. A double-quoted run of words is kept together as a phrase; an
    unbalanced quote is ignored.
    """
    terms: list[tuple[str, ...]] = []
    for phrase, word in _TERM_RE.findall(query[:MAX_QUERY_LENGTH]):
        words = tuple(_WORD_RE.findall(phrase or word))
        if phrase and words:
            terms.append(words)
        else:
            terms.extend((part,) for part in words)
    return terms[:MAX_TERMS]


def _quoted(terms: list[tuple[str, ...]]) -> str:
    # Each term becomes one double-quoted string: a phrase to FTS5, a phrase or a word to
    # websearch_to_tsquery; space between them means AND to both. Words contain no quotes.
    return " ".join('"{}"'.format(" ".join(words)) for words in terms)


@contextmanager
def inserts_indexed_together():
    """Index the articles inserted inside this block in one statement when it ends, not row by row.

    For bulk inserts (the seed importer). On SQLite the per-row insert trigger costs three times as
    much as the inserts themselves; here it is dropped, the new rows (ids above the largest one before the
    block: the ids are AUTOINCREMENT) are indexed with one ``INSERT … SELECT``, and the trigger is
    re-created from its own stored SQL. It must run inside a transaction: SQLite's DDL is
    transactional and the transaction holds the write lock, so no other connection ever writes
    while the trigger is missing, and a failure rolls the drop back with everything else. A row
    inserted in the block must not be updated or deleted before it ends: its update and delete
    triggers would remove words that are not indexed yet. On PostgreSQL the search document is a
    generated column, so there is nothing to do.
    """
    if connection.vendor != "sqlite":
        yield
        return
    if not connection.in_atomic_block:
        raise RuntimeError("inserts_indexed_together() must run inside transaction.atomic()")
    columns = ", ".join(FTS_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = %s", [FTS_INSERT_TRIGGER])
        row = cursor.fetchone()
        if row is None:
            raise RuntimeError(
                f"the search index trigger {FTS_INSERT_TRIGGER} is missing: a migration rebuilt articles_article "
                "without re-creating it (see migration 0003_search)"
            )
        (trigger_sql,) = row
        cursor.execute("SELECT coalesce(max(id), 0) FROM articles_article")
        (last_id_before,) = cursor.fetchone()
        cursor.execute(f"DROP TRIGGER {FTS_INSERT_TRIGGER}")
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {FTS_TABLE}(rowid, {columns}) SELECT id, {columns} FROM articles_article WHERE id > %s",
            [last_id_before],
        )
        cursor.execute(trigger_sql)


def search_articles(query: str, queryset: QuerySet | None = None) -> QuerySet:
    """Published articles matching every word of ``query``, best match first.

    ``queryset`` narrows the search (a source, a filter form's result); it is always restricted to
    published articles whose time has come. A query with no words gives an empty QuerySet.
    """
    queryset = (Article.objects.all() if queryset is None else queryset).published()
    terms = parse_query(query)
    if not terms:
        return queryset.none()
    if connection.vendor == "postgresql":
        queryset = _search_postgresql(queryset, _quoted(terms))
    else:
        queryset = _search_sqlite(queryset, _quoted(terms))
    return queryset.order_by("-rank", "-published_at", "-id")


class _FtsMatch(Expression):
    """``articles_article_fts.rowid = <this article's id> AND articles_article_fts MATCH %s``.

    A condition rather than raw SQL so the article's id is compiled by Django (``F("id")``): it
    stays correct when the QuerySet is relabelled as a subquery (the paginator selects a page's
    ids that way). The FTS table itself joins the FROM clause through ``extra(tables=…)``, the one
    way Django offers to join a table that has no model; a subquery lists it again in its own
    FROM, where it shadows the outer one.
    """

    conditional = True
    output_field = BooleanField()

    def __init__(self, match: str):
        super().__init__()
        self.match, self.row_id = match, F("id")

    def get_source_expressions(self):
        return [self.row_id]

    def set_source_expressions(self, exprs):
        (self.row_id,) = exprs

    def as_sql(self, compiler, connection):
        row_sql, row_params = compiler.compile(self.row_id)
        return f"(+{FTS_TABLE}.rowid = {row_sql} AND {FTS_TABLE} MATCH %s)", (*row_params, self.match)


def _search_sqlite(queryset: QuerySet, match: str) -> QuerySet:
    # One pass over the FTS index joined to the articles by rowid: bm25 is computed once per
    # match. (A correlated subquery per article re-reads the index for each row: 100x slower.)
    weights = ", ".join(str(weight) for weight in SQLITE_WEIGHTS)
    snippet = f"snippet({FTS_TABLE}, 2, %s, %s, %s, {SNIPPET_WORDS})"
    return (
        queryset.extra(tables=[FTS_TABLE])
        .filter(_FtsMatch(match))
        .annotate(
            rank=RawSQL(f"-bm25({FTS_TABLE}, {weights})", (), output_field=FloatField()),
            snippet=RawSQL(snippet, (MARK_START, MARK_END, ELLIPSIS), output_field=TextField()),
        )
    )


class _StoredSearchDocument(Expression):
    """The ``search_document`` column that migration 0003 adds to articles_article on PostgreSQL.

    The column is generated by PostgreSQL from title, summary and body, and the Article model does
    not declare it (the model is shared with SQLite, which has no such column). It resolves to a
    column of whatever alias the article table has in the query, so it survives relabelling.
    """

    def __init__(self):
        super().__init__(output_field=_search_document_field())

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        row_id = F("id").resolve_expression(query, allow_joins, reuse, summarize, for_save)
        return Col(row_id.alias, self.output_field)


def _search_document_field():
    from django.contrib.postgres.search import SearchVectorField

    field = SearchVectorField()
    field.set_attributes_from_name(POSTGRES_COLUMN)
    field.model = Article
    return field


def _search_postgresql(queryset: QuerySet, text: str) -> QuerySet:
    from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank

    search_query = SearchQuery(text, search_type="websearch", config=POSTGRES_CONFIG)
    return (
        # alias(), not annotate(): the document is for matching and ranking, never worth sending.
        queryset.alias(search_document=_StoredSearchDocument())
        .filter(search_document=search_query)
        .annotate(
            rank=SearchRank(F("search_document"), search_query),
            snippet=SearchHeadline(
                "body",
                search_query,
                config=POSTGRES_CONFIG,
                start_sel=MARK_START,
                stop_sel=MARK_END,
                max_words=SNIPPET_WORDS,
                min_words=SNIPPET_WORDS // 2,
                max_fragments=2,
                fragment_delimiter=f" {ELLIPSIS} ",
            ),
        )
    )

