"""The public page cache and conditional GET (articles/caching.py).

Most tests run the small site of tests/page_cache_urls.py in-process. The two-process tests at the
end run it under gunicorn against a shared database (file SQLite, or PostgreSQL when the suite
runs on it), change content from a separate process, and check that the very next response shows
the change: with the default per-process local cache and with a shared Redis.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from articles import caching
from articles.models import Article, ContentVersion
from tests import page_cache_urls
from tests.factories import ArticleFactory, SourceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.page_cache_urls")]

BASE_DIR = Path(__file__).resolve().parent.parent
REDIS_SERVER = Path("/usr/bin/redis-server")


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    page_cache_urls.calls.clear()
    caching.release_fingerprint.cache_clear()
    yield
    cache.clear()
    caching.release_fingerprint.cache_clear()


def body(response) -> str:
    return response.content.decode()


# --- Hits, misses and what a hit costs ------------------------------------------------------


def test_second_request_is_served_from_the_cache_with_one_query(client, django_assert_num_queries):
    ArticleFactory(title="Budget passes")
    first = client.get("/titles/")
    assert first.status_code == 200
    assert first["X-Page-Cache"] == "miss"
    with django_assert_num_queries(1):  # only the content state
        second = client.get("/titles/")
    assert second["X-Page-Cache"] == "hit"
    assert body(second) == body(first) == "Budget passes"
    assert second["Content-Type"] == "text/plain; charset=utf-8"
    assert second["ETag"] == first["ETag"]
    assert page_cache_urls.calls["titles"] == 1


def test_cached_pages_are_public_with_a_short_max_age(client):
    response = client.get("/titles/")
    assert response["Cache-Control"] == "public, max-age=60"
    assert client.get("/short/")["Cache-Control"] == "public, max-age=5"
    assert response["ETag"].startswith('W/"')


@pytest.mark.parametrize("path", ["/template/", "/class/"])
def test_template_responses_are_rendered_once_and_cached(client, path):
    ArticleFactory.create_batch(2)
    assert body(client.get(path)) == "2 published"
    hit = client.get(path)
    assert hit["X-Page-Cache"] == "hit"
    assert body(hit) == "2 published"
    assert sum(page_cache_urls.calls.values()) == 1


def test_query_string_and_host_are_part_of_the_key(client):
    client.get("/titles/")
    assert client.get("/titles/?page=2")["X-Page-Cache"] == "miss"
    assert client.get("/titles/", HTTP_HOST="localhost")["X-Page-Cache"] == "miss"
    assert client.get("/titles/?page=2")["X-Page-Cache"] == "hit"
    assert client.get("/titles/")["ETag"] != client.get("/titles/?page=2")["ETag"]


def test_head_is_answered_from_the_same_entry_as_get(client):
    ArticleFactory(title="Storm warning")
    head = client.head("/titles/")
    assert head.status_code == 200
    assert head.content == b""
    get = client.get("/titles/")
    assert get["X-Page-Cache"] == "hit"
    assert body(get) == "Storm warning"
    assert get["ETag"] == head["ETag"]


# --- Conditional GET ------------------------------------------------------------------------


def test_matching_if_none_match_gets_304_without_rendering(client, django_assert_num_queries):
    ArticleFactory(title="Budget passes")
    etag = client.get("/titles/")["ETag"]
    with django_assert_num_queries(1):
        response = client.get("/titles/", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert response["Cache-Control"] == "public, max-age=60"
    assert page_cache_urls.calls["titles"] == 1


@pytest.mark.parametrize(
    "header",
    [
        "{etag}",
        "{strong}",  # weak comparison: W/"x" matches "x"
        '"other", {etag}',
    ],
)
def test_if_none_match_forms_that_match(client, header):
    etag = client.get("/titles/")["ETag"]
    value = header.format(etag=etag, strong=etag.removeprefix("W/"))
    assert client.get("/titles/", HTTP_IF_NONE_MATCH=value).status_code == 304


@pytest.mark.parametrize("header", ['"other"', 'W/"other"', "garbage without quotes", "", "*"])
def test_if_none_match_that_does_not_match_gets_the_page(client, header):
    ArticleFactory(title="Budget passes")
    client.get("/titles/")
    response = client.get("/titles/", HTTP_IF_NONE_MATCH=header)
    assert response.status_code == 200
    assert body(response) == "Budget passes"


def test_old_etag_gets_the_new_page_after_a_change(client):
    article = ArticleFactory(title="Budget passes")
    old = client.get("/titles/")["ETag"]
    article.title = "Budget fails"
    article.save()
    response = client.get("/titles/", HTTP_IF_NONE_MATCH=old)
    assert response.status_code == 200
    assert body(response) == "Budget fails"
    assert response["ETag"] != old


# --- Invalidation ---------------------------------------------------------------------------


def test_article_save_is_visible_on_the_next_request(client):
    article = ArticleFactory(title="Budget passes")
    client.get("/titles/")
    article.title = "Budget fails"
    article.save()
    response = client.get("/titles/")
    assert response["X-Page-Cache"] == "miss"
    assert body(response) == "Budget fails"


def test_article_delete_and_unpublish_are_visible_on_the_next_request(client):
    kept, deleted = ArticleFactory(title="Kept"), ArticleFactory(title="Deleted")
    client.get("/titles/")
    deleted.delete()
    assert body(client.get("/titles/")) == "Kept"
    kept.status = Article.Status.DRAFT
    kept.save()
    assert body(client.get("/titles/")) == ""


def test_source_rename_is_visible_on_article_pages(client):
    source = SourceFactory(name="Wire Service")
    article = ArticleFactory(title="Budget passes", source=source)
    url = f"/articles/{article.slug}/"
    assert body(client.get(url)).endswith("Wire Service")
    source.name = "Renamed Wire"
    source.save()
    assert body(client.get(url)).endswith("Renamed Wire")


def test_queryset_update_needs_a_bump_and_is_visible_after_it(client):
    """``QuerySet.update`` sends no signal: the writer's ``ContentVersion.bump()`` is what makes the
    change visible. Without it the cached page is still served (this is why bulk writers must bump)."""
    ArticleFactory(title="Budget passes")
    client.get("/titles/")
    Article.objects.update(title="Budget fails")
    assert body(client.get("/titles/")) == "Budget passes"
    ContentVersion.bump()
    response = client.get("/titles/")
    assert response["X-Page-Cache"] == "miss"
    assert body(response) == "Budget fails"


def test_bulk_create_with_bump_is_visible(client):
    client.get("/titles/")
    source = SourceFactory()
    Article.objects.bulk_create(
        [Article(title="Bulk one", slug="bulk-one", body="x", source=source, status=Article.Status.PUBLISHED)]
    )
    ContentVersion.bump()
    assert body(client.get("/titles/")) == "Bulk one"


def test_missing_content_version_row_still_works(client):
    """A database flushed by a transactional test has no row until the next bump."""
    ContentVersion.objects.all().delete()
    ArticleFactory(title="Budget passes")  # its signal recreates the row
    ContentVersion.objects.all().delete()
    assert body(client.get("/titles/")) == "Budget passes"
    assert client.get("/titles/")["X-Page-Cache"] == "hit"


def test_new_release_gets_new_keys_and_etags(client):
    etag = client.get("/titles/")["ETag"]
    with override_settings(NEWSROOM_RELEASE="next-deploy"):
        caching.release_fingerprint.cache_clear()
        response = client.get("/titles/", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response["X-Page-Cache"] == "miss"


def test_release_fingerprint_changes_with_a_template(tmp_path, settings):
    """Without NEWSROOM_RELEASE, editing a template is a new release."""
    template = tmp_path / "page.html"
    template.write_text("one")
    settings.NEWSROOM_RELEASE = ""
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    first = caching.release_fingerprint()
    caching.release_fingerprint.cache_clear()
    assert caching.release_fingerprint() == first
    template.write_text("two")
    caching.release_fingerprint.cache_clear()
    assert caching.release_fingerprint() != first


# --- Scheduled publication ------------------------------------------------------------------


def test_scheduled_article_appears_at_its_time_although_the_page_is_cached(client):
    """No write happens when a scheduled article's time comes; the cached page must still give way."""
    now = timezone.now()
    ArticleFactory(title="Already out", published_at=now - timedelta(hours=1))
    ArticleFactory(title="Embargoed", published_at=now + timedelta(minutes=10))
    assert body(client.get("/titles/")) == "Already out"
    assert client.get("/titles/")["X-Page-Cache"] == "hit"
    with mock.patch("django.utils.timezone.now", return_value=now + timedelta(minutes=10, seconds=1)):
        response = client.get("/titles/")
    assert response["X-Page-Cache"] == "miss"
    assert body(response) == "Embargoed\nAlready out"


def test_max_age_never_reaches_past_the_next_scheduled_publication(client):
    ArticleFactory(published_at=timezone.now() + timedelta(seconds=20))
    max_age = int(client.get("/titles/")["Cache-Control"].split("max-age=")[1])
    assert 0 <= max_age <= 20


# --- Who and what bypasses the cache --------------------------------------------------------


def test_signed_in_users_bypass_the_cache(client, django_user_model):
    ArticleFactory(title="Budget passes")
    client.get("/titles/")  # cached for anonymous visitors
    client.force_login(django_user_model.objects.create_user("editor", is_staff=True))
    for _ in range(2):
        response = client.get("/titles/")
        assert response["X-Page-Cache"] == "bypass"
        assert set(response["Cache-Control"].split(", ")) == {"private", "no-cache"}
        assert "ETag" not in response
    assert page_cache_urls.calls["titles"] == 3


def test_signed_in_users_are_never_answered_304(client, django_user_model):
    etag = client.get("/titles/")["ETag"]
    client.force_login(django_user_model.objects.create_user("editor", is_staff=True))
    assert client.get("/titles/", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_a_signed_in_rendering_is_never_stored_for_anonymous_visitors(client, django_user_model):
    ArticleFactory(title="Budget passes")
    staff = django_user_model.objects.create_user("editor", is_staff=True)
    client.force_login(staff)
    client.get("/titles/")
    client.logout()
    assert client.get("/titles/")["X-Page-Cache"] == "miss"


def test_post_bypasses_the_cache(client):
    client.get("/titles/")
    response = client.post("/titles/")
    assert response["X-Page-Cache"] == "bypass"
    assert "private" in response["Cache-Control"]
    assert page_cache_urls.calls["titles"] == 2


def test_404_is_not_cached(client):
    for _ in range(2):
        response = client.get("/articles/nothing-here/")
        assert response.status_code == 404
        assert "ETag" not in response
        assert "public" not in response.get("Cache-Control", "")
    assert page_cache_urls.calls["detail"] == 2


def test_redirects_are_not_cached(client):
    for _ in range(2):
        response = client.get("/redirect/")
        assert response.status_code == 302
        assert "X-Page-Cache" not in response
    assert page_cache_urls.calls["redirect"] == 2


def test_a_page_with_a_csrf_token_is_never_shared(client):
    """A token rendered into a page is per visitor; storing it would hand one visitor's token to all."""
    first, second = client.get("/csrf/"), client.get("/csrf/")
    assert page_cache_urls.calls["csrf"] == 2
    assert "X-Page-Cache" not in second
    assert "public" not in second.get("Cache-Control", "")
    assert first.cookies["csrftoken"].value


# --- Switches and failures ------------------------------------------------------------------


@override_settings(NEWSROOM_PAGE_CACHE=False)
def test_page_cache_switched_off_keeps_conditional_get(client):
    ArticleFactory(title="Budget passes")
    first, second = client.get("/titles/"), client.get("/titles/")
    assert first["X-Page-Cache"] == second["X-Page-Cache"] == "off"
    assert page_cache_urls.calls["titles"] == 2
    assert client.get("/titles/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304


def test_env_switch_turns_the_page_cache_off():
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.NEWSROOM_PAGE_CACHE)"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "newsroom.test_settings", "NEWSROOM_PAGE_CACHE": "0"},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "False"


def test_a_dead_cache_server_costs_a_render_not_the_page(client):
    dead = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    ArticleFactory(title="Budget passes")
    with override_settings(CACHES=dead):
        response = client.get("/titles/")
    assert response.status_code == 200
    assert body(response) == "Budget passes"


# --- Two processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited early with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listening on port {port} after {seconds}s")


@pytest.fixture(scope="module")
def redis_url():
    if not REDIS_SERVER.exists():
        pytest.skip(f"{REDIS_SERVER} is not installed (apt-get install redis-server)")
    port = free_port()
    server = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def database_url(tmp_path):
    """The database the processes share: a fresh PostgreSQL database on the server of DATABASE_URL
    when the suite runs on PostgreSQL (dropped afterwards), else a file SQLite database."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path / 'site.sqlite3'}"
        return
    import psycopg

    name = f"page_cache_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as server:
        server.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(url, autocommit=True) as server:
            server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class Site:
    """gunicorn servers and writer processes sharing one database (and maybe a Redis)."""

    def __init__(self, tmp_path: Path, database_url: str, cache_url: str | None):
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "CACHE_URL", "REDIS_URL", "NEWSROOM_PAGE_CACHE", "DJANGO_ENV"}
        }
        self.env.update(
            DJANGO_SETTINGS_MODULE="tests.page_cache_settings",
            NEWSROOM_VAR_DIR=str(tmp_path),
            DATABASE_URL=database_url,
            DJANGO_HTTPS="0",
            NEWSROOM_RELEASE="two-process-test",
            PYTHONPATH=str(BASE_DIR),
        )
        if cache_url:
            self.env["CACHE_URL"] = cache_url
        self.servers: list[subprocess.Popen] = []
        self.logs = tmp_path

    def python(self, code: str) -> str:
        """Run ``code`` in a fresh Python process with Django set up, as a separate writer would."""
        script = "import django; django.setup()\n" + code
        result = subprocess.run(
            [sys.executable, "-c", script], env=self.env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start_server(self) -> int:
        port = free_port()
        log = open(self.logs / f"gunicorn-{port}.log", "w")  # noqa: SIM115 (closed with the process)
        env = {**self.env, "GUNICORN_WORKERS": "1", "GUNICORN_BIND": f"127.0.0.1:{port}"}
        server = subprocess.Popen(
            [Path(sys.executable).parent / "gunicorn", "-c", "gunicorn.conf.py"],
            env=env,
            cwd=BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.servers.append(server)
        wait_for_port(port, server)
        return port

    def stop(self):
        for server in self.servers:
            server.terminate()
        for server in self.servers:
            server.wait(timeout=30)


@pytest.fixture
def site_factory(tmp_path, database_url):
    sites = []

    def make(cache_url):
        site = Site(tmp_path, database_url, cache_url)
        sites.append(site)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env=site.env, cwd=BASE_DIR, check=True
        )
        vendor = site.python(
            "from django.db import connection\n"
            "from tests.factories import ArticleFactory\n"
            "ArticleFactory(title='Version one', slug='story')\n"
            "print(connection.vendor)\n"
        )
        assert vendor.strip() == connection.vendor  # the same kind of database as the rest of the suite
        return site

    yield make
    for site in sites:
        site.stop()


def fetch(port: int, path: str = "/articles/story/") -> tuple[str, str]:
    """The first line of the page and the X-Page-Cache status.

    One Host header for every server, as behind a load balancer (the host is part of the key).
    """
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": "localhost"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode().split("\n")[0], response.headers["X-Page-Cache"]


def check_changes_from_another_process_are_seen_next(site: "Site", ports: list[int], *, shared: bool) -> None:
    """Both servers have the page cached; a separate process changes the article; the next response
    of each server shows the change (rendered afresh by the first, and by every server unless the
    cache is shared, in which case the others find the first one's new rendering)."""
    for port in ports:
        fetch(port)
        assert fetch(port) == ("Version one", "hit")

    site.python(
        "from articles.models import Article\n"
        "article = Article.objects.get(slug='story')\n"
        "article.title = 'Version two'\n"
        "article.save()\n"
    )
    first, *others = ports
    assert fetch(first) == ("Version two", "miss")
    for port in others:
        assert fetch(port) == ("Version two", "hit" if shared else "miss")

    site.python(
        "from articles.models import Article, ContentVersion\n"
        "Article.objects.filter(slug='story').update(title='Version three')\n"
        "ContentVersion.bump()\n"
    )
    for port in ports:
        assert fetch(port)[0] == "Version three"


@pytest.mark.slow
def test_two_processes_with_the_local_cache(site_factory):
    """Each gunicorn has its own local-memory cache; the content version in the database still
    makes a write by a third process visible on each server's very next response."""
    site = site_factory(None)
    ports = [site.start_server(), site.start_server()]
    check_changes_from_another_process_are_seen_next(site, ports, shared=False)


@pytest.mark.slow
def test_two_processes_sharing_redis(site_factory, redis_url):
    site = site_factory(redis_url)
    site.python("from django.core.cache import cache; cache.clear()")
    first, second = site.start_server(), site.start_server()
    assert fetch(first) == ("Version one", "miss")
    assert fetch(second) == ("Version one", "hit")  # stored by the other server, shared through Redis
    check_changes_from_another_process_are_seen_next(site, [first, second], shared=True)


def test_if_none_match_star_never_claims_a_missing_page_exists(client):
    """``*`` means "any current representation": a 304 for it would answer before the view runs."""
    assert client.get("/articles/no-such-article/", HTTP_IF_NONE_MATCH="*").status_code == 404


def test_last_modified_and_if_modified_since(client):
    from django.utils.http import http_date

    ArticleFactory()
    first = client.get("/titles/")
    stamp = first["Last-Modified"]
    assert client.get("/titles/", HTTP_IF_MODIFIED_SINCE=stamp).status_code == 304
    assert client.get("/titles/", HTTP_IF_MODIFIED_SINCE=http_date(0)).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110): a stale ETag means a fresh page.
    assert client.get("/titles/", HTTP_IF_MODIFIED_SINCE=stamp, HTTP_IF_NONE_MATCH='"stale"').status_code == 200


def test_scheduled_publication_moves_last_modified_without_any_write(client):
    from articles.caching import content_state, last_modified

    ArticleFactory(published_at=timezone.now() - timedelta(days=3))
    due = ArticleFactory(published_at=timezone.now() + timedelta(hours=1))
    # The last write was an hour ago; since then the scheduled article's time came, by the clock alone.
    an_hour_ago = timezone.now() - timedelta(hours=1)
    went_public = timezone.now() - timedelta(minutes=1)
    ContentVersion.objects.filter(pk=1).update(changed_at=an_hour_ago)
    Article.objects.filter(pk=due.pk).update(published_at=went_public)
    state = content_state()
    assert state.changed_at == an_hour_ago, "no bump: nothing was written"
    assert last_modified(state) == went_public


def test_unknown_query_parameters_are_served_but_never_stored(client):
    client.get("/titles/?junk=1")
    assert client.get("/titles/?junk=1")[caching.CACHE_STATUS_HEADER] == "off"
    client.get("/titles/?page=1")
    assert client.get("/titles/?page=1")[caching.CACHE_STATUS_HEADER] == "hit"
