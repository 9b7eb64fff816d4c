from django.urls import path, register_converter

from . import feeds, search_views, views
from .caching import public_page


class SlugConverter:
    """Exactly what ``SlugField(allow_unicode=True)`` accepts: letters, digits, ``_`` and ``-``.

    Anything else in a slug position (a NUL byte, which PostgreSQL refuses with an error, a dot,
    a space) is a 404 from the resolver instead of reaching the database.
    """

    regex = r"[-\w]+"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(SlugConverter, "uslug")

app_name = "articles"

#: Feed readers poll; five minutes of reuse costs a reader little and saves most renders.
cached_feed = public_page(max_age=300)

urlpatterns = [
    path("", public_page()(views.ArticleListView.as_view()), name="article_list"),
    path("articles/<uslug:slug>/", public_page()(views.ArticleDetailView.as_view()), name="article_detail"),
    path("sources/", public_page()(views.SourceListView.as_view()), name="source_list"),
    path("sources/<uslug:slug>/", public_page()(views.SourceDetailView.as_view()), name="source_detail"),
    path("sources/<uslug:slug>/feed/", cached_feed(feeds.SourceArticlesFeed()), name="source_feed_rss"),
    path("sources/<uslug:slug>/feed/atom/", cached_feed(feeds.SourceArticlesAtomFeed()), name="source_feed_atom"),
    path("search/", public_page()(search_views.SearchView.as_view()), name="search"),
    path("feed/", cached_feed(feeds.LatestArticlesFeed()), name="feed_rss"),
    path("feed/atom/", cached_feed(feeds.LatestArticlesAtomFeed()), name="feed_atom"),
    path("healthz", search_views.healthz, name="healthz"),
]
