"""The editorial write services: bulk status changes, conflict-checked edits and address changes."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from articles import publishing
from articles.models import Article, ContentVersion, SlugRedirect
from tests.factories import ArticleFactory

User = get_user_model()


@pytest.fixture
def user(db):
    return User.objects.create_user("eve", password="unused-password", is_staff=True)


@pytest.fixture
def other(db):
    return User.objects.create_user("otto", password="unused-password", is_staff=True)


def save_as(article, user, **changes):
    """Save ``article`` the way an editor's save would: new version, revision attributed to ``user``."""
    for name, value in changes.items():
        setattr(article, name, value)
    article.version += 1
    article._history_user = user
    article.save()


# --- Bulk status changes ----------------------------------------------------------------------------


def test_set_status_changes_only_what_differs_and_records_each_change(user):
    drafts = ArticleFactory.create_batch(2, status=Article.Status.DRAFT)
    published = ArticleFactory(status=Article.Status.PUBLISHED)
    before = ContentVersion.current()

    result = publishing.publish(Article.objects.all(), user=user)

    assert {a.pk for a in result.changed} == {a.pk for a in drafts}
    assert result.unchanged == 1 and result.status == Article.Status.PUBLISHED
    assert ContentVersion.current() == before + 1
    for article in drafts:
        article.refresh_from_db()
        assert (article.status, article.version) == (Article.Status.PUBLISHED, 2)
        revision = article.history.first()
        assert revision.history_user == user and revision.version == 2
        assert revision.history_change_reason == "Status set to Published (bulk action)"
    published.refresh_from_db()
    assert published.version == 1 and published.history.count() == 1
    assert LogEntry.objects.filter(user=user).count() == 2


def test_a_status_change_with_nothing_to_change_writes_nothing(user):
    ArticleFactory(status=Article.Status.ARCHIVED)
    before = ContentVersion.current()
    result = publishing.archive(Article.objects.all(), user=user)
    assert (result.changed, result.unchanged) == ((), 1)
    assert ContentVersion.current() == before
    assert not LogEntry.objects.exists()


def test_unpublish_turns_articles_back_into_drafts(user, article):
    publishing.unpublish(Article.objects.filter(pk=article.pk), user=user)
    article.refresh_from_db()
    assert article.status == Article.Status.DRAFT
    assert not Article.objects.published().exists()


def test_set_status_keeps_the_publication_time(user):
    """Publishing a draft dated tomorrow schedules it rather than showing it now."""
    draft = ArticleFactory(status=Article.Status.DRAFT)
    draft.published_at = timezone.now() + timedelta(days=2)
    draft.save()
    publishing.publish(Article.objects.filter(pk=draft.pk), user=user)
    draft.refresh_from_db()
    assert draft.is_scheduled and not Article.objects.published().exists()


@pytest.mark.parametrize("status", ["deleted", "", "PUBLISHED"])
def test_set_status_refuses_an_unknown_status(user, article, status):
    with pytest.raises(ValueError, match="unknown article status"):
        publishing.set_status(Article.objects.all(), status, user=user)
    article.refresh_from_db()
    assert article.status == Article.Status.PUBLISHED


# --- Conflict-checked edits -------------------------------------------------------------------------


def test_lock_for_edit_returns_the_article_when_nobody_saved_since(article):
    with transaction.atomic():
        assert publishing.lock_for_edit(article.pk, 1) == article


def test_lock_for_edit_names_who_changed_which_fields(article, other):
    save_as(article, other, title="Otto's title", summary="Otto's dek")
    with transaction.atomic(), pytest.raises(publishing.StaleEditError) as caught:
        publishing.lock_for_edit(article.pk, 1)
    conflict = caught.value.conflict
    assert conflict.changed_by == "otto" and conflict.current_version == 2
    assert [(c.name, c.label, c.value) for c in conflict.changes] == [
        ("title", "Title", "Otto's title"),
        ("summary", "Summary", "Otto's dek"),
    ]


def test_a_conflict_without_the_opened_revision_still_says_who_and_when(article, other):
    save_as(article, other, title="Newer")
    article.history.filter(version=1).delete()
    with transaction.atomic(), pytest.raises(publishing.StaleEditError) as caught:
        publishing.lock_for_edit(article.pk, 1)
    assert caught.value.conflict.changed_by == "otto" and caught.value.conflict.changes == ()


def test_save_edit_increments_the_version_and_keeps_provenance_from_the_database(user):
    article = ArticleFactory(seed_identity="seed-7", seed_sha256="f" * 64, imported_fields={"title": "T"})
    with transaction.atomic():
        locked = publishing.lock_for_edit(article.pk, 1)
        stale_copy = Article.objects.get(pk=article.pk)
        stale_copy.title, stale_copy.seed_sha256, stale_copy.imported_fields = "Edited", "0" * 64, None
        publishing.save_edit(stale_copy, locked=locked, fields=["title"])
    article.refresh_from_db()
    assert (article.title, article.version, article.edited_since_import) == ("Edited", 2, True)
    assert (article.seed_sha256, article.imported_fields) == ("f" * 64, {"title": "T"})
    assert article.history.first().seed_sha256 == "f" * 64


def test_save_edit_of_a_published_slug_records_the_old_address(article):
    old = article.slug
    with transaction.atomic():
        locked = publishing.lock_for_edit(article.pk, 1)
        article.slug = "moved"
        publishing.save_edit(article, locked=locked, fields=["slug"])
    assert SlugRedirect.objects.get(old_slug=old).article == article


# --- Address changes --------------------------------------------------------------------------------


def test_change_slug_keeps_every_old_address_and_going_back_drops_its_redirect(article):
    first = article.slug
    publishing.change_slug(article, "second")
    publishing.change_slug(article, "third")
    assert dict(SlugRedirect.objects.values_list("old_slug", "article")) == {first: article.pk, "second": article.pk}
    publishing.change_slug(article, first)
    article.refresh_from_db()
    assert (article.slug, article.version) == (first, 4)
    assert set(SlugRedirect.objects.values_list("old_slug", flat=True)) == {"second", "third"}


def test_change_slug_of_a_draft_records_no_redirect(db):
    draft = ArticleFactory(status=Article.Status.DRAFT)
    publishing.change_slug(draft, "never-public")
    assert not SlugRedirect.objects.exists()


@pytest.mark.parametrize("bad_slug", ["has spaces", "", "taken", "old-of-other"])
def test_change_slug_refuses_a_bad_or_taken_slug(article, bad_slug):
    ArticleFactory(slug="taken")
    other = ArticleFactory()
    SlugRedirect.objects.create(old_slug="old-of-other", article=other)
    slug = article.slug
    with pytest.raises(ValidationError) as caught:
        publishing.change_slug(article, bad_slug)
    assert "slug" in caught.value.message_dict
    article.refresh_from_db()
    assert article.slug == slug and not SlugRedirect.objects.filter(article=article).exists()
