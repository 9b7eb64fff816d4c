from datetime import timedelta

import pytest
from django.utils import timezone

from articles.models import Article, ContentVersion
from tests.factories import ArticleFactory

pytestmark = pytest.mark.django_db


def test_published_excludes_drafts_archived_and_scheduled():
    now = timezone.now()
    visible = ArticleFactory(published_at=now - timedelta(minutes=1))
    ArticleFactory(status=Article.Status.DRAFT)
    ArticleFactory(status=Article.Status.ARCHIVED)
    scheduled = ArticleFactory(published_at=now + timedelta(hours=1))

    assert list(Article.objects.published()) == [visible]
    assert list(Article.objects.scheduled()) == [scheduled]
    # The scheduled article appears by itself once its time has come: no job flips a flag.
    assert set(Article.objects.published(now=now + timedelta(hours=2))) == {visible, scheduled}


def test_newest_first_breaks_ties_by_id():
    moment = timezone.now() - timedelta(hours=1)
    first, second, third = (ArticleFactory(published_at=moment) for _ in range(3))
    assert list(Article.objects.newest_first()) == [third, second, first]


def test_reading_time_and_word_count_are_derived_from_the_body():
    article = ArticleFactory.build(body=" ".join(["word"] * 461))
    assert article.word_count == 461
    assert article.reading_time_minutes == 3
    article.body = "short"
    assert article.reading_time_minutes == 1


def test_saving_and_deleting_bump_the_content_version():
    before = ContentVersion.current()
    article = ArticleFactory()
    after_create = ContentVersion.current()
    assert after_create > before
    article.delete()
    assert ContentVersion.current() > after_create


def test_sqlite_runs_in_wal_with_a_busy_timeout_and_large_pages():
    """WAL lets gunicorn read while an import writes; the timeout makes writers queue, not fail."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite settings")
    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
        assert cursor.execute("PRAGMA page_size").fetchone()[0] == 16384
