"""Sitemaps and robots.txt: valid XML, every published article (and nothing else), absolute URLs."""

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from articles.models import Article
from articles.sitemaps import ArticleSitemap
from tests.factories import ArticleFactory

SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
NEWS = "{http://www.google.com/schemas/sitemap-news/0.9}"


def parse(response):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    return ET.fromstring(response.content)


def article_sitemap_urls(client):
    """Follow the index to its sitemaps and collect {loc: lastmod} from all of them."""
    index = parse(client.get(reverse("sitemap")))
    urls = {}
    for sitemap in index.findall(f"{SM}sitemap"):
        page = parse(client.get(sitemap.findtext(f"{SM}loc")))
        urls.update({url.findtext(f"{SM}loc"): url.findtext(f"{SM}lastmod") for url in page.findall(f"{SM}url")})
    return urls


@pytest.fixture
def mixed_articles(db):
    now = timezone.now()
    return {
        "today": ArticleFactory(title="Today", published_at=now - timedelta(hours=1)),
        "last_week": ArticleFactory(title="Last week", published_at=now - timedelta(days=7)),
        "draft": ArticleFactory(title="Draft", status=Article.Status.DRAFT),
        "archived": ArticleFactory(title="Archived", status=Article.Status.ARCHIVED),
        "scheduled": ArticleFactory(title="Scheduled", published_at=now + timedelta(hours=3)),
    }


def absolute(article):
    return "http://testserver" + article.get_absolute_url()


def test_sitemap_lists_every_published_article_with_lastmod(client, mixed_articles):
    urls = article_sitemap_urls(client)
    assert set(urls) == {absolute(mixed_articles["today"]), absolute(mixed_articles["last_week"])}
    today = mixed_articles["today"]
    assert urls[absolute(today)].startswith(max(today.updated_at, today.published_at).date().isoformat())


def test_index_lastmod_is_the_newest_change(client, mixed_articles):
    index = parse(client.get(reverse("sitemap")))
    (sitemap,) = index.findall(f"{SM}sitemap")
    assert sitemap.findtext(f"{SM}lastmod")


def test_scheduled_article_enters_the_sitemaps_when_its_time_comes(client, mixed_articles):
    scheduled = mixed_articles["scheduled"]
    Article.objects.filter(pk=scheduled.pk).update(published_at=timezone.now() - timedelta(minutes=1))
    assert absolute(scheduled) in article_sitemap_urls(client)
    news = parse(client.get(reverse("sitemap_news")))
    assert absolute(scheduled) in {url.findtext(f"{SM}loc") for url in news.findall(f"{SM}url")}


def test_scheduled_article_lastmod_is_its_publication(client, mixed_articles):
    """It was last saved before it appeared; for readers and crawlers it changed when it appeared."""
    scheduled = mixed_articles["scheduled"]
    moment = timezone.now() - timedelta(minutes=1)
    Article.objects.filter(pk=scheduled.pk).update(published_at=moment, updated_at=moment - timedelta(days=1))
    assert article_sitemap_urls(client)[absolute(scheduled)].startswith(moment.date().isoformat())


@pytest.mark.django_db
def test_large_sitemaps_are_split_into_pages(client, monkeypatch):
    monkeypatch.setattr(ArticleSitemap, "limit", 2)
    ArticleFactory.create_batch(5)
    index = parse(client.get(reverse("sitemap")))
    assert len(index.findall(f"{SM}sitemap")) == 3
    assert len(article_sitemap_urls(client)) == 5


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["abc", "0", "99"])
def test_bad_sitemap_page_is_404(client, page):
    ArticleFactory()
    url = reverse("sitemap_section", kwargs={"section": "articles"})
    assert client.get(url, {"p": page}).status_code == 404


@pytest.mark.django_db
def test_unknown_sitemap_section_is_404(client):
    assert client.get(reverse("sitemap_section", kwargs={"section": "nope"})).status_code == 404


def test_news_sitemap_has_the_last_two_days(client, mixed_articles):
    ArticleFactory(title="Three days ago", published_at=timezone.now() - timedelta(days=3))
    root = parse(client.get(reverse("sitemap_news")))
    (url,) = root.findall(f"{SM}url")
    today = mixed_articles["today"]
    assert url.findtext(f"{SM}loc") == absolute(today)
    news = url.find(f"{NEWS}news")
    assert news.findtext(f"{NEWS}publication/{NEWS}name") == "Newsroom"
    assert news.findtext(f"{NEWS}publication/{NEWS}language") == "en"
    assert news.findtext(f"{NEWS}title") == "Today"
    published = news.findtext(f"{NEWS}publication_date")
    assert timezone.datetime.fromisoformat(published) == today.published_at


@pytest.mark.django_db
def test_news_sitemap_escapes_titles(client):
    ArticleFactory(title="Rates & <b>bonds</b>")
    response = client.get(reverse("sitemap_news"))
    assert parse(response).find(f"{SM}url/{NEWS}news/{NEWS}title").text == "Rates & <b>bonds</b>"
    assert b"<b>" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 200])
@pytest.mark.parametrize("url_name", ["sitemap", "sitemap_news"])
def test_sitemap_query_count_does_not_grow(client, django_assert_max_num_queries, count, url_name):
    ArticleFactory.create_batch(count)
    with django_assert_max_num_queries(3):
        response = client.get(reverse(url_name))
    assert response.status_code == 200
    section = reverse("sitemap_section", kwargs={"section": "articles"})
    with django_assert_max_num_queries(3):
        assert client.get(section).status_code == 200


@pytest.mark.django_db
def test_robots_txt_points_to_both_sitemaps(client):
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    lines = response.content.decode().splitlines()
    assert "Sitemap: http://testserver/sitemap.xml" in lines
    assert "Sitemap: http://testserver/sitemap-news.xml" in lines
    assert "Disallow: /admin/" in lines
    assert "User-agent: *" in lines


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    ["/sitemap.xml", "/sitemap-articles.xml", "/sitemap-news.xml", "/robots.txt", "/feed/", "/feed/atom/",
     "/search/?q=harbour"],
)
def test_repeat_visit_is_304_until_content_changes(client, url):
    """Feeds, sitemaps, robots.txt and search share the public page cache's ETag and Cache-Control."""
    article = ArticleFactory(title="Harbour")
    first = client.get(url)
    assert first.status_code == 200
    assert "public" in first["Cache-Control"] and "max-age=" in first["Cache-Control"]
    assert client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    article.title = "Harbour reopened"
    article.save()
    assert client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


@pytest.mark.django_db
def test_empty_site_still_gives_valid_sitemaps(client):
    assert article_sitemap_urls(client) == {}
    assert parse(client.get(reverse("sitemap_news"))).findall(f"{SM}url") == []
