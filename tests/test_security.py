"""Security headers, Content-Security-Policy compatibility, the 503 outage page and login throttling."""

import re
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.db import OperationalError, connection
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse

from newsroom.middleware import build_csp, discard_broken_connections
from tests.factories import ArticleFactory, SourceFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def csp_directives(response) -> dict[str, list[str]]:
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


@pytest.fixture
def published(db):
    source = SourceFactory(name="Wire Service")
    return ArticleFactory(title="Council approves the budget", source=source)


@pytest.fixture
def public_urls(published):
    return [
        reverse("articles:article_list"),
        published.get_absolute_url(),
        published.source.get_absolute_url(),
        reverse("articles:source_list"),
        reverse("articles:search") + "?q=budget",
        reverse("articles:feed_rss"),
        "/no-such-page/",
        reverse("admin:login"),
    ]


# --- Headers on every response --------------------------------------------------------------


def test_security_headers_on_every_kind_of_response(client, public_urls):
    for url in public_urls:
        response = client.get(url)
        assert response.status_code in (200, 404), url
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["Referrer-Policy"] == "strict-origin-when-cross-origin", url
        assert response["X-Frame-Options"] == "DENY", url
        assert "Permissions-Policy" in response, url
        directives = csp_directives(response)
        assert directives["script-src"] == ["'self'"], url
        assert directives["style-src"] == ["'self'"], url
        assert directives["frame-ancestors"] == ["'none'"], url
        assert directives["object-src"] == ["'none'"], url
        assert directives["base-uri"] == ["'none'"], url


def test_static_files_carry_the_headers_too(settings):
    """WhiteNoise answers static files before most middleware; the headers must still be there."""
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    response = Client().get("/static/css/site.css")
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_policy_never_allows_inline_or_eval():
    policy = build_csp(settings.NEWSROOM_CONTENT_SECURITY_POLICY)
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "*" not in policy


def test_build_csp_formats_valueless_directives():
    assert build_csp({"default-src": ["'self'", "data:"], "upgrade-insecure-requests": []}) == (
        "default-src 'self' data:; upgrade-insecure-requests"
    )


def test_a_view_may_send_its_own_policy(rf):
    from django.http import HttpResponse

    from newsroom.middleware import SecurityHeadersMiddleware

    def view(request):
        response = HttpResponse()
        response["Content-Security-Policy"] = "default-src 'none'"
        return response

    assert SecurityHeadersMiddleware(view)(rf.get("/"))["Content-Security-Policy"] == "default-src 'none'"


# --- What the pages need from the policy ----------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)([^>]*)>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def inline_code(html: str) -> list[str]:
    """Everything in a page that ``script-src 'self'; style-src 'self'`` would block.

    A ``<script type="application/ld+json">`` is a data block: browsers never execute it, so CSP
    does not apply to it (the article page's JSON-LD needs no exception).
    """
    problems = [
        match.group(0) for match in INLINE_SCRIPT.finditer(html) if "application/ld+json" not in match.group(1)
    ]
    for pattern in (INLINE_STYLE, EVENT_HANDLER, JAVASCRIPT_URL):
        problems += [match.group(0) for match in pattern.finditer(html)]
    return problems


def test_public_pages_contain_nothing_the_policy_blocks(client, public_urls):
    for url in public_urls:
        html = client.get(url).content.decode()
        assert inline_code(html) == [], url


def test_article_page_json_ld_is_a_data_block(client, published):
    html = client.get(published.get_absolute_url()).content.decode()
    assert '<script type="application/ld+json">' in html


def test_admin_pages_contain_nothing_the_policy_blocks(admin_client, published):
    urls = [
        reverse("admin:index"),
        reverse("admin:articles_article_changelist"),
        reverse("admin:articles_article_change", args=[published.pk]),
        reverse("admin:articles_article_add"),
        reverse("admin:articles_source_changelist"),
    ]
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert inline_code(response.content.decode()) == [], url


@pytest.mark.parametrize(
    "html",
    [
        "<script>alert(1)</script>",
        '<script type="text/javascript">x()</script>',
        '<p style="color: red">',
        "<style>p {}</style>",
        '<a href="#" onclick="x()">',
        '<a href="javascript:x()">',
    ],
)
def test_the_inline_code_detector_finds_what_csp_blocks(html):
    assert inline_code(html)


def test_the_inline_code_detector_allows_external_scripts_and_json_ld():
    html = '<script src="/static/app.js" defer></script><script type="application/ld+json">{}</script>'
    assert inline_code(html) == []


# --- 503 during a database outage -----------------------------------------------------------


def database_down(execute, sql, params, many, context):
    """An execute_wrapper that fails every query the way a stopped PostgreSQL does."""
    with connection.wrap_database_errors:
        raise connection.Database.OperationalError("server closed the connection unexpectedly")


def database_interface_gone(execute, sql, params, many, context):
    with connection.wrap_database_errors:
        raise connection.Database.InterfaceError("connection already closed")


@pytest.mark.parametrize("failure", [database_down, database_interface_gone])
def test_database_outage_gives_a_503_page_not_a_traceback(client, published, failure):
    client.raise_request_exception = False
    with connection.execute_wrapper(failure):
        response = client.get(published.get_absolute_url())
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Cache-Control"] == "no-store"
    assert "temporarily unavailable" in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert "server closed" not in response.content.decode()  # no internals shown
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.django_db(transaction=True)
def test_the_site_recovers_on_the_next_request(client):
    """The failed connection is thrown away during the 503; the next request opens a new one."""
    article = ArticleFactory(title="Council approves the budget")
    url = article.get_absolute_url()
    client.raise_request_exception = False
    connection.ensure_connection()
    broken = connection.connection
    with connection.execute_wrapper(database_down), mock.patch.object(connection, "is_usable", return_value=False):
        assert client.get(url).status_code == 503
    assert connection.connection is not broken
    response = client.get(url)
    assert response.status_code == 200
    assert article.title in response.content.decode()


def test_outage_page_needs_no_database(django_assert_num_queries):
    with connection.execute_wrapper(database_down), django_assert_num_queries(0):
        html = render_to_string("503.html")
    assert "<h1>Newsroom is temporarily unavailable</h1>" in html
    assert inline_code(html) == []


def test_other_database_errors_stay_500(client, published):
    """Only "the database is not there" is a 503; a bug (bad SQL, broken constraint) stays a 500."""

    def bad_sql(execute, sql, params, many, context):
        with connection.wrap_database_errors:
            raise connection.Database.ProgrammingError("syntax error")

    client.raise_request_exception = False
    with connection.execute_wrapper(bad_sql):
        assert client.get(published.get_absolute_url()).status_code == 500


@pytest.mark.django_db(transaction=True)
def test_a_broken_connection_is_closed_before_it_can_be_reused():
    connection.ensure_connection()
    connection.errors_occurred = True
    with mock.patch.object(connection, "is_usable", return_value=False):
        discard_broken_connections()
    assert connection.connection is None


@pytest.mark.django_db(transaction=True)
def test_a_live_connection_is_kept_after_an_error():
    """A query error on a live connection (a lock timeout, say) must not throw the connection away."""
    connection.ensure_connection()
    live = connection.connection
    connection.errors_occurred = True
    discard_broken_connections()
    assert connection.connection is live


def test_a_connection_inside_a_transaction_is_left_to_atomic():
    connection.ensure_connection()  # pytest-django runs this test inside atomic()
    connection.errors_occurred = True
    with mock.patch.object(connection, "is_usable", return_value=False):
        discard_broken_connections()
    assert connection.connection is not None
    connection.errors_occurred = False


@pytest.mark.django_db(transaction=True)
def test_closing_a_vanished_connection_does_not_raise():
    connection.ensure_connection()
    raw = connection.connection
    connection.errors_occurred = True
    with mock.patch.object(connection, "is_usable", return_value=False), mock.patch.object(
        connection, "_close", side_effect=OperationalError("server gone")
    ):
        discard_broken_connections()
    assert connection.connection is None
    raw.close()


# --- Login throttling (django-axes) ---------------------------------------------------------


@pytest.fixture
def editor(django_user_model):
    return django_user_model.objects.create_user("editor", password=PASSWORD, is_staff=True)


def admin_login(client, username, password, ip="203.0.113.7"):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": reverse("admin:index")},
        REMOTE_ADDR=ip,
    )


def is_logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def lock_out(client, username="editor", ip="203.0.113.7"):
    for attempt in range(1, settings.AXES_FAILURE_LIMIT + 1):
        response = admin_login(client, username, f"guess {attempt}", ip=ip)
        if attempt < settings.AXES_FAILURE_LIMIT:
            assert response.status_code == 200  # the login form again, with its error
            assert "Please enter the correct username and password" in response.content.decode()
    return response


def test_guessing_locks_the_account_out_for_that_address(client, editor):
    response = lock_out(client)
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many login attempts" in page
    assert f"after {settings.AXES_FAILURE_LIMIT} failed login attempts" in page
    assert "Try again in 15 minutes" in page

    refused = admin_login(client, "editor", PASSWORD)
    assert refused.status_code == 429
    assert not is_logged_in(client)


def test_the_right_password_works_again_after_a_reset(client, editor):
    """The documented way out: ``manage.py axes_reset_username NAME``."""
    lock_out(client)
    out = StringIO()
    call_command("axes_reset_username", "editor", stdout=out)
    assert "attempts removed" in out.getvalue()
    response = admin_login(client, "editor", PASSWORD)
    assert response.status_code == 302
    assert is_logged_in(client)


def test_the_right_password_works_again_after_the_cool_off(client, editor):
    lock_out(client)
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert admin_login(client, "editor", PASSWORD).status_code == 302


def test_lockout_is_per_address_and_username(client, editor, django_user_model):
    django_user_model.objects.create_user("other", password=PASSWORD, is_staff=True)
    lock_out(client)
    assert admin_login(Client(), "other", PASSWORD).status_code == 302  # same address, other account
    assert admin_login(Client(), "editor", PASSWORD, ip="198.51.100.1").status_code == 302  # other address


def test_a_success_clears_earlier_failures(client, editor):
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        admin_login(client, "editor", f"guess {attempt}")
    assert admin_login(client, "editor", PASSWORD).status_code == 302
    client.logout()
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert admin_login(client, "editor", f"again {attempt}").status_code == 200


def test_force_login_and_client_login_with_a_request_still_work(client, editor, admin_client):
    """How other tests sign in with axes on: ``force_login``/``admin_client`` need nothing; a plain
    ``client.login()`` must pass a request, because axes needs one to know the address."""
    assert admin_client.get(reverse("admin:index")).status_code == 200
    assert client.login(request=HttpRequest(), username="editor", password=PASSWORD)
    assert client.get(reverse("admin:index")).status_code == 200
