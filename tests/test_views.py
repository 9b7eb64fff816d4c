"""The public pages: home, article, sources; filters, pagination, previews, redirects, safety, speed."""

import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.paginator import Paginator
from django.db import connection
from django.template import loader
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.views.defaults import server_error

from articles.listing import DeepPagePaginator, for_listing
from articles.models import Article, SlugRedirect, Source
from tests.factories import ArticleFactory, SourceFactory

pytestmark = pytest.mark.django_db

HOME = reverse("articles:article_list")
SOURCES = reverse("articles:source_list")
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

#: What a hostile or careless seed might contain; it must come out as text.
HOSTILE_TITLE = 'Breaking </script><script>window.pwned=1</script> "quoted" & more'
HOSTILE_BODY = (
    "<script>window.pwned = 1</script> opening paragraph.\n\n"
    '<img src=x onerror="window.pwned = 2"> second paragraph.\n\n'
    "Template {{ settings.SECRET_KEY }} and {% now 'Y' %} tags."
)


def html(response) -> str:
    return response.content.decode()


def detail_url(article) -> str:
    return reverse("articles:article_detail", kwargs={"slug": article.slug})


def source_url(source) -> str:
    return reverse("articles:source_detail", kwargs={"slug": source.slug})


def titles_in(response) -> list[str]:
    return [article.title for article in response.context["page_obj"]]


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_article"))
    client.force_login(user)
    return client


class StructureParser(HTMLParser):
    """Collects what the accessibility and CSP checks look at."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, dict]] = []
        self.scripts: list[dict] = []
        self.html_lang = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.attrs.append((tag, attrs))
        if tag == "script":
            self.scripts.append(attrs)
        if tag == "html":
            self.html_lang = attrs.get("lang")


def parse(response) -> StructureParser:
    parser = StructureParser()
    parser.feed(html(response))
    return parser


def json_ld(response) -> dict:
    match = re.search(r'<script type="application/ld\+json">(.*?)</script>', html(response), re.S)
    assert match, "no JSON-LD block"
    return json.loads(match.group(1))


# --- Home -----------------------------------------------------------------------------------


def test_home_lists_only_published_articles_newest_first(client):
    older = ArticleFactory(title="Older story", published_at=ago(days=2))
    newer = ArticleFactory(title="Newer story", published_at=ago(hours=1))
    ArticleFactory(title="A draft", status=Article.Status.DRAFT)
    ArticleFactory(title="An archived one", status=Article.Status.ARCHIVED)
    ArticleFactory(title="Scheduled story", published_at=timezone.now() + timedelta(hours=3))

    response = client.get(HOME)

    assert response.status_code == 200
    assert titles_in(response) == [newer.title, older.title]
    page = html(response)
    for hidden in ("A draft", "An archived one", "Scheduled story"):
        assert hidden not in page


def test_home_card_shows_title_summary_source_date_and_reading_time(client):
    source = SourceFactory(name="Daily Planet")
    article = ArticleFactory(
        title="Bridge reopens",
        summary="Traffic flows again.",
        body=" ".join(["word"] * 700),
        source=source,
        published_at=timezone.make_aware(timezone.datetime(2025, 3, 4, 12, 0)),
    )
    page = html(client.get(HOME))
    assert f'href="{detail_url(article)}">Bridge reopens</a>' in page
    assert "Traffic flows again." in page
    assert f'href="{source_url(source)}">Daily Planet</a>' in page
    assert "4 March 2025" in page
    assert "4 min read" in page  # 700 words at 230 a minute


def test_home_says_so_when_there_is_nothing(client):
    assert "No articles yet." in html(client.get(HOME))


def test_home_paginates_by_twenty_and_keeps_filters_in_page_links(client):
    source = SourceFactory(name="Wire")
    for n in range(45):
        ArticleFactory(source=source, published_at=ago(minutes=n + 1))

    first = client.get(HOME, {"source": source.slug})
    last = client.get(HOME, {"source": source.slug, "page": 3})

    assert len(first.context["page_obj"]) == 20
    assert len(last.context["page_obj"]) == 5
    assert 'href="?source=wire&amp;page=2"' in html(first)
    assert 'href="?source=wire&amp;page=2"' in html(last)  # "newer" from page 3


@pytest.mark.parametrize("page", ["abc", "0", "-1", "999999", "1.5", "9" * 40])
def test_bad_page_numbers_are_404_not_500(client, page):
    ArticleFactory()
    response = client.get(HOME, {"page": page})
    assert response.status_code == 404
    assert "Page not found" in html(response)


def test_last_page_is_a_valid_page(client):
    for _ in range(21):
        ArticleFactory()
    assert client.get(HOME, {"page": "last"}).context["page_obj"].number == 2


def test_pages_are_stable_when_many_articles_share_a_time(client):
    moment = ago(hours=1)
    articles = [ArticleFactory(published_at=moment) for _ in range(30)]
    seen = titles_in(client.get(HOME)) + titles_in(client.get(HOME, {"page": 2}))
    assert seen == [article.title for article in reversed(articles)]


def test_deep_page_paginator_gives_the_same_pages_as_plain_pagination():
    moment = ago(hours=1)
    for n in range(47):
        ArticleFactory(published_at=moment if n % 3 else ago(minutes=n))
    queryset = for_listing(Article.objects.published().newest_first())
    plain, deep = Paginator(queryset, 20), DeepPagePaginator(queryset, 20)
    assert deep.num_pages == plain.num_pages == 3
    for number in (1, 2, 3):
        assert list(deep.page(number)) == list(plain.page(number))


# --- Filters --------------------------------------------------------------------------------


@pytest.fixture
def filter_world():
    planet, bugle = SourceFactory(name="Daily Planet"), SourceFactory(name="Daily Bugle")
    outlet = SourceFactory(name="Gotham Gazette")
    return {
        "planet_old": ArticleFactory(title="Planet old", source=planet, published_at=ago(days=40)),
        "planet_new": ArticleFactory(title="Planet new", source=planet, cited_source=outlet, published_at=ago(days=1)),
        "bugle_new": ArticleFactory(title="Bugle new", source=bugle, cited_source=outlet, published_at=ago(days=2)),
        "planet_draft": ArticleFactory(
            title="Planet draft", source=planet, cited_source=outlet, status=Article.Status.DRAFT
        ),
    }


ALL_PUBLISHED = ["Planet new", "Bugle new", "Planet old"]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"source": "daily-planet"}, ["Planet new", "Planet old"]),
        ({"outlet": "gotham-gazette"}, ["Planet new", "Bugle new"]),
        ({"source": "daily-planet", "outlet": "gotham-gazette"}, ["Planet new"]),
        ({"published_after": "{days_ago_10}"}, ["Planet new", "Bugle new"]),
        ({"published_before": "{days_ago_10}"}, ["Planet old"]),
        ({"published_after": "{days_ago_2}", "published_before": "{days_ago_2}"}, ["Bugle new"]),
        ({"source": "", "outlet": "", "published_after": "", "published_before": ""}, ALL_PUBLISHED),
        ({"published_after": "0001-01-01", "published_before": "9999-12-31"}, ALL_PUBLISHED),
    ],
)
def test_filters_narrow_the_home_page(client, filter_world, params, expected):
    days = {
        "{days_ago_10}": ago(days=10).date().isoformat(),
        "{days_ago_2}": ago(days=2).date().isoformat(),
    }
    params = {key: days.get(value, value) for key, value in params.items()}
    response = client.get(HOME, params)
    assert response.status_code == 200
    assert titles_in(response) == expected


def test_filter_choices_list_only_sources_with_published_articles(client, filter_world):
    SourceFactory(name="Silent Source")
    SourceFactory(name="Draft Only").articles.create(title="x", slug="x", body="x", status=Article.Status.DRAFT)
    form = client.get(HOME).context["filter"].form
    assert [name for _, name in form.fields["source"].choices][1:] == ["Daily Bugle", "Daily Planet"]
    assert [name for _, name in form.fields["outlet"].choices][1:] == ["Gotham Gazette"]


def test_filter_form_shows_the_chosen_values(client, filter_world):
    page = html(client.get(HOME, {"source": "daily-planet", "published_after": "2025-01-02"}))
    assert '<option value="daily-planet" selected>Daily Planet</option>' in page
    assert 'name="published_after" value="2025-01-02"' in page


@pytest.mark.parametrize(
    "params, message",
    [
        ({"source": "no-such-source"}, "Select a valid choice"),
        ({"outlet": "daily-planet"}, "Select a valid choice"),  # a source, but never cited
        ({"published_after": "2024-13-45"}, "Enter a valid date"),
        ({"published_before": "yesterday"}, "Enter a valid date"),
        ({"published_after": "10000-01-01"}, "Enter a valid date"),
        ({"published_after": "2025-02-01", "published_before": "2025-01-01"}, "after the “to” date"),
        ({"source": "<script>alert(1)</script>"}, "Select a valid choice"),
    ],
)
def test_bad_filters_give_a_clear_message_not_a_500(client, filter_world, params, message):
    response = client.get(HOME, params)
    assert response.status_code == 400
    page = html(response)
    assert 'role="alert"' in page
    assert message in page
    assert "No articles shown until the filters are corrected." in page
    assert "<script>alert(1)</script>" not in page


def test_search_words_on_the_home_page_go_to_search_with_the_filters(client):
    response = client.get(HOME, {"q": "budget vote", "source": "daily-planet"})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('articles:search')}?q=budget+vote&source=daily-planet"


def test_header_search_form_carries_the_current_filters(client, filter_world):
    page = html(client.get(HOME, {"source": "daily-planet", "published_before": "2030-01-01"}))
    header_form = page.split('class="site-search"', 1)[1].split("</form>", 1)[0]
    assert '<input type="hidden" name="source" value="daily-planet">' in header_form
    assert '<input type="hidden" name="published_before" value="2030-01-01">' in header_form


# --- Article page ---------------------------------------------------------------------------


def test_article_page_shows_the_article_with_linked_source_and_outlet(client):
    source, outlet = SourceFactory(name="Daily Planet"), SourceFactory(name="Gotham Gazette")
    article = ArticleFactory(
        title="Bridge reopens",
        body="First paragraph.\n\nSecond paragraph\nwith a line break.",
        source=source,
        cited_source=outlet,
    )
    response = client.get(detail_url(article))
    assert response.status_code == 200
    page = html(response)
    assert "<h1>Bridge reopens</h1>" in page
    assert "<p>First paragraph.</p>" in page
    assert "<p>Second paragraph<br>with a line break.</p>" in page
    assert f'<a href="{source_url(source)}">Daily Planet</a>' in page
    assert f'<a href="{source_url(outlet)}">Gotham Gazette</a>' in page
    assert "1 min read" in page


def test_more_from_this_source_shows_other_published_articles_only(client):
    source = SourceFactory(name="Daily Planet")
    article = ArticleFactory(source=source, title="The one we read")
    others = [ArticleFactory(source=source, title=f"Other {n}", published_at=ago(minutes=n + 1)) for n in range(7)]
    ArticleFactory(source=source, title="Unpublished sibling", status=Article.Status.DRAFT)
    ArticleFactory(title="Different source")

    more = list(client.get(detail_url(article)).context["more_from_source"])

    assert [other.title for other in more] == [other.title for other in others[:5]]


def test_article_without_source_has_no_more_from_section(client):
    page = html(client.get(detail_url(ArticleFactory(source=None))))
    assert "More from" not in page


def test_article_page_has_canonical_opengraph_twitter_and_json_ld(client):
    source = SourceFactory(name="Daily Planet")
    article = ArticleFactory(title="Bridge reopens", summary="Traffic flows again.", source=source)
    response = client.get(detail_url(article))
    page = html(response)
    canonical = f"http://testserver{detail_url(article)}"
    assert f'<link rel="canonical" href="{canonical}">' in page
    assert '<meta property="og:type" content="article">' in page
    assert '<meta property="og:title" content="Bridge reopens">' in page
    assert f'<meta property="og:url" content="{canonical}">' in page
    assert '<meta name="twitter:card" content="summary">' in page
    assert '<meta name="twitter:description" content="Traffic flows again.">' in page

    data = json_ld(response)
    article.refresh_from_db()
    assert data["@type"] == "NewsArticle"
    assert data["headline"] == "Bridge reopens"
    assert data["description"] == "Traffic flows again."
    assert data["datePublished"] == article.published_at.isoformat()
    assert data["dateModified"] == article.updated_at.isoformat()
    assert data["publisher"] == {"@type": "Organization", "name": "Newsroom"}
    assert data["mainEntityOfPage"] == canonical


def test_imported_markup_and_template_syntax_show_as_text(client):
    article = ArticleFactory(title=HOSTILE_TITLE, summary='<b onmouseover="x()">bold</b>', body=HOSTILE_BODY)
    response = client.get(detail_url(article))
    page = html(response)

    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt; opening paragraph." in page
    assert "&lt;img src=x onerror=&quot;window.pwned = 2&quot;&gt;" in page
    assert "{{ settings.SECRET_KEY }} and {% now &#x27;Y&#x27; %} tags." in page
    assert "<img" not in page and "onerror=\"" not in page and "<b onmouseover" not in page
    # The only script element is the JSON-LD data block, and the title cannot close it early.
    assert [attrs.get("type") for attrs in parse(response).scripts] == ["application/ld+json"]
    assert page.count("</script>") == 1
    assert json_ld(response)["headline"] == HOSTILE_TITLE


def test_hostile_text_is_escaped_in_listings_too(client):
    ArticleFactory(title=HOSTILE_TITLE, summary="<img src=x onerror=alert(1)>")
    page = html(client.get(HOME))
    assert "<img" not in page
    assert "&lt;/script&gt;&lt;script&gt;window.pwned=1&lt;/script&gt;" in page


@pytest.mark.parametrize(
    "state",
    [
        {"status": Article.Status.DRAFT},
        {"status": Article.Status.ARCHIVED},
        {"published_at": timezone.now() + timedelta(days=1)},
    ],
    ids=["draft", "archived", "scheduled"],
)
def test_unpublished_articles_are_404_for_the_public_and_previews_for_staff(client, django_user_model, state):
    article = ArticleFactory(title="Not yet", **state)

    anonymous = client.get(detail_url(article))
    assert anonymous.status_code == 404
    assert "Not yet" not in html(anonymous)

    reader = django_user_model.objects.create_user("reader", password="pw")
    client.force_login(reader)
    assert client.get(detail_url(article)).status_code == 404

    # Staff without permission to view articles (say, a user manager) get the public 404 too.
    staff = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(detail_url(article)).status_code == 404

    staff.user_permissions.add(Permission.objects.get(codename="view_article"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    preview = client.get(detail_url(article))
    assert preview.status_code == 200
    assert "Preview — not public" in html(preview)
    assert '<meta name="robots" content="noindex, nofollow">' in html(preview)
    directives = {part.strip() for part in preview["Cache-Control"].split(",")}
    assert {"private", "no-store"} <= directives
    assert "public" not in directives


def test_staff_see_published_articles_without_the_preview_banner(staff_client):
    article = ArticleFactory()
    response = staff_client.get(detail_url(article))
    assert response.status_code == 200
    assert "Preview — not public" not in html(response)


def test_a_staff_preview_is_never_served_to_the_public_from_the_cache(client, staff_client):
    article = ArticleFactory(status=Article.Status.DRAFT)
    assert staff_client.get(detail_url(article)).status_code == 200
    staff_client.logout()
    assert client.get(detail_url(article)).status_code == 404


def test_unknown_article_is_a_friendly_404(client):
    response = client.get(reverse("articles:article_detail", kwargs={"slug": "no-such-story"}))
    assert response.status_code == 404
    assert "Page not found" in html(response)
    assert f'href="{HOME}"' in html(response)


def test_old_slug_redirects_permanently_to_the_current_address(client):
    article = ArticleFactory(slug="new-slug")
    SlugRedirect.objects.create(old_slug="old-slug", article=article)
    response = client.get(reverse("articles:article_detail", kwargs={"slug": "old-slug"}))
    assert response.status_code == 301
    assert response["Location"] == detail_url(article)


def test_old_slug_of_an_unpublished_article_does_not_reveal_it(client, staff_client):
    article = ArticleFactory(slug="secret-new-slug", status=Article.Status.DRAFT)
    SlugRedirect.objects.create(old_slug="old-slug", article=article)
    old = reverse("articles:article_detail", kwargs={"slug": "old-slug"})
    assert staff_client.get(old).status_code == 301
    staff_client.logout()
    response = client.get(old)
    assert response.status_code == 404
    assert "secret-new-slug" not in html(response)


def test_current_slug_wins_over_a_redirect_with_the_same_name(client):
    stale = ArticleFactory(slug="other")
    current = ArticleFactory(slug="taken")
    SlugRedirect.objects.create(old_slug="taken", article=stale)
    assert client.get(detail_url(current)).context["article"] == current


# --- Sources --------------------------------------------------------------------------------


def test_sources_page_lists_every_source_with_published_counts(client):
    planet, outlet = SourceFactory(name="Daily Planet"), SourceFactory(name="Gotham Gazette")
    SourceFactory(name="Quiet Source")
    ArticleFactory.create_batch(2, source=planet, cited_source=outlet)
    ArticleFactory(source=planet, status=Article.Status.DRAFT)
    ArticleFactory(source=planet, cited_source=outlet, published_at=timezone.now() + timedelta(hours=1))

    response = client.get(SOURCES)

    counts = {s.name: (s.published_count, s.cited_count) for s in response.context["sources"]}
    assert counts == {"Daily Planet": (2, 0), "Gotham Gazette": (0, 2), "Quiet Source": (0, 0)}
    page = html(response)
    assert f'<a href="{source_url(planet)}">Daily Planet</a>' in page
    planet_row, outlet_row = (
        page.split(f">{name}</a>", 1)[1].split("</li>", 1)[0] for name in ("Daily Planet", "Gotham Gazette")
    )
    assert "2 articles" in planet_row and "cited" not in planet_row
    assert "cited by 2" in outlet_row and "articles" not in outlet_row


def test_source_page_lists_articles_from_and_citing_the_source(client):
    planet, outlet = SourceFactory(name="Daily Planet"), SourceFactory(name="Gotham Gazette")
    own = ArticleFactory(title="Own story", source=planet, published_at=ago(hours=2))
    citing = ArticleFactory(title="Citing story", cited_source=planet, published_at=ago(hours=1))
    ArticleFactory(title="Unrelated", source=outlet)
    ArticleFactory(title="Draft of own", source=planet, status=Article.Status.DRAFT)

    response = client.get(source_url(planet))

    assert response.status_code == 200
    assert titles_in(response) == [citing.title, own.title]
    assert "<h1>Daily Planet</h1>" in html(response)


def test_source_page_paginates(client):
    source = SourceFactory(name="Wire")
    ArticleFactory.create_batch(25, source=source)
    assert len(client.get(source_url(source), {"page": 2}).context["page_obj"]) == 5
    assert client.get(source_url(source), {"page": 3}).status_code == 404


@pytest.mark.parametrize("slug", ["no-such-source", "Daily Planet", "%F0%9F%92%A5"])
def test_unknown_source_is_404(client, slug):
    SourceFactory(name="Daily Planet")
    assert client.get(f"{SOURCES}{slug}/").status_code == 404


# --- Error pages ----------------------------------------------------------------------------


def test_500_page_renders_without_a_request_or_the_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        standalone = loader.get_template("500.html").render()
        response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert "Something went wrong" in standalone
    assert "Something went wrong" in response.content.decode()


# --- Markup: semantics, accessibility, and nothing inline (the CSP allows no inline code) ---


def public_pages():
    source = SourceFactory(name="Daily Planet")
    article = ArticleFactory(source=source, cited_source=SourceFactory(name="Gotham Gazette"))
    return [HOME, f"{HOME}?source=nope", detail_url(article), SOURCES, source_url(source), "/no-such-page/"]


def test_pages_are_semantic_and_accessible(client):
    for url in public_pages():
        parsed = parse(client.get(url))
        assert parsed.html_lang == "en", url
        assert parsed.tags.count("h1") == 1, url
        for landmark in ("header", "nav", "main", "footer"):
            assert landmark in parsed.tags, (url, landmark)
        first_link = next(attrs for tag, attrs in parsed.attrs if tag == "a")
        assert first_link == {"class": "skip-link", "href": "#main"}, url
        assert ("main", {"id": "main", "class": "wrap", "tabindex": "-1"}) in parsed.attrs


def test_form_controls_have_accessible_names(client, filter_world):
    parsed = parse(client.get(HOME))
    labelled = {attrs["for"] for tag, attrs in parsed.attrs if tag == "label"}
    for tag, attrs in parsed.attrs:
        if tag in {"input", "select"} and attrs.get("type") != "hidden":
            assert attrs.get("id") in labelled or attrs.get("aria-label"), attrs


def test_pages_have_no_inline_script_or_style(client):
    for url in public_pages():
        parsed = parse(client.get(url))
        assert all(attrs.get("type") == "application/ld+json" for attrs in parsed.scripts), url
        for tag, attrs in parsed.attrs:
            assert "style" not in attrs and tag != "style", (url, tag)
            assert not any(name.startswith("on") for name in attrs), (url, tag, attrs)


def test_templates_contain_no_inline_script_or_style():
    for path in TEMPLATES_DIR.rglob("*.html"):
        text = path.read_text()
        assert "<script" not in text, path
        assert " style=" not in text and "<style" not in text, path


# --- Speed: a fixed number of queries whatever the number of articles ----------------------


def populate(count: int) -> Source:
    source, outlet = SourceFactory(name="Daily Planet"), SourceFactory(name="Gotham Gazette")
    others = [SourceFactory(name=f"Source {n}") for n in range(5)]
    for n in range(count):
        ArticleFactory(
            source=source if n % 2 else others[n % 5],
            cited_source=outlet if n % 3 else None,
            published_at=ago(hours=n + 1),
        )
    return source


def count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code in (200, 400), (url, response.status_code)
    return len(queries)


PAGE_BUDGETS = {
    # url template: max queries (content state for the cache, count, page, filter choices, …)
    "{home}": 5,
    "{home}?page=last": 5,
    "{home}?source=daily-planet&outlet=gotham-gazette&published_after=2000-01-01": 7,
    "{home}?source=nope": 4,
    "{article}": 3,
    "{sources}": 2,
    "{source}": 4,
    "{source}?page=last": 4,
}


@pytest.mark.parametrize("articles", [1, 200])
@pytest.mark.parametrize("url, budget", PAGE_BUDGETS.items())
def test_public_pages_run_a_fixed_small_number_of_queries(
    client, django_assert_max_num_queries, articles, url, budget
):
    source = populate(articles)
    newest = Article.objects.published().newest_first().first()
    url = url.format(home=HOME, article=detail_url(newest), sources=SOURCES, source=source_url(source))
    with django_assert_max_num_queries(budget):
        response = client.get(url)
    assert response.status_code in (200, 400)


def test_query_counts_do_not_grow_with_the_number_of_articles(client):
    """Exactly the same count, not just under a budget: nothing runs per article or per source."""
    source = populate(3)
    newest = Article.objects.published().newest_first().first()
    listing = source_url(source)
    urls = [HOME, f"{HOME}?page=last", detail_url(newest), SOURCES, listing, f"{listing}?page=last"]
    small = [count_queries(client, url) for url in urls]
    for n in range(60):
        ArticleFactory(source=source, published_at=ago(minutes=n))
    newest = Article.objects.published().newest_first().first()
    urls[2] = detail_url(newest)
    assert [count_queries(client, url) for url in urls] == small


def test_listings_do_not_load_article_bodies(client):
    ArticleFactory.create_batch(3)
    for article in client.get(HOME).context["page_obj"]:
        assert {"body", "imported_fields"} <= article.get_deferred_fields()


@pytest.mark.parametrize("words", [1, 229, 230, 231, 461, 2000])
def test_listing_reading_time_matches_the_article_reading_time(words):
    article = ArticleFactory(body=" ".join(["word"] * words))
    listed = for_listing(Article.objects.filter(pk=article.pk)).get()
    assert listed.reading_minutes == article.reading_time_minutes


def test_listing_reading_time_is_an_estimate_within_a_minute_for_paragraphs():
    body = "\n\n".join(" ".join(["word"] * 57) for _ in range(8))  # 456 words, 8 paragraphs
    article = ArticleFactory(body=body)
    listed = for_listing(Article.objects.filter(pk=article.pk)).get()
    assert abs(listed.reading_minutes - article.reading_time_minutes) <= 1


# --- Caching (articles/caching.py applied to these views) -----------------------------------


def test_public_pages_answer_a_repeat_visit_with_304(client):
    article = ArticleFactory()
    for url in (HOME, detail_url(article), SOURCES, source_url(article.source)):
        first = client.get(url)
        assert "public" in first["Cache-Control"], url
        repeat = client.get(url, headers={"If-None-Match": first["ETag"]})
        assert repeat.status_code == 304, url


def test_a_new_article_changes_the_cached_home_page(client):
    ArticleFactory(title="First story")
    assert "First story" in html(client.get(HOME))
    ArticleFactory(title="Second story")
    assert "Second story" in html(client.get(HOME))


# --- Hostile addresses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/articles/a%00b/",
        "/sources/a%00b/",
        "/sources/a%00b/feed/",
        "/articles/a.b/",
        "/?page=%00",
        "/?source=%00",
        "/?outlet=a%00",
        "/?published_after=%00",
        "/?published_before=2024-01-01%00",
    ],
)
def test_nul_bytes_and_odd_characters_never_reach_the_database_as_a_500(client, url):
    """PostgreSQL rejects text with NUL bytes with an error; slugs are matched strictly instead."""
    ArticleFactory()
    assert client.get(url).status_code in (400, 404)


def test_unicode_slugs_resolve(client):
    source = SourceFactory(name="Gazeta Río", slug="gazeta-río")
    article = ArticleFactory(title="Año nuevo", slug="año-nuevo", source=source)
    assert client.get(detail_url(article)).status_code == 200
    assert client.get(source_url(source)).status_code == 200


def test_filter_source_lists_follow_content_changes_at_once(client, settings):
    """The lists are cached on the content state: a new source, or one whose only article goes
    public by the clock, shows in the form on the very next (uncached) page."""
    settings.NEWSROOM_PAGE_CACHE = False  # the page itself re-renders; only the lists are cached
    ArticleFactory(source=SourceFactory(name="Early Source"))
    assert 'value="early-source"' in html(client.get(HOME))
    assert 'value="new-source"' not in html(client.get(HOME))

    ArticleFactory(source=SourceFactory(name="New Source"))
    assert 'value="new-source"' in html(client.get(HOME))

    later = ArticleFactory(source=SourceFactory(name="Later Source"), published_at=timezone.now() + timedelta(hours=1))
    assert 'value="later-source"' not in html(client.get(HOME))
    Article.objects.filter(pk=later.pk).update(published_at=ago(minutes=1))  # no write to any version
    assert 'value="later-source"' in html(client.get(HOME))


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Pacific/Kiritimati"])
def test_dates_at_the_edges_of_the_calendar_never_give_a_500(client, settings, zone):
    """Converting year 1 or 9999 between time zones overflows: they mean "no bound" or are refused."""
    settings.TIME_ZONE = zone
    ArticleFactory(title="Only story")
    search = reverse("articles:search")
    for url in (HOME, f"{search}?q=story&"):
        joiner = "&" if "?" in url else "?"
        everything = client.get(f"{url}{joiner}published_after=0001-01-01&published_before=9999-12-31")
        assert everything.status_code == 200 and "Only story" in html(everything)
        for query in ("published_after=9999-12-31", "published_before=0001-01-01"):
            response = client.get(f"{url}{joiner}{query}")
            assert response.status_code == 400
            assert "Dates must be between the years 1800 and 2999" in html(response)
