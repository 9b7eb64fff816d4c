from django.contrib import admin
from django.contrib.sitemaps import views as sitemap_views
from django.urls import include, path

from articles.caching import public_page
from articles.search_views import RobotsTxtView
from articles.sitemaps import NEWS_SITEMAPS, SITEMAPS

#: Crawlers fetch these rarely; ten minutes of reuse (less before a scheduled publication) is plenty.
SITEMAP_MAX_AGE = 600

urlpatterns = [
    path("admin/", admin.site.urls),
    path("robots.txt", public_page(max_age=SITEMAP_MAX_AGE)(RobotsTxtView.as_view()), name="robots_txt"),
    path(
        "sitemap.xml",
        public_page(max_age=SITEMAP_MAX_AGE)(sitemap_views.index),
        {"sitemaps": SITEMAPS, "sitemap_url_name": "sitemap_section"},
        name="sitemap",
    ),
    # Before the section pattern below, which would otherwise take "news" as a section name.
    path(
        "sitemap-news.xml",
        public_page(max_age=SITEMAP_MAX_AGE)(sitemap_views.sitemap),
        {"sitemaps": NEWS_SITEMAPS, "template_name": "sitemaps/news.xml"},
        name="sitemap_news",
    ),
    path(
        "sitemap-<section>.xml",
        public_page(max_age=SITEMAP_MAX_AGE)(sitemap_views.sitemap),
        {"sitemaps": SITEMAPS},
        name="sitemap_section",
    ),
    path("", include("articles.urls")),
]
