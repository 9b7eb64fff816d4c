"""Sitemaps: every published article with its last change, and a Google News sitemap of recent ones.

Items are read at request time through ``Article.objects.published()``, so a scheduled article
enters both sitemaps when its time comes, with no job to run.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.sitemaps import Sitemap
from django.db.models import Max
from django.db.models.functions import Greatest
from django.utils import timezone

from .models import Article
from .views import SITE_NAME

#: Google News only wants articles published in the last two days, at most 1,000 of them.
NEWS_WINDOW = timedelta(days=2)
NEWS_LIMIT = 1000


class ArticleSitemap(Sitemap):
    """Every published article, split into pages of ``limit`` by the sitemap index."""

    limit = 5000

    def items(self):
        return (
            Article.objects.published()
            .annotate(last_changed=Greatest("updated_at", "published_at"))
            .only("slug", "updated_at", "published_at")
            .order_by("-published_at", "-id")
        )

    def lastmod(self, article):
        # A scheduled article is edited before it appears: it changed, for readers, when it did.
        return article.last_changed

    def get_latest_lastmod(self):
        # Django's default calls lastmod() on every item; one aggregate gives the same answer.
        published = Article.objects.published()
        return published.aggregate(latest=Max(Greatest("updated_at", "published_at")))["latest"]


class NewsSitemap(Sitemap):
    """The last two days' articles, rendered with the Google News tags by ``sitemaps/news.xml``."""

    publication_name = SITE_NAME

    def items(self):
        since = timezone.now() - NEWS_WINDOW
        return (
            Article.objects.published()
            .filter(published_at__gte=since)
            .only("slug", "title", "published_at")
            .newest_first()[:NEWS_LIMIT]
        )

    def get_urls(self, page=1, site=None, protocol=None):
        language = settings.LANGUAGE_CODE.split("-")[0]
        urls = super().get_urls(page=page, site=site, protocol=protocol)
        for url in urls:
            url.update(publication_name=self.publication_name, language=language)
        return urls


#: The sections of the sitemap index at /sitemap.xml.
SITEMAPS = {"articles": ArticleSitemap}
NEWS_SITEMAPS = {"news": NewsSitemap}
