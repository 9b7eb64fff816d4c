"""Project-wide middleware: security headers on every response, and a 503 page during a database outage."""

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpResponse
from django.template import loader

logger = logging.getLogger(__name__)

#: Seconds a client (or a load balancer) is asked to wait before retrying during a database outage.
RETRY_AFTER_SECONDS = 5


def build_csp(policy: dict[str, list[str]]) -> str:
    """``{"script-src": ["'self'"], "upgrade-insecure-requests": []}`` → the header value."""
    return "; ".join(" ".join([directive, *sources]) for directive, sources in policy.items())


class SecurityHeadersMiddleware:
    """Add the headers Django 5.2 does not set itself: Content-Security-Policy and Permissions-Policy.

    X-Content-Type-Options and Referrer-Policy come from ``SecurityMiddleware``, X-Frame-Options
    from ``XFrameOptionsMiddleware`` (settings.SECURE_CONTENT_TYPE_NOSNIFF, SECURE_REFERRER_POLICY,
    X_FRAME_OPTIONS). This middleware sits outside WhiteNoise so static files carry the policy too.
    A view that needs a different policy sets the header itself; it is never overwritten.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.csp = build_csp(settings.NEWSROOM_CONTENT_SECURITY_POLICY)

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.csp)
        # The site uses none of these powerful features; deny them to anything embedded or injected.
        response.headers.setdefault("Permissions-Policy", "camera=(), geolocation=(), microphone=(), payment=()")
        return response


class DatabaseUnavailableMiddleware:
    """Answer ``503 Service Unavailable`` with a static page when the database cannot be reached.

    Without this, a stopped PostgreSQL (or a locked-out SQLite file) turns every request into a 500
    and a logged traceback. ``OperationalError``/``InterfaceError`` from a view or its template
    rendering means "the database is not there right now", so the visitor gets ``templates/503.html``
    (a standalone template: rendering it touches no database and no context processor) and a
    ``Retry-After`` header.

    Recovery needs no restart: a connection that failed is closed here, before the next request on
    this worker can pick it up, and CONN_HEALTH_CHECKS re-checks reused connections; the next
    request simply opens a fresh connection once the database is back.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.error("Database unavailable while serving %s: %s", request.path, exception)
        discard_broken_connections()
        response = HttpResponse(loader.render_to_string("503.html"), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response["Cache-Control"] = "no-store"
        return response


def discard_broken_connections() -> None:
    """Close every connection of this thread that an error has left unusable.

    Django does the same at the end of the request (``close_old_connections`` on request_finished);
    doing it at once also covers a later query in this very request (a middleware's
    ``process_response``, for instance), which then opens a fresh connection instead of failing on
    the dead one. A connection inside a transaction is left alone: ``atomic`` owns it.
    """
    for connection in connections.all(initialized_only=True):
        if connection.connection is None or connection.in_atomic_block or not connection.errors_occurred:
            continue
        if connection.is_usable():
            continue  # a query failed on a live connection (a lock timeout, say): keep it
        try:
            connection.close()
        except (OperationalError, InterfaceError):
            # Closing a socket to a vanished server can fail too; close() has dropped it regardless.
            logger.debug("Closing the broken connection %r failed", connection.alias, exc_info=True)
