"""RSS and Atom feeds of the newest published articles, for the whole site and per source.

One base class holds what every feed shares; the Atom and per-source feeds override only what
differs. ``item_pubdate``/``item_updateddate`` make Django send ``Last-Modified``.
"""

from django.contrib.syndication.views import Feed
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.html import escape
from django.utils.translation import gettext_lazy as _

from .models import Article, Source
from .views import SITE_NAME


class LatestArticlesFeed(Feed):
    """RSS of the newest published articles; scheduled ones join when their time comes."""

    limit = 50
    title = SITE_NAME
    # Atom requires an author for entries without one (articles with no known source).
    author_name = SITE_NAME
    description = _("The latest articles on Newsroom.")

    def link(self):
        return reverse("articles:article_list")

    def items(self):
        return self.newest(Article.objects.published())

    def newest(self, articles):
        """The newest ``limit`` of ``articles``, with what an item shows, in one query."""
        return articles.with_sources().defer("body", "imported_fields").newest_first()[: self.limit]

    # RSS readers treat titles and descriptions as HTML: escaping imported text here (the XML
    # writer escapes once more) makes a reader show ``<script>`` as text rather than run it.
    def item_title(self, item):
        return escape(item.title)

    def item_description(self, item):
        return escape(item.summary)

    def item_pubdate(self, item):
        return item.published_at

    def item_updateddate(self, item):
        return max(item.updated_at, item.published_at)

    def item_author_name(self, item):
        return item.source.name if item.source else None


class AtomMixin:
    """Atom declares its titles plain text (``type="text"``), so they need XML escaping only."""

    feed_type = Atom1Feed

    def item_title(self, item):
        return item.title


class LatestArticlesAtomFeed(AtomMixin, LatestArticlesFeed):
    subtitle = LatestArticlesFeed.description


class SourceArticlesFeed(LatestArticlesFeed):
    """RSS of one source's newest articles: those it published and those citing it, as on its page."""

    def get_object(self, request, slug):
        return get_object_or_404(Source, slug=slug)

    def title(self, source):
        return f"{SITE_NAME}: {source.name}"

    def description(self, source):
        return _("The latest articles from %(source)s on Newsroom.") % {"source": source.name}

    def link(self, source):
        return source.get_absolute_url()

    def items(self, source):
        # The feed instance is shared by every request (it lives in the URLconf): no state on self.
        return self.newest(Article.objects.published().filter(Q(source=source) | Q(cited_source=source)))


class SourceArticlesAtomFeed(AtomMixin, SourceArticlesFeed):

    def subtitle(self, source):
        return self.description(source)
