"""The real public site behind the page cache: every page is cached and validated, and every way
content changes (admin save, bulk action, delete, import, source edit, a scheduled time passing)
is visible on the very next anonymous request. The mechanism itself is tested in test_caching.py.
"""

from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from articles.models import Article
from tests.factories import ArticleFactory, SourceFactory
from tests.test_admin import form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def story(db):
    return ArticleFactory(title="Council approves the budget", source=SourceFactory(name="Wire Service"))


def public_urls(story):
    return [
        reverse("articles:article_list"),
        reverse("articles:article_list") + "?page=1",
        story.get_absolute_url(),
        reverse("articles:source_list"),
        story.source.get_absolute_url(),
        reverse("articles:search") + "?q=budget",
        reverse("articles:feed_rss"),
        reverse("articles:feed_atom"),
        reverse("articles:source_feed_rss", kwargs={"slug": story.source.slug}),
        "/sitemap.xml",
        "/robots.txt",
    ]


def test_every_public_page_is_cached_and_answers_conditional_get(client, story):
    for url in public_urls(story):
        first = client.get(url)
        assert first.status_code == 200, url
        assert first["X-Page-Cache"] == "miss", url
        assert first["Cache-Control"].startswith("public, max-age="), url
        second = client.get(url)
        assert second["X-Page-Cache"] == "hit", url
        assert second.content == first.content, url
        assert second["Content-Type"] == first["Content-Type"], url
        assert client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304, url


def test_a_cache_hit_costs_one_query_on_any_page(client, story, django_assert_num_queries):
    for url in public_urls(story):
        client.get(url)
        with django_assert_num_queries(1):
            client.get(url)


def shows(client, url: str, text: str) -> bool:
    response = client.get(url)
    return response.status_code == 200 and text in response.content.decode()


def warm(client, story):
    """Cache the home page and the article page, and make sure they are served from the cache."""
    for url in (reverse("articles:article_list"), story.get_absolute_url()):
        client.get(url)
        assert client.get(url)["X-Page-Cache"] == "hit"


def test_admin_save_is_visible_on_the_next_request(client, admin_client, story):
    warm(client, story)
    url = reverse("admin:articles_article_change", args=[story.pk])
    response = admin_client.post(url, form_data(story, title="Council rejects the budget"))
    assert response.status_code == 302
    assert shows(client, story.get_absolute_url(), "Council rejects the budget")
    assert shows(client, reverse("articles:article_list"), "Council rejects the budget")


def test_admin_bulk_unpublish_is_visible_on_the_next_request(client, admin_client, story):
    warm(client, story)
    changelist = reverse("admin:articles_article_changelist")
    admin_client.post(changelist, {"action": "unpublish", "_selected_action": [story.pk]})
    assert Article.objects.get(pk=story.pk).status == Article.Status.DRAFT
    assert client.get(story.get_absolute_url()).status_code == 404
    assert not shows(client, reverse("articles:article_list"), story.title)


def test_admin_delete_is_visible_on_the_next_request(client, admin_client, story):
    warm(client, story)
    admin_client.post(reverse("admin:articles_article_delete", args=[story.pk]), {"post": "yes"})
    assert not Article.objects.filter(pk=story.pk).exists()
    assert client.get(story.get_absolute_url()).status_code == 404
    assert not shows(client, reverse("articles:article_list"), story.title)


def test_source_rename_in_the_admin_is_visible_on_article_pages(client, admin_client, story):
    warm(client, story)
    source = story.source
    admin_client.post(
        reverse("admin:articles_source_change", args=[source.pk]),
        {"name": "Renamed Wire", "slug": source.slug, "homepage_url": "", "description": ""},
    )
    assert shows(client, story.get_absolute_url(), "Renamed Wire")


def test_import_is_visible_on_the_next_request(client, story, tmp_path):
    warm(client, story)
    (tmp_path / "harbour.txt").write_text(
        "Harbour reopens after the storm\n\n"
        "Originally published at: Harbour reopens after the storm | Coast Daily\n\n"
        "The harbour reopened on Monday.\n"
    )
    call_command("import_seeds", str(tmp_path), stdout=StringIO(), stderr=StringIO())
    assert shows(client, reverse("articles:article_list"), "Harbour reopens after the storm")


def test_scheduled_article_appears_on_the_home_page_at_its_time(client, story):
    now = timezone.now()
    ArticleFactory(title="Embargoed results", published_at=now + timedelta(minutes=5))
    home = reverse("articles:article_list")
    assert not shows(client, home, "Embargoed results")
    assert client.get(home)["X-Page-Cache"] == "hit"
    with mock.patch("django.utils.timezone.now", return_value=now + timedelta(minutes=5, seconds=1)):
        assert shows(client, home, "Embargoed results")


def test_a_staff_preview_never_reaches_anonymous_visitors(client, admin_client, story):
    draft = ArticleFactory(title="Unfinished draft", status=Article.Status.DRAFT)
    preview = admin_client.get(draft.get_absolute_url())
    assert preview.status_code == 200
    assert "private" in preview["Cache-Control"]
    assert client.get(draft.get_absolute_url()).status_code == 404
