"""RSS and Atom feeds: valid XML, only published articles, newest first, escaped, fixed query count."""

import xml.etree.ElementTree as ET
from datetime import timedelta

import factory
import pytest
from django.urls import reverse
from django.utils import timezone

from articles.models import Article
from tests.factories import ArticleFactory, SourceFactory

ATOM = "{http://www.w3.org/2005/Atom}"


def rss_items(response):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/rss+xml")
    return ET.fromstring(response.content).findall("./channel/item")


def atom_entries(response):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    return ET.fromstring(response.content).findall(f"{ATOM}entry")


@pytest.fixture
def mixed_articles(db):
    now = timezone.now()
    return {
        "older": ArticleFactory(title="Older", published_at=now - timedelta(days=2)),
        "newer": ArticleFactory(title="Newer", published_at=now - timedelta(hours=1)),
        "draft": ArticleFactory(title="Draft", status=Article.Status.DRAFT),
        "archived": ArticleFactory(title="Archived", status=Article.Status.ARCHIVED),
        "scheduled": ArticleFactory(title="Scheduled", published_at=now + timedelta(hours=3)),
    }


def test_rss_lists_published_articles_newest_first(client, mixed_articles):
    items = rss_items(client.get(reverse("articles:feed_rss")))
    assert [item.findtext("title") for item in items] == ["Newer", "Older"]
    newer = items[0]
    assert newer.findtext("link") == "http://testserver" + mixed_articles["newer"].get_absolute_url()
    assert newer.findtext("pubDate")
    assert newer.findtext("description") == mixed_articles["newer"].summary


def test_atom_has_published_and_updated_dates(client, mixed_articles):
    entries = atom_entries(client.get(reverse("articles:feed_atom")))
    assert [entry.findtext(f"{ATOM}title") for entry in entries] == ["Newer", "Older"]
    assert entries[0].findtext(f"{ATOM}published")
    assert entries[0].findtext(f"{ATOM}updated")
    assert entries[0].find(f"{ATOM}author/{ATOM}name").text == mixed_articles["newer"].source.name


def test_feed_sends_last_modified(client, mixed_articles):
    response = client.get(reverse("articles:feed_rss"))
    assert response.has_header("Last-Modified")


def test_scheduled_article_joins_the_feed_when_its_time_comes(client, mixed_articles):
    Article.objects.filter(pk=mixed_articles["scheduled"].pk).update(published_at=timezone.now() - timedelta(minutes=1))
    items = rss_items(client.get(reverse("articles:feed_rss")))
    assert [item.findtext("title") for item in items] == ["Scheduled", "Newer", "Older"]


@pytest.mark.django_db
def test_feed_holds_the_newest_fifty(client):
    ArticleFactory.create_batch(55)
    assert len(rss_items(client.get(reverse("articles:feed_rss")))) == 50


@pytest.mark.django_db
def test_imported_markup_is_text_in_rss_readers(client):
    """RSS readers render titles and descriptions as HTML: they arrive escaped once more than XML needs."""
    ArticleFactory(title="<script>alert(1)</script>", summary="<img src=x onerror=alert(1)>")
    response = client.get(reverse("articles:feed_rss"))
    (item,) = rss_items(response)
    assert item.findtext("title") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert item.findtext("description") == "&lt;img src=x onerror=alert(1)&gt;"
    assert b"<script>" not in response.content and b"<img" not in response.content


@pytest.mark.django_db
def test_imported_markup_is_text_in_atom_readers(client):
    """Atom titles are declared plain text; the summary is declared HTML, so it is escaped as for RSS."""
    ArticleFactory(title="<script>alert(1)</script>", summary="<img src=x onerror=alert(1)>")
    response = client.get(reverse("articles:feed_atom"))
    (entry,) = atom_entries(response)
    assert entry.find(f"{ATOM}title").get("type", "text") == "text"
    assert entry.findtext(f"{ATOM}title") == "<script>alert(1)</script>"
    summary = entry.find(f"{ATOM}summary")
    assert summary.get("type") == "html"
    assert summary.text == "&lt;img src=x onerror=alert(1)&gt;"
    assert b"<script>" not in response.content and b"<img" not in response.content


@pytest.mark.django_db
def test_source_feeds_hold_that_sources_articles(client):
    gazette = SourceFactory(name="Harbour Gazette")
    ArticleFactory(title="Published by it", source=gazette)
    ArticleFactory(title="Citing it", cited_source=gazette)
    ArticleFactory(title="Elsewhere")
    ArticleFactory(title="Its draft", source=gazette, status=Article.Status.DRAFT)
    rss = rss_items(client.get(reverse("articles:source_feed_rss", kwargs={"slug": gazette.slug})))
    atom = atom_entries(client.get(reverse("articles:source_feed_atom", kwargs={"slug": gazette.slug})))
    assert sorted(item.findtext("title") for item in rss) == ["Citing it", "Published by it"]
    assert sorted(entry.findtext(f"{ATOM}title") for entry in atom) == ["Citing it", "Published by it"]
    channel = ET.fromstring(client.get(reverse("articles:source_feed_rss", kwargs={"slug": gazette.slug})).content)
    assert "Harbour Gazette" in channel.findtext("./channel/title")


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["articles:source_feed_rss", "articles:source_feed_atom"])
def test_unknown_source_feed_is_404(client, url_name):
    assert client.get(reverse(url_name, kwargs={"slug": "no-such-source"})).status_code == 404


@pytest.mark.django_db
def test_empty_site_still_gives_a_valid_feed(client):
    assert rss_items(client.get(reverse("articles:feed_rss"))) == []
    assert atom_entries(client.get(reverse("articles:feed_atom"))) == []


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 200])
@pytest.mark.parametrize(
    ("url_name", "by_source"),
    [("articles:feed_rss", False), ("articles:feed_atom", False), ("articles:source_feed_rss", True)],
)
def test_feed_query_count_does_not_grow(client, django_assert_max_num_queries, count, url_name, by_source):
    source = SourceFactory(name="Harbour Gazette")
    outlets = SourceFactory.create_batch(3)
    ArticleFactory.create_batch(count, source=source, cited_source=factory.Iterator(outlets))
    url = reverse(url_name, kwargs={"slug": source.slug} if by_source else {})
    with django_assert_max_num_queries(3):
        response = client.get(url)
    assert response.status_code == 200
