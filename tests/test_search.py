"""Full-text search: the index follows every write, ranking, safe snippets, and odd input.

Everything except the ``sqlite_only`` and ``postgresql_only`` tests runs on both databases through
``search_articles``, which is the point of the interface.
"""

from datetime import timedelta

import factory
import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from articles.models import Article
from articles.importing import import_seeds
from articles.search import (
    FTS_INSERT_TRIGGER,
    FTS_TABLE,
    MARK_END,
    MARK_START,
    MAX_TERMS,
    inserts_indexed_together,
    parse_query,
    search_articles,
)
from articles.templatetags.search_tags import highlight
from tests.factories import ArticleFactory, SourceFactory

sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="FTS5 index is SQLite's")
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")

SEARCH_URL = reverse("articles:search")


def titles(queryset):
    return [article.title for article in queryset]


# --- Query parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("", []),
        ("   ", []),
        ("Flood warning", [("Flood",), ("warning",)]),
        ('"court report" budget', [("court", "report"), ("budget",)]),
        ('"unbalanced', [("unbalanced",)]),  # an unclosed quote is ignored
        ('budget "two words', [("budget",), ("two",), ("words",)]),
        ("title:foo", [("title",), ("foo",)]),
        ("NEAR(a b)", [("NEAR",), ("a",), ("b",)]),
        ("* AND OR NOT ((", [("AND",), ("OR",), ("NOT",)]),
        ("-x", [("x",)]),
        ("🙂", []),
        ("Zürich café", [("Zürich",), ("café",)]),
    ],
)
def test_parse_query_keeps_only_words_and_phrases(query, terms):
    assert parse_query(query) == terms


def test_parse_query_caps_length_and_term_count():
    assert len(parse_query("word " * 1000)) == MAX_TERMS
    assert parse_query("a" * 5000) == [("a" * 200,)]


# --- The index follows every kind of write -------------------------------------------------------


@pytest.mark.django_db
def test_created_article_is_found():
    ArticleFactory(title="Harbour reopens", body="Boats are back.")
    assert titles(search_articles("harbour")) == ["Harbour reopens"]


@pytest.mark.django_db
def test_saved_edit_replaces_old_words():
    article = ArticleFactory(title="Harbour reopens", summary="", body="Ships.")
    article.title = "Airport reopens"
    article.save()
    assert titles(search_articles("harbour")) == []
    assert titles(search_articles("airport")) == ["Airport reopens"]


@pytest.mark.django_db
def test_queryset_update_and_bulk_create_are_indexed():
    """The importer writes with bulk_create and QuerySet.update, bypassing save(): triggers see them."""
    article = ArticleFactory(title="Old headline")
    Article.objects.filter(pk=article.pk).update(body="Glacier retreat measured")
    Article.objects.bulk_create(
        [Article(title="Glacier study", slug="glacier-study", body="Ice.", status="published")]
    )
    assert sorted(titles(search_articles("glacier"))) == ["Glacier study", "Old headline"]


@pytest.mark.django_db
def test_deleted_article_leaves_the_index():
    article = ArticleFactory(title="Harbour reopens", summary="", body="Ships.")
    article.delete()
    assert titles(search_articles("harbour")) == []
    ArticleFactory(title="Harbour closes")  # the index is still consistent after a delete
    assert titles(search_articles("harbour")) == ["Harbour closes"]


# --- What is found, and in what order ----------------------------------------------------------


@pytest.mark.django_db
def test_only_published_articles_whose_time_has_come():
    ArticleFactory(title="Visible comet")
    ArticleFactory(title="Draft comet", status=Article.Status.DRAFT)
    ArticleFactory(title="Archived comet", status=Article.Status.ARCHIVED)
    scheduled = ArticleFactory(title="Scheduled comet", published_at=timezone.now() + timedelta(hours=2))
    assert titles(search_articles("comet")) == ["Visible comet"]

    Article.objects.filter(pk=scheduled.pk).update(published_at=timezone.now() - timedelta(minutes=1))
    assert sorted(titles(search_articles("comet"))) == ["Scheduled comet", "Visible comet"]


@pytest.mark.django_db
def test_only_published_even_when_a_queryset_is_given():
    ArticleFactory(title="Draft comet", status=Article.Status.DRAFT)
    assert titles(search_articles("comet", Article.objects.all())) == []


@pytest.mark.django_db
def test_title_match_ranks_above_body_only_match():
    # The body-only match is newer and mentions the word more often: only the rank puts the title first.
    ArticleFactory(title="Council budget", body="Spending plans.", published_at=timezone.now() - timedelta(days=2))
    ArticleFactory(title="Weather", body="Rain. The budget, the budget.")
    results = list(search_articles("budget"))
    assert titles(results) == ["Council budget", "Weather"]
    assert results[0].rank > results[1].rank


@pytest.mark.django_db
def test_summary_match_ranks_above_body_only_match():
    ArticleFactory(title="Weather", summary="Plain summary.", body="The budget grows.")
    ArticleFactory(title="Council", summary="About the budget.", body="Nothing.",
                   published_at=timezone.now() - timedelta(days=2))
    assert titles(search_articles("budget")) == ["Council", "Weather"]


@pytest.mark.django_db
def test_all_words_must_match_and_phrases_keep_order():
    ArticleFactory(title="One", body="the court heard the report")
    ArticleFactory(title="Two", body="the report reached the court")
    ArticleFactory(title="Three", body="the court adjourned")
    assert sorted(titles(search_articles("court report"))) == ["One", "Two"]
    assert titles(search_articles('"court heard"')) == ["One"]


@pytest.mark.django_db
def test_stemming_finds_other_forms_of_a_word():
    ArticleFactory(title="Elections", body="Voters went to the polls.")
    assert titles(search_articles("election")) == ["Elections"]


@pytest.mark.django_db
def test_operators_in_user_input_are_plain_words():
    """``OR`` must not widen the search to articles that lack the other word."""
    ArticleFactory(title="Harbour", body="boats")
    ArticleFactory(title="Airport", body="planes")
    assert titles(search_articles("harbour OR airport")) == []


@pytest.mark.django_db
def test_snippet_marks_matches_with_sentinels():
    ArticleFactory(title="Weather", body="Heavy rain is expected tomorrow across the region.")
    (result,) = search_articles("rain")
    assert f"{MARK_START}rain{MARK_END}" in result.snippet


@pytest.mark.django_db
def test_snippet_opens_the_body_when_only_the_title_matches():
    ArticleFactory(title="Volcano erupts", summary="", body="Lava flowed down the slopes overnight.")
    (result,) = search_articles("volcano")
    assert result.snippet.startswith("Lava flowed down")


# --- The highlight filter ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snippet", "html"),
    [
        (None, ""),
        ("", ""),
        (f"a {MARK_START}b{MARK_END} c", "a <mark>b</mark> c"),
        (f"<script>x</script> {MARK_START}&{MARK_END}", "&lt;script&gt;x&lt;/script&gt; <mark>&amp;</mark>"),
        # Sentinels that arrived in the imported text itself never produce unbalanced tags.
        (f"{MARK_START}{MARK_START}a{MARK_END} b{MARK_END}", "<mark>a</mark> b"),
        (f"{MARK_END}a{MARK_START}", "a"),
    ],
)
def test_highlight_escapes_everything_but_the_marks(snippet, html):
    assert highlight(snippet) == html


# --- The page ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    ["", "   ", '"', '"unbalanced', "*", "AND", "OR OR", "NEAR(", "title:foo", "🙂", "a" * 5000, "-x", "((",
     "\x00", "\\", "'; DROP TABLE articles_article; --", "a*b^c~d", '"" ""'],
)
def test_odd_queries_never_fail(client, query):
    ArticleFactory(title="Title foo", body="Some near text and more.")
    response = client.get(SEARCH_URL, {"q": query})
    assert response.status_code == 200
    assert "<h1" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "   ", "🙂", "(("])
def test_query_without_words_shows_a_prompt_and_no_results(client, query):
    ArticleFactory(title="Anything")
    response = client.get(SEARCH_URL, {"q": query})
    assert response.status_code == 200
    assert "Type one or more words" in response.content.decode()
    assert list(response.context["page_obj"]) == []


@pytest.mark.django_db
def test_page_shows_ranked_results_with_highlighted_escaped_snippet(client):
    ArticleFactory(
        title="Budget <b>vote</b>",
        slug="budget-vote",
        body="Intro.\n\n<script>alert('x')</script> The budget passed {{ secret }}.",
    )
    response = client.get(SEARCH_URL, {"q": "budget"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "<script>" not in html and "<b>vote" not in html
    assert "Budget &lt;b&gt;vote&lt;/b&gt;" in html
    assert "alert(&#x27;x&#x27;)" in html
    if connection.vendor == "sqlite":  # PostgreSQL's ts_headline drops tags from the snippet
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<mark>budget</mark>" in html
    assert "{{ secret" in html  # shown as text, never evaluated
    assert reverse("articles:article_detail", kwargs={"slug": "budget-vote"}) in html
    assert "1 article found" in html


@pytest.mark.django_db
def test_no_match_says_so(client):
    ArticleFactory(title="Harbour")
    response = client.get(SEARCH_URL, {"q": "volcano"})
    assert response.status_code == 200
    assert "No articles match these words" in response.content.decode()


@pytest.mark.django_db
def test_results_are_paginated_by_twenty(client):
    ArticleFactory.create_batch(25, body="A storm is coming.")
    first = client.get(SEARCH_URL, {"q": "storm"})
    second = client.get(SEARCH_URL, {"q": "storm", "page": 2})
    assert len(first.context["page_obj"]) == 20
    assert len(second.context["page_obj"]) == 5
    assert {a.pk for a in first.context["page_obj"]}.isdisjoint({a.pk for a in second.context["page_obj"]})
    assert "page=2" in first.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["abc", "0", "3", "999999", "-1"])
def test_bad_page_numbers_are_404(client, page):
    ArticleFactory.create_batch(21, body="A storm is coming.")
    assert client.get(SEARCH_URL, {"q": "storm", "page": page}).status_code == 404


@pytest.mark.django_db
def test_filters_narrow_the_results(client):
    mine = SourceFactory(name="Harbour Gazette")
    ArticleFactory(title="Storm here", source=mine, body="storm")
    ArticleFactory(title="Storm elsewhere", body="storm")
    response = client.get(SEARCH_URL, {"q": "storm", "source": mine.slug})
    assert titles(response.context["page_obj"]) == ["Storm here"]


@pytest.mark.django_db
def test_bad_filter_is_reported_not_crashed(client):
    ArticleFactory(body="storm")
    response = client.get(SEARCH_URL, {"q": "storm", "published_after": "2024-13-45"})
    assert response.status_code == 400
    assert list(response.context["page_obj"]) == []


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 200])
def test_query_count_does_not_grow_with_articles(client, django_assert_max_num_queries, count):
    sources = SourceFactory.create_batch(3)
    ArticleFactory.create_batch(count, body="Flooding in the valley.", source=factory.Iterator(sources))
    with django_assert_max_num_queries(5):
        response = client.get(SEARCH_URL, {"q": "flooding"})
    assert response.status_code == 200
    assert len(response.context["page_obj"]) == min(count, 20)


# --- SQLite: the FTS5 table and its triggers ---------------------------------------------------


@sqlite_only
@pytest.mark.django_db
def test_fts_triggers_exist():
    """A later migration that alters articles_article rebuilds the table on SQLite and drops these:
    it must install them again (see migration 0003's docstring)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'articles_article'")
        names = {row[0] for row in cursor.fetchall()}
    assert {f"{FTS_TABLE}_ai", f"{FTS_TABLE}_ad", f"{FTS_TABLE}_au"} <= names


def assert_index_matches_the_articles():
    """FTS5's own check, comparing the index with the content table (rank 1); it raises on any
    article missing from the index, indexed twice, or indexed with stale text."""
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('integrity-check', 1)")
        cursor.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = %s", [FTS_INSERT_TRIGGER])
        assert cursor.fetchone() == (1,), "the insert trigger is missing"


@sqlite_only
@pytest.mark.django_db
def test_index_check_catches_an_article_the_index_missed():
    """The check above can fail: an article written while the trigger is gone is not in the index."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {FTS_INSERT_TRIGGER}")
    ArticleFactory()
    with pytest.raises(DatabaseError):
        assert_index_matches_the_articles()


@sqlite_only
@pytest.mark.django_db(transaction=True)
def test_bulk_import_indexes_every_article_and_puts_the_trigger_back(tmp_path):
    """The importer indexes each batch in one statement instead of through the per-row trigger."""
    for number in range(5):
        title = f"Harbour story {number}"
        seed = f"{title}\n\nOriginally published at: {title} | Gazette\n\nThe tide came in {number}.\n"
        (tmp_path / f"{number}.txt").write_text(seed)
    assert import_seeds([tmp_path], batch_size=2, dry_run=True).counts["created"] == 5
    assert_index_matches_the_articles()  # a dry run rolls the trigger's removal back with the rest
    assert not Article.objects.exists()
    summary = import_seeds([tmp_path], batch_size=2)
    assert summary.counts["created"] == 5
    assert_index_matches_the_articles()
    assert len(search_articles("tide")) == 5
    ArticleFactory(title="Harbour master retires")  # after the import, the trigger indexes as before
    assert_index_matches_the_articles()
    assert titles(search_articles("retires")) == ["Harbour master retires"]


@sqlite_only
@pytest.mark.django_db
def test_a_failed_bulk_insert_leaves_the_trigger_and_the_index_as_they_were():
    ArticleFactory(title="Kept story")
    with pytest.raises(RuntimeError, match="boom"), transaction.atomic():
        with inserts_indexed_together():
            ArticleFactory(title="Lost story")
            raise RuntimeError("boom")
    assert_index_matches_the_articles()
    assert titles(search_articles("story")) == ["Kept story"]


@sqlite_only
@pytest.mark.django_db
def test_bulk_indexing_names_a_missing_trigger():
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {FTS_INSERT_TRIGGER}")
    with pytest.raises(RuntimeError, match=f"{FTS_INSERT_TRIGGER} is missing.*0003_search"), transaction.atomic():
        with inserts_indexed_together():
            pass


@sqlite_only
@pytest.mark.django_db(transaction=True)
def test_bulk_indexing_refuses_to_run_outside_a_transaction():
    """Outside a transaction another connection could insert while the trigger is gone."""
    with pytest.raises(RuntimeError, match="inside transaction.atomic"):
        with inserts_indexed_together():
            pass
    assert_index_matches_the_articles()


@pytest.mark.django_db(transaction=True)
def test_migration_indexes_existing_rows_and_reverses():
    """Migrating back drops the index; migrating forward indexes the articles already there."""
    ArticleFactory(title="Lighthouse keeper")
    try:
        call_command("migrate", "articles", "0002", verbosity=0)
        Article.objects.update(title="Lighthouse restored")  # no index to follow this write
        call_command("migrate", "articles", verbosity=0)
        assert titles(search_articles("restored")) == ["Lighthouse restored"]
    finally:
        call_command("migrate", "articles", verbosity=0)


# --- PostgreSQL: the GIN index is the one the query uses ----------------------------------------


@postgresql_only
@pytest.mark.django_db
def test_postgresql_matches_through_the_gin_index():
    """Matching reads the stored, indexed document; a search never re-parses every article's text."""
    ArticleFactory.create_batch(2, body="Flooding in the valley.")
    ArticleFactory.create_batch(50, body="Other news.")
    sql = str(search_articles("flooding").query)
    assert 'search_document" @@' in sql and "to_tsvector" not in sql
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE articles_article")
        cursor.execute("SET LOCAL enable_seqscan = off")  # a small table is otherwise cheaper to scan
        cursor.execute(
            "EXPLAIN SELECT id FROM articles_article"
            " WHERE search_document @@ websearch_to_tsquery('english', 'flooding')"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "article_search_idx" in plan


@postgresql_only
@pytest.mark.django_db
def test_postgresql_uses_websearch_to_tsquery():
    assert "websearch_to_tsquery" in str(search_articles("budget").query)
