"""A tiny public site behind ``public_page``, for tests/test_caching.py.

It tests the caching mechanism on its own, independent of the real views, and is also served by
gunicorn in the two-process test (through tests/page_cache_settings.py). Each view counts its
calls so a test can tell a cache hit (view not called) from a render.
"""

from collections import Counter

from django.http import HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import include, path
from django.views import View

from articles.caching import public_page
from articles.models import Article

calls = Counter()


def titles(request):
    calls["titles"] += 1
    listing = Article.objects.published().newest_first().values_list("title", flat=True)
    return HttpResponse("\n".join(listing), content_type="text/plain; charset=utf-8")


def detail(request, slug):
    calls["detail"] += 1
    article = get_object_or_404(Article.objects.published().with_sources(), slug=slug)
    source = article.source.name if article.source else ""
    return HttpResponse(f"{article.title}\n{source}", content_type="text/plain; charset=utf-8")


def with_csrf_token(request):
    calls["csrf"] += 1
    return HttpResponse(f"<form><input name=csrfmiddlewaretoken value={get_token(request)}></form>")


def redirect(request):
    calls["redirect"] += 1
    return HttpResponseRedirect("/titles/")


COUNT_TEMPLATE = engines["django"].from_string("{{ count }} published")


def template_page(request):
    """A lazily rendered TemplateResponse, like every generic view returns."""
    calls["template"] += 1
    return TemplateResponse(request, COUNT_TEMPLATE, {"count": Article.objects.published().count()})


class CountView(View):
    """A class-based view, decorated the way a urls.py decorates ``as_view()``."""

    def get(self, request):
        calls["class"] += 1
        return TemplateResponse(request, COUNT_TEMPLATE, {"count": Article.objects.published().count()})


urlpatterns = [
    path("titles/", public_page()(titles)),
    path("short/", public_page(max_age=5)(titles)),
    path("articles/<str:slug>/", public_page()(detail)),
    path("csrf/", public_page()(with_csrf_token)),
    path("redirect/", public_page()(redirect)),
    path("template/", public_page()(template_page)),
    path("class/", public_page()(CountView.as_view())),
    # The real site after the test views, so shared templates (base.html, 404.html) can reverse its URLs.
    path("", include("articles.urls")),
]
