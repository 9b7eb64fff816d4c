"""The importer's bulk writes stay equivalent to the ORM: same row, same history, same search, same
cache invalidation. A new model field, ``post_save`` receiver or django-simple-history upgrade that
``articles.bulk_writes`` misses turns these red."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from articles import bulk_writes
from articles.importing import IMPORTER_USERNAME, importer_user
from articles.models import Article, ContentVersion, Source
from articles.search import search_articles

from .test_importing import run, seed_text, write

pytestmark = pytest.mark.django_db

#: Columns that differ between any two articles by nature: their identity and when they were saved.
IDENTITY_COLUMNS = {"id", "slug", "seed_identity", "created_at", "updated_at"}


@pytest.fixture
def imported_and_saved(tmp_path):
    """The same story twice: once imported, once created through the ORM with the values the import chose."""
    write(tmp_path, "lighthouse.txt", seed_text(title="Lighthouse keeper retires", publisher="Coast Herald"))
    before = ContentVersion.current()
    run(tmp_path)
    imported = Article.objects.get()
    assert ContentVersion.current() > before
    decided = {
        f.attname: getattr(imported, f.attname)
        for f in Article._meta.concrete_fields
        if f.attname in {"title", "summary", "body", "source_id", "cited_source_id", "status", "published_at",
                         "seed_sha256", "imported_at", "imported_fields"}
    }
    before = ContentVersion.current()
    saved = Article(slug="lighthouse-orm", seed_identity="lighthouse-orm", **decided)
    saved.save()
    saved.history.filter().update(history_user=importer_user(), history_change_reason="Created by seed import")
    assert ContentVersion.current() > before  # the post_save receiver; the importer's bump did the same
    return imported, saved


def row(article: Article) -> dict:
    return Article.objects.filter(pk=article.pk).values().get()


def test_an_imported_row_equals_an_orm_created_one_column_by_column(imported_and_saved):
    imported, saved = (row(a) for a in imported_and_saved)
    assert set(imported) == {f.attname for f in Article._meta.concrete_fields}
    differing = {column for column in imported if imported[column] != saved[column]}
    assert differing <= IDENTITY_COLUMNS, {c: (imported[c], saved[c]) for c in differing - IDENTITY_COLUMNS}


def test_an_imported_revision_equals_an_orm_one(imported_and_saved):
    imported, saved = (Article.history.filter(id=a.pk).values().get() for a in imported_and_saved)
    assert set(imported) == set(saved)
    differing = {column for column in imported if imported[column] != saved[column]}
    assert differing <= IDENTITY_COLUMNS | {"history_id", "history_date"}
    assert imported["history_type"] == "+" and imported["history_change_reason"] == "Created by seed import"
    assert get_user_model().objects.get(pk=imported["history_user_id"]).username == IMPORTER_USERNAME


def test_an_imported_article_is_found_like_an_orm_one(imported_and_saved):
    imported, saved = imported_and_saved
    pair = {imported.pk, saved.pk}
    for query in ("lighthouse", "keeper retires", "Coast Herald", "first paragraph"):
        assert set(search_articles(query).values_list("pk", flat=True)) & pair in (set(), pair), query
    assert set(search_articles("lighthouse").values_list("pk", flat=True)) == {imported.pk, saved.pk}


def test_article_rows_take_the_models_defaults_and_auto_now():
    now = timezone.now()
    [new] = bulk_writes.article_rows(
        [{"title": "T", "slug": "t", "body": "B", "published_at": now - timedelta(days=1), "created_at": "ignored"}],
        now=now,
    )
    defaults = Article()
    for name in ("status", "version", "summary", "seed_sha256", "edited_since_import", "announced_version", "source_id"):
        assert new[name] == getattr(defaults, name), name
    assert new["created_at"] == new["updated_at"] == now  # auto_now_add / auto_now win, as in save()


def test_article_rows_refuse_an_unknown_column():
    with pytest.raises(ValueError, match=r"unknown columns \['colour'\]"):
        bulk_writes.article_rows([{"title": "T", "slug": "t", "body": "B", "colour": "red"}], now=timezone.now())


def test_create_articles_writes_rows_history_and_index_in_one_go():
    now = timezone.now()
    source = Source.objects.create(name="Valley Post", slug="valley-post")
    rows = bulk_writes.article_rows(
        [
            {"title": f"Orchard report {n}", "slug": f"orchard-{n}", "body": "Apples.", "source_id": source.pk,
             "seed_identity": f"orchard-{n}", "status": Article.Status.PUBLISHED}
            for n in range(3)
        ],
        now=now,
    )
    with transaction.atomic():
        bulk_writes.create_articles(rows, user=importer_user(), reason="test")
    assert Article.objects.count() == 3 and Article.history.filter(history_type="+").count() == 3
    assert search_articles("orchard").count() == 3
