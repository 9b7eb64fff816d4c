"""A real headless Chromium reads the site: home, an article, the filter form and search.

Playwright drives the Debian ``chromium`` package (``executable_path``); Playwright's own browser
download is never used. The test skips only where /usr/bin/chromium is missing (``.ci/run``
installs it, so CI always runs it).

The injected-script check runs with the Content-Security-Policy bypassed: the policy would stop an
inline script by itself, and what is under test here is that imported text is escaped.
"""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from articles.models import Article
from tests.factories import ArticleFactory, SourceFactory

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]

HOSTILE_TITLE = "Council <script>window.pwnedTitle = true</script> vote"
HOSTILE_BODY = (
    "Budget talks <script>window.pwned = true</script> went late.\n\n"
    'A photo <img src="/nope.png" onerror="window.pwnedImg = true"> was attached.\n\n'
    "Template {{ request.user }} text."
)


def open_page(monkeypatch, *, bypass_csp: bool):
    """A fresh Chromium page; Django may be called while Playwright's event loop runs."""
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API keeps an event loop in this thread; Django's ORM refuses to run
    # beside one unless told the code really is synchronous (it is: a test creating rows).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(bypass_csp=bypass_csp, java_script_enabled=True)
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture
def browser_page(monkeypatch):
    yield from open_page(monkeypatch, bypass_csp=True)


@pytest.fixture
def strict_page(monkeypatch):
    """A page under the site's real Content-Security-Policy."""
    yield from open_page(monkeypatch, bypass_csp=False)


# Tests ask for ``newsroom`` (and so the test database) before ``live_server``: session fixtures
# are torn down in reverse order, so the server thread lets go of its database connection before
# PostgreSQL is asked to drop the test database.
@pytest.fixture
def newsroom(transactional_db):
    planet, bugle = SourceFactory(name="Daily Planet"), SourceFactory(name="Daily Bugle")
    for n in range(22):
        ArticleFactory(title=f"Bugle report {n}", source=bugle)
    hostile = ArticleFactory(title=HOSTILE_TITLE, summary="Late-night budget talks.", body=HOSTILE_BODY, source=planet)
    ArticleFactory(title="Bridge reopens after repairs", body="The bridge is open.\n\nTraffic flows.", source=planet)
    ArticleFactory(title="Draft never shown", status=Article.Status.DRAFT, source=planet)
    return {"hostile": hostile}


def test_reader_browses_follows_an_article_filters_and_searches(newsroom, live_server, browser_page):
    page = browser_page
    home = live_server.url + reverse("articles:article_list")

    # Home: the newest articles, 20 to a page, no drafts.
    page.goto(home)
    assert page.locator("h1").inner_text() == "Latest news"
    assert page.locator("main article.card").count() == 20
    assert "Draft never shown" not in page.content()
    assert page.get_by_role("link", name="Older →").is_visible()

    # Follow the article whose seed carries markup: it shows as text and nothing ran.
    page.get_by_role("link", name=HOSTILE_TITLE).click()
    page.wait_for_url(re.compile(re.escape(newsroom["hostile"].get_absolute_url()) + "$"))
    assert page.locator("h1").inner_text() == HOSTILE_TITLE
    body = page.locator(".article-body").inner_text()
    assert "<script>window.pwned = true</script>" in body
    assert '<img src="/nope.png" onerror="window.pwnedImg = true">' in body
    assert "{{ request.user }}" in body
    assert page.locator(".article-body img").count() == 0
    assert page.evaluate("[window.pwned, window.pwnedImg, window.pwnedTitle]") == [None, None, None]
    page.get_by_role("link", name="Daily Planet").first.click()
    assert page.locator("h1").inner_text() == "Daily Planet"

    # Filter the home page by source; the choice lands in a shareable query string.
    page.goto(home)
    page.locator("summary", has_text="Filter articles").click()
    page.get_by_label("Source").select_option(label="Daily Planet")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"[?&]source=daily-planet"))
    titles = page.locator("main article.card h2").all_inner_texts()
    assert sorted(titles) == sorted(["Bridge reopens after repairs", HOSTILE_TITLE])

    # Search from the header keeps the filter: words and source combine.
    page.get_by_label("Search articles").fill("bridge")
    page.get_by_label("Search articles").press("Enter")
    page.wait_for_url(re.compile(r"/search/\?q=bridge&source=daily-planet"))
    results = page.locator("main article.card h2").all_inner_texts()
    assert results == ["Bridge reopens after repairs"]
    assert page.locator("main mark").first.inner_text().lower() == "bridge"


def test_keyboard_user_can_skip_to_the_content(newsroom, live_server, browser_page):
    page = browser_page
    page.goto(live_server.url + reverse("articles:article_list"))
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert skip.is_visible()  # shown on focus, not hidden off-screen
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"


def test_public_pages_break_no_content_security_policy_rule(newsroom, live_server, strict_page):
    """Under the real policy (no inline script or style), the pages load cleanly in a browser.

    Chromium reports every blocked inline script, style or resource on the console; a page that
    relied on one would look or work differently for readers than in the tests above.
    """
    page = strict_page
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    urls = [
        reverse("articles:article_list"),
        newsroom["hostile"].get_absolute_url(),
        reverse("articles:source_list"),
        reverse("articles:search") + "?q=bridge",
        "/no-such-page/",
    ]
    for url in urls:
        page.goto(live_server.url + url)
        assert page.locator("link[rel=stylesheet]").count() >= 1
        # The stylesheet applied (it is not blocked): the skip link is moved off-screen by it.
        assert page.evaluate("getComputedStyle(document.querySelector('.skip-link')).position") != "static"
    violations = [text for text in problems if "Content Security Policy" in text]
    assert violations == []
    assert page.evaluate("[window.pwned, window.pwnedImg, window.pwnedTitle]") == [None, None, None]
