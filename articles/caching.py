"""The public page cache and conditional GET, correct across gunicorn workers and hosts.

Nothing is ever invalidated by message. Every anonymous GET/HEAD first reads, in one small query,
the *content state*: the ``ContentVersion`` counter (bumped in the same transaction as every
Article/Source save or delete, and by bulk writers themselves), the time it last changed, and the
publication time of the next scheduled article. That state, the release fingerprint and the full
URL make the cache key and the ETag. A change anywhere, by any process, gives the next request on
any worker a new key, so it renders afresh; entries under old keys simply expire.

Scheduled articles become public without any write, so the next scheduled publication time is part
of the state as well: once it has passed, the state (and so the key) changes by itself, and the
``max-age`` sent to browsers never reaches beyond it.

Order matters for correctness: the state is read *before* the view renders. A write that lands in
between can only make a newer page be stored under the older key, never an older page under the
newer one. (Bulk writers must therefore bump after, or in the same transaction as, their write.)

Apply it to public views only::

    path("", public_page()(views.ArticleListView.as_view()), name="article_list")
    path("feed/", public_page(max_age=300)(LatestArticlesFeed()), name="feed")

or ``@method_decorator(public_page(), name="dispatch")`` on a class-based view.

Authenticated users (staff previewing drafts) and other methods bypass the cache entirely and get
``Cache-Control: private``. Only 200 responses are stored. 404s are not cached: a missing page
costs one indexed lookup, and caching every URL a scanner invents would evict real pages.
"""

import hashlib
import logging
from contextvars import ContextVar
from datetime import datetime
from functools import cache, wraps
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache as page_cache
from django.db.models import Subquery
from django.http import HttpResponse, HttpResponseNotModified
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.http import http_date, parse_etags, parse_http_date_safe
from redis.exceptions import RedisError

from .models import Article, ContentVersion

logger = logging.getLogger(__name__)

#: Response header telling benchmarks and tests what the page cache did: ``hit``, ``miss``,
#: ``not-modified`` (304), ``off`` (NEWSROOM_PAGE_CACHE=0, or an unknown query parameter) or ``bypass`` (signed in, or not GET/HEAD).
CACHE_STATUS_HEADER = "X-Page-Cache"

#: Headers worth storing with a cached page (the rest are added again by middleware on the way out).
STORED_HEADERS = ("Content-Type", "Content-Language", "Last-Modified", "Link")


class ContentState(NamedTuple):
    """What the public may see, summed up in four values read in one query (:func:`content_state`)."""

    #: ``ContentVersion.counter``: advanced by every write.
    counter: int
    #: When that counter last moved.
    changed_at: datetime | None
    #: When the next scheduled article goes public (the cache must not outlive it).
    next_scheduled: datetime | None
    #: The latest publication time already reached.
    latest_publication: datetime | None


def content_state() -> ContentState:
    """The :class:`ContentState` now, in one query.

    Each element changes whenever what the public may see changes; see the module docstring. The
    latest publication time is when a scheduled article last went public without any write, so
    ``max(changed_at, latest_publication)`` is when the public content last changed.
    """
    now = timezone.now()
    next_scheduled = Article.objects.scheduled(now=now).order_by("published_at").values("published_at")[:1]
    latest = Article.objects.published(now=now).order_by("-published_at").values("published_at")[:1]
    row = (
        ContentVersion.objects.filter(pk=1)
        .annotate(next_scheduled=Subquery(next_scheduled), latest=Subquery(latest))
        .values_list("counter", "changed_at", "next_scheduled", "latest")
        .first()
    )
    if row is None:  # the row is made by migration 0002; a flushed test database lacks it
        return ContentState(0, None, next_scheduled.values_list("published_at", flat=True).first(), None)
    return ContentState(*row)


#: The content state public_page read for the request being served, so that data derived from the
#: content while rendering it (the filter form's source lists) is keyed on the same state for free.
_request_state: ContextVar[ContentState | None] = ContextVar("newsroom_content_state", default=None)


def cached_for_content(name: str, compute):
    """``compute()``, cached until public content changes (the same rule as the page cache).

    For data every page derives from the whole content, such as the lists of sources in the filter
    form, which would otherwise cost a query over all sources on every uncached render.
    """
    state = _request_state.get() or content_state()
    key = f"derived:{name}:{hashlib.sha256(repr(state).encode()).hexdigest()}"
    value = cache_get(key)
    if value is None:
        value = compute()
        cache_set(key, value)
    return value


def last_modified(state: ContentState):
    """When the public content last changed, for Last-Modified and If-Modified-Since."""
    moments = [moment for moment in (state.changed_at, state.latest_publication) if moment is not None]
    return max(moments) if moments else None


#: Query parameters the public pages understand (pagination, search, filters, sitemap pages). A
#: page with any other parameter is still served and validated, but not stored: otherwise
#: ``/?junk=<random>`` would fill the cache and evict the real pages.
CACHEABLE_PARAMETERS = frozenset(
    {"page", "p", "q", "source", "outlet", "published_after", "published_before"}
)


@cache
def release_fingerprint() -> str:
    """``NEWSROOM_RELEASE``, or a hash of the project's templates, static files and Python code.

    Computed once per process. Content hashing (not modification times) gives every host running
    the same code the same value, so they share cache entries and ETags. Static files count because
    their hashed names (``{% static %}`` with the manifest storage) appear in the HTML.
    """
    if settings.NEWSROOM_RELEASE:
        return settings.NEWSROOM_RELEASE
    base = Path(settings.BASE_DIR)
    roots = [Path(d) for engine in settings.TEMPLATES for d in engine.get("DIRS", [])]
    roots += [Path(d) for d in getattr(settings, "STATICFILES_DIRS", [])]
    roots += [base / "newsroom", base / "articles"]
    digest = hashlib.sha256()
    for path in sorted({p for root in roots for p in root.rglob("*") if p.is_file() and p.suffix != ".pyc"}):
        digest.update(str(path.relative_to(base) if path.is_relative_to(base) else path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def page_fingerprint(request, state: ContentState) -> str:
    """What the rendered page depends on: content state, code release, scheme, host, path and query."""
    parts = [
        release_fingerprint(),
        *(str(value) for value in state),
        request.scheme,
        request.get_host(),
        request.get_full_path(),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def seconds_until(moment) -> int | None:
    if moment is None:
        return None
    return max(0, int((moment - timezone.now()).total_seconds()))


def is_anonymous_read(request) -> bool:
    user = getattr(request, "user", None)
    return request.method in ("GET", "HEAD") and not (user is not None and user.is_authenticated)


def is_storable(request, response) -> bool:
    """Only a plain, complete 200 that is the same for every anonymous visitor may be shared."""
    cache_control = response.get("Cache-Control", "")
    return (
        response.status_code == 200
        and not response.streaming
        and not response.cookies
        and "private" not in cache_control
        and "no-store" not in cache_control
        and response.get("Vary", "") != "*"
        # A page that rendered {% csrf_token %} carries a per-visitor token.
        and not request.META.get("CSRF_COOKIE_NEEDS_UPDATE")
    )


def cache_get(key: str):
    """Read the page cache; a failing cache server costs a render, never the page."""
    try:
        return page_cache.get(key)
    except (RedisError, OSError):
        logger.warning("Page cache unavailable; rendering uncached", exc_info=True)
        return None


def cache_set(key: str, value) -> None:
    try:
        page_cache.set(key, value, timeout=settings.NEWSROOM_PAGE_CACHE_TIMEOUT)
    except (RedisError, OSError):
        logger.warning("Page cache unavailable; page not stored", exc_info=True)


def not_modified(request, etag: str, modified) -> bool:
    """RFC 9110 conditional GET: If-None-Match (weak comparison) wins; If-Modified-Since only without it.

    ``If-None-Match: *`` is not honoured: it means "any current representation", and answering it
    with 304 before the view has run would claim pages exist that do not.
    """
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match:
        client_etags = {tag.removeprefix("W/") for tag in parse_etags(if_none_match)}
        return etag.removeprefix("W/") in client_etags
    since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
    return since is not None and modified is not None and int(modified.timestamp()) <= since


def public_page(max_age: int | None = None):
    """Decorate a public view with the shared page cache, ETag/If-None-Match and Cache-Control.

    ``max_age`` (default ``settings.NEWSROOM_PAGE_MAX_AGE``) is how long browsers and proxies may
    reuse the page without asking; it is shortened to the next scheduled publication.
    ``NEWSROOM_PAGE_CACHE=0`` turns off the server-side store but keeps conditional GET.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not is_anonymous_read(request):
                response = view(request, *args, **kwargs)
                # no-cache: an editor's browser asks again every time, so their own edit shows at once.
                patch_cache_control(response, private=True, no_cache=True)
                response[CACHE_STATUS_HEADER] = "bypass"
                return response

            state = content_state()
            fingerprint = page_fingerprint(request, state)
            etag = f'W/"{fingerprint[:32]}"'
            lifetime = settings.NEWSROOM_PAGE_MAX_AGE if max_age is None else max_age
            until_next = seconds_until(state.next_scheduled)
            if until_next is not None:
                lifetime = min(lifetime, until_next)

            modified = last_modified(state)

            def finish(response, status):
                response["ETag"] = etag
                if modified is not None and not response.has_header("Last-Modified"):
                    response["Last-Modified"] = http_date(modified.timestamp())
                patch_cache_control(response, public=True, max_age=lifetime)
                response[CACHE_STATUS_HEADER] = status
                return response

            if not_modified(request, etag, modified):
                return finish(HttpResponseNotModified(), "not-modified")

            use_store = settings.NEWSROOM_PAGE_CACHE and set(request.GET) <= CACHEABLE_PARAMETERS
            key = f"page:{fingerprint}"
            if use_store and (stored := cache_get(key)) is not None:
                content, headers = stored
                response = HttpResponse(content)
                for name, value in headers.items():
                    response[name] = value
                return finish(response, "hit")

            token = _request_state.set(state)
            try:
                response = view(request, *args, **kwargs)
                if hasattr(response, "render"):
                    response = response.render()
            finally:
                _request_state.reset(token)
            if not is_storable(request, response):
                # Redirects, errors and per-visitor pages: no shared caching, no ETag.
                return response
            if not use_store:
                return finish(response, "off")
            headers = {name: response[name] for name in STORED_HEADERS if name in response}
            cache_set(key, (response.content, headers))
            return finish(response, "miss")

        return wrapper

    return decorator
