"""The newsroom admin: access, bulk actions, stale saves, addresses, history, query counts, sources."""

from io import StringIO

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from articles.admin import SourceFilter
from articles.importing import import_seeds
from articles.management.commands.setup_roles import EDITOR_GROUP
from articles.models import Article, SlugRedirect, Source
from tests.factories import ArticleFactory, SourceFactory

User = get_user_model()
CHANGELIST = reverse("admin:articles_article_changelist")
SOURCE_CHANGELIST = reverse("admin:articles_source_changelist")

# Fixed query budgets, the same for 1 and for 200 articles (asserted equal below).
CHANGELIST_MAX_QUERIES = 10
CHANGE_FORM_MAX_QUERIES = 8  # 7, plus the pending import conflicts of the article
SOURCE_CHANGELIST_MAX_QUERIES = 6
HISTORY_MAX_QUERIES = 7


def make_editor(username: str) -> User:
    call_command("setup_roles", stdout=StringIO())
    user = User.objects.create_user(username, password="unused-password", is_staff=True)
    user.groups.add(Group.objects.get(name=EDITOR_GROUP))
    return user


@pytest.fixture
def editor(db):
    return make_editor("eve")


@pytest.fixture
def editor_client(editor):
    client = Client()
    client.force_login(editor)
    return client


@pytest.fixture
def other_editor_client(db, editor):
    client = Client()
    client.force_login(make_editor("otto"))
    return client


def change_url(article):
    return reverse("admin:articles_article_change", args=[article.pk])


def form_data(article: Article, **overrides) -> dict:
    """What the change form posts for ``article`` as it is in the database, with ``overrides``."""
    article.refresh_from_db()
    published_at = timezone.localtime(article.published_at)
    data = {
        "title": article.title,
        "slug": article.slug,
        "summary": article.summary,
        "body": article.body,
        "status": article.status,
        "published_at_0": published_at.strftime("%Y-%m-%d"),
        "published_at_1": published_at.strftime("%H:%M:%S"),
        "source": article.source_id or "",
        "cited_source": article.cited_source_id or "",
        "expected_version": article.version,
    }
    data.update(overrides)
    return data


# --- Access --------------------------------------------------------------------------------------


def admin_urls(article):
    return [
        CHANGELIST,
        reverse("admin:articles_article_add"),
        change_url(article),
        reverse("admin:articles_article_history", args=[article.pk]),
        SOURCE_CHANGELIST,
        reverse("admin:articles_source_add"),
        reverse("admin:articles_source_change", args=[article.source_id]),
        reverse("admin:articles_source_history", args=[article.source_id]),
        reverse("admin:articles_article_compare", args=[article.pk]),
        reverse("admin:articles_source_compare", args=[article.source_id]),
        reverse("admin:articles_slugredirect_changelist"),
        reverse("admin:autocomplete") + "?app_label=articles&model_name=article&field_name=source&term=Sean",
    ]


def test_admin_pages_render_for_an_editor(editor_client, article):
    for url in admin_urls(article):
        response = editor_client.get(url)
        assert response.status_code == 200, url


def test_admin_pages_redirect_anonymous_visitors_to_login(client, article):
    for url in admin_urls(article):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url


def test_an_editor_cannot_manage_users_or_delete_articles(editor_client, editor, article):
    assert editor_client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert editor_client.get(reverse("admin:auth_user_add")).status_code == 403
    assert editor_client.get(reverse("admin:auth_group_changelist")).status_code == 403
    assert editor_client.get(reverse("admin:articles_article_delete", args=[article.pk])).status_code == 403
    assert editor.has_perm("articles.change_article") and editor.has_perm("articles.add_source")
    assert not editor.has_perm("auth.add_user") and not editor.has_perm("auth.change_user")


def test_the_changelist_shows_the_columns_an_editor_needs(editor_client):
    ArticleFactory(title="Imported and touched", seed_identity="seed-1", edited_since_import=True)
    response = editor_client.get(CHANGELIST)
    content = response.content.decode()
    for heading in ["Title", "Source", "Status", "Publication time", "Updated", "From seed", "Edited since import"]:
        assert heading in content
    assert "Imported and touched" in content


def test_the_changelist_is_newest_first(editor_client):
    now = timezone.now()
    old = ArticleFactory(published_at=now - timezone.timedelta(days=3))
    new = ArticleFactory(published_at=now - timezone.timedelta(hours=1))
    response = editor_client.get(CHANGELIST)
    assert list(response.context["cl"].result_list) == [new, old]


# --- Filters and search ----------------------------------------------------------------------------


def test_source_filters_and_search_narrow_the_list(editor_client):
    fox, cnn = SourceFactory(name="Fox"), SourceFactory(name="CNN")
    by_fox = ArticleFactory(source=fox, cited_source=cnn)
    by_cnn = ArticleFactory(source=cnn, title="Budget talks")

    def results(query):
        response = editor_client.get(CHANGELIST + query)
        assert response.status_code == 200
        return set(response.context["cl"].result_list)

    assert results(f"?source={fox.pk}") == {by_fox}
    assert results(f"?cited={cnn.pk}") == {by_fox}
    assert results("?q=budget") == {by_cnn}
    assert results("?q=Fox") == {by_fox}  # by source name
    assert results("?status__exact=published&edited_since_import__exact=0") == {by_fox, by_cnn}


def test_the_source_filter_lists_a_few_sources_not_all_of_them(editor_client):
    """Ten thousand sources must not become ten thousand links: the top ones plus the selected one."""
    sources = SourceFactory.create_batch(30)
    for count, source in enumerate(sources, start=1):
        ArticleFactory.create_batch(1 + count // 10, source=source)
    rare = sources[0]
    response = editor_client.get(CHANGELIST + f"?source={rare.pk}")
    source_filter = next(spec for spec in response.context["cl"].filter_specs if isinstance(spec, SourceFilter))
    choices = source_filter.lookup_choices
    assert len(choices) == source_filter.limit + 1
    assert (str(rare.pk), rare.name) in choices


@pytest.mark.parametrize("query", ["?source=abc", "?cited=1;drop", "?status__exact=nonsense&source=x"])
def test_a_malformed_filter_is_refused_not_an_error(editor_client, query):
    response = editor_client.get(CHANGELIST + query)
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


# --- Bulk actions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action, before, after",
    [
        ("publish", Article.Status.DRAFT, Article.Status.PUBLISHED),
        ("unpublish", Article.Status.PUBLISHED, Article.Status.DRAFT),
        ("archive", Article.Status.PUBLISHED, Article.Status.ARCHIVED),
    ],
)
def test_each_bulk_action_changes_status_and_logs_it(editor_client, editor, action, before, after):
    chosen = ArticleFactory.create_batch(3, status=before)
    already = ArticleFactory(status=after)
    untouched = ArticleFactory(status=before)
    selected = [*chosen, already]

    response = editor_client.post(
        CHANGELIST, {"action": action, "_selected_action": [a.pk for a in selected]}, follow=True
    )

    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any(f"3 articles set to {after.label.lower()}" in m and "1 was already" in m for m in messages)
    for article in chosen:
        article.refresh_from_db()
        assert article.status == after
        assert article.version == 2
        latest = article.history.first()
        assert (latest.status, latest.history_user, latest.history_type) == (after, editor, "~")
        entry = LogEntry.objects.get(object_id=str(article.pk), user=editor)
        assert entry.action_flag == CHANGE and "Status" in entry.get_change_message()
    already.refresh_from_db()
    untouched.refresh_from_db()
    assert already.version == 1 and untouched.status == before
    assert not LogEntry.objects.filter(object_id__in=[str(already.pk), str(untouched.pk)]).exists()


def test_bulk_actions_need_the_change_permission(db, article):
    viewer = User.objects.create_user("viewer", password="unused-password", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_article"))
    client = Client()
    client.force_login(viewer)
    assert client.get(CHANGELIST).status_code == 200
    response = client.post(CHANGELIST, {"action": "archive", "_selected_action": [article.pk]})
    assert response.status_code == 200  # the changelist again: the action does not exist for a viewer
    article.refresh_from_db()
    assert article.status == Article.Status.PUBLISHED


# --- Editing, provenance and stale saves -------------------------------------------------------------


def test_saving_marks_an_imported_article_as_edited_and_keeps_provenance_read_only(editor_client, editor):
    imported_at = timezone.now() - timezone.timedelta(days=1)
    article = ArticleFactory(
        seed_identity="storm-warning", seed_sha256="a" * 64, imported_at=imported_at, imported_fields={"title": "x"}
    )
    page = editor_client.get(change_url(article)).content.decode()
    assert "storm-warning" in page and "a" * 64 in page
    assert 'name="seed_identity"' not in page

    response = editor_client.post(
        change_url(article), form_data(article, title="Storm warning, updated", seed_identity="hijacked")
    )

    assert response.status_code == 302
    article.refresh_from_db()
    assert article.title == "Storm warning, updated"
    assert (article.seed_identity, article.seed_sha256, article.imported_at) == ("storm-warning", "a" * 64, imported_at)
    assert article.imported_fields == {"title": "x"}
    assert article.edited_since_import is True
    assert article.version == 2
    assert article.history.first().history_user == editor


def test_line_breaks_from_the_browser_are_stored_as_newlines(editor_client, article):
    """Browsers post textareas with CRLF; stored text keeps LF so paragraphs still split."""
    editor_client.post(
        change_url(article), form_data(article, summary="One.\r\nTwo.", body="First.\r\n\r\nSecond.\rThird.")
    )
    article.refresh_from_db()
    assert (article.summary, article.body) == ("One.\nTwo.", "First.\n\nSecond.\nThird.")
    assert article.paragraphs == ["First.", "Second.\nThird."]


def test_saving_an_article_written_here_does_not_claim_it_was_imported(editor_client, article):
    editor_client.post(change_url(article), form_data(article, summary="New dek."))
    article.refresh_from_db()
    assert article.summary == "New dek." and article.edited_since_import is False


def test_an_untouched_publication_time_keeps_its_precision_and_a_new_one_is_saved(editor_client, article):
    """The admin widget shows whole seconds; saving must neither drop microseconds nor ignore a change."""
    original = article.published_at
    assert original.microsecond
    editor_client.post(change_url(article), form_data(article, summary="Touched."))
    article.refresh_from_db()
    assert article.published_at == original
    editor_client.post(change_url(article), form_data(article, published_at_0="2026-01-02", published_at_1="09:30:00"))
    article.refresh_from_db()
    assert timezone.localtime(article.published_at).strftime("%Y-%m-%d %H:%M:%S.%f") == "2026-01-02 09:30:00.000000"


def test_the_change_form_carries_the_version_it_was_opened_at(editor_client, article):
    response = editor_client.get(change_url(article))
    assert '<input type="hidden" name="expected_version" value="1"' in response.content.decode()


def test_a_stale_save_is_refused_with_the_other_change_and_keeps_the_text(editor_client, other_editor_client, article):
    """Eve opens the article, Otto saves a new title, then Eve saves her body: hers must not win silently."""
    opened = form_data(article)
    assert other_editor_client.post(change_url(article), form_data(article, title="Otto's title")).status_code == 302

    mine = {**opened, "body": "Eve's unsaved paragraph.\n\nAnd another."}
    response = editor_client.post(change_url(article), mine)

    assert response.status_code == 200
    content = response.content.decode()
    assert "otto saved this article at" in content
    assert "changed: Title" in content
    assert "otto changed this to: Otto&#x27;s title" in content
    assert "Eve&#x27;s unsaved paragraph." in content  # her text is still in the form
    article.refresh_from_db()
    assert (article.title, article.version) == ("Otto's title", 2)
    assert "Eve" not in article.body
    # Having seen Otto's change, saving again deliberately replaces it.
    form = response.context["adminform"].form
    assert form["expected_version"].value() == 2
    assert editor_client.post(change_url(article), {**mine, "expected_version": 2}).status_code == 302
    article.refresh_from_db()
    assert (article.title, article.body, article.version) == (opened["title"], mine["body"], 3)


def write_seed(folder, name: str, title: str, body: str) -> None:
    text = f"{title}\n\nOriginally published at: {title} | Fox\n\n{body}\n\nRead the full report at CNN.\n"
    (folder / f"{name}.txt").write_text(text, encoding="utf-8")


def test_an_import_after_the_form_was_opened_makes_it_stale_and_is_named(editor_client, tmp_path):
    """Imports are revisions by the "importer" account: the conflict and the history both say so."""
    write_seed(tmp_path, "council", "Council meets", "The council met.")
    import_seeds([tmp_path])
    article = Article.objects.get(seed_identity="council")
    opened = form_data(article)

    write_seed(tmp_path, "council", "Council meets", "The council met late into the night.")
    import_seeds([tmp_path])
    response = editor_client.post(change_url(article), {**opened, "title": "Council meets again"})

    content = response.content.decode()
    assert "importer saved this article at" in content and "changed: Summary, Body." in content
    article.refresh_from_db()
    assert (article.title, article.body) == ("Council meets", "The council met late into the night.")
    history = editor_client.get(reverse("admin:articles_article_history", args=[article.pk])).content.decode()
    assert history.count("importer") >= 2


def test_a_bulk_action_after_the_form_was_opened_makes_it_stale(editor_client, other_editor_client, article):
    opened = form_data(article)
    other_editor_client.post(CHANGELIST, {"action": "archive", "_selected_action": [article.pk]})
    response = editor_client.post(change_url(article), {**opened, "title": "Too late"})
    assert response.status_code == 200
    assert "otto saved this article" in response.content.decode()
    article.refresh_from_db()
    assert article.status == Article.Status.ARCHIVED and article.title != "Too late"


@pytest.mark.parametrize("version", ["", "not-a-number"])
def test_a_form_without_a_usable_version_is_refused(editor_client, article, version):
    response = editor_client.post(change_url(article), form_data(article, title="Changed", expected_version=version))
    assert response.status_code == 200
    article.refresh_from_db()
    assert article.title != "Changed"


# --- Addresses -------------------------------------------------------------------------------------


def test_a_new_article_gets_its_slug_prefilled_from_the_title(editor_client):
    response = editor_client.get(reverse("admin:articles_article_add"))
    prepopulated = response.context["adminform"].prepopulated_fields
    assert [(p["field"].name, [d.name for d in p["dependencies"]]) for p in prepopulated] == [("slug", ["title"])]


def test_an_existing_articles_slug_does_not_follow_its_title(editor_client, article):
    response = editor_client.get(change_url(article))
    assert response.context["adminform"].prepopulated_fields == []


def test_a_published_slug_changes_only_deliberately_and_the_old_address_redirects(editor_client, client, article):
    old_slug = article.slug
    form = editor_client.get(change_url(article)).context["adminform"].form
    assert "change_slug" in form.fields
    assert 'readonly data-slug-lock="change_slug"' in str(form["slug"])

    refused = editor_client.post(change_url(article), form_data(article, slug="a-new-address"))
    assert refused.status_code == 200
    assert "tick “Change the address”" in refused.content.decode()
    article.refresh_from_db()
    assert article.slug == old_slug and not SlugRedirect.objects.exists()

    saved = editor_client.post(change_url(article), form_data(article, slug="a-new-address", change_slug="on"))
    assert saved.status_code == 302
    article.refresh_from_db()
    assert article.slug == "a-new-address"
    assert SlugRedirect.objects.get(old_slug=old_slug).article == article

    response = client.get(reverse("articles:article_detail", kwargs={"slug": old_slug}))
    assert response.status_code == 301
    assert response["Location"] == article.get_absolute_url()


def test_a_drafts_slug_changes_freely_without_a_redirect(editor_client):
    draft = ArticleFactory(status=Article.Status.DRAFT)
    assert 'name="change_slug"' not in editor_client.get(change_url(draft)).content.decode()
    assert editor_client.post(change_url(draft), form_data(draft, slug="better-slug")).status_code == 302
    draft.refresh_from_db()
    assert draft.slug == "better-slug" and not SlugRedirect.objects.exists()


def test_a_slug_that_is_another_articles_old_address_is_refused(editor_client, article):
    other = ArticleFactory(status=Article.Status.DRAFT)
    SlugRedirect.objects.create(old_slug="taken-before", article=article)
    response = editor_client.post(change_url(other), form_data(other, slug="taken-before"))
    assert response.status_code == 200
    assert "is an old address of another article" in response.content.decode()


def test_view_on_site_previews_a_draft_for_staff_only(editor_client, client):
    draft = ArticleFactory(status=Article.Status.DRAFT, title="Embargoed story")
    page = editor_client.get(change_url(draft)).content.decode()
    assert reverse("admin:view_on_site", args=[_content_type_id(), draft.pk]) in page
    preview = editor_client.get(draft.get_absolute_url())
    assert preview.status_code == 200 and "Embargoed story" in preview.content.decode()
    assert "no-store" in preview["Cache-Control"]
    assert client.get(draft.get_absolute_url()).status_code == 404


def _content_type_id():
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(Article).pk


# --- History -------------------------------------------------------------------------------------


def test_history_shows_who_changed_what_and_restores_an_old_revision(editor_client, editor, article):
    original_title = article.title
    editor_client.post(change_url(article), form_data(article, title="A worse title"))
    article.refresh_from_db()
    assert article.history.count() == 2

    history = editor_client.get(reverse("admin:articles_article_history", args=[article.pk]))
    content = history.content.decode()
    assert "eve" in content
    assert f"{original_title}" in content and "A worse title" in content  # the diff old → new

    first = article.history.last()
    revert_url = reverse("admin:articles_article_simple_history", args=[article.pk, first.history_id])
    form_page = editor_client.get(revert_url)
    assert form_page.status_code == 200
    assert '<input type="hidden" name="expected_version" value="2"' in form_page.content.decode()

    response = editor_client.post(revert_url, form_data(article, title=first.title))
    assert response.status_code == 302
    article.refresh_from_db()
    assert (article.title, article.version) == (original_title, 3)
    assert article.history.first().history_user == editor


def test_restoring_an_old_revision_keeps_the_current_import_provenance(editor_client):
    article = ArticleFactory(seed_identity="s-1", seed_sha256="1" * 64, imported_fields={"title": "v1"})
    first = article.history.first()
    # A re-import after that revision: new hash and baseline, recorded as a new revision.
    article.seed_sha256, article.imported_fields, article.version = "2" * 64, {"title": "v2"}, 2
    article.save()
    revert_url = reverse("admin:articles_article_simple_history", args=[article.pk, first.history_id])
    assert editor_client.post(revert_url, form_data(article)).status_code == 302
    article.refresh_from_db()
    assert (article.seed_sha256, article.imported_fields, article.version) == ("2" * 64, {"title": "v2"}, 3)
    assert article.history.first().seed_sha256 == "2" * 64  # the revision of the revert, too


def test_a_revert_from_a_stale_form_is_refused(editor_client, other_editor_client, article):
    first = article.history.first()
    revert_url = reverse("admin:articles_article_simple_history", args=[article.pk, first.history_id])
    opened = form_data(article)
    other_editor_client.post(change_url(article), form_data(article, title="Newer"))
    response = editor_client.post(revert_url, opened)
    assert response.status_code == 200
    article.refresh_from_db()
    assert article.title == "Newer"


def test_two_revisions_compare_as_a_word_diff_with_text_escaped(editor_client, article):
    editor_client.post(change_url(article), form_data(article, title="Mayor <b>resigns</b> today"))
    editor_client.post(change_url(article), form_data(article, body="One new paragraph."))
    first, second, third = article.history.order_by("history_date")
    compare = reverse("admin:articles_article_compare", args=[article.pk])

    history = editor_client.get(reverse("admin:articles_article_history", args=[article.pk])).content.decode()
    assert f'action="{compare}" id="compare-revisions"' in history
    assert f'name="older" value="{second.pk}" form="compare-revisions" checked' in history
    assert f"{compare}?newer={third.pk}" in history and f"{compare}?newer={first.pk}" not in history

    newest = editor_client.get(compare).content.decode()  # the newest revision against the one before
    assert '<th scope="row">Body</th>' in newest and "<ins>One</ins> <del>paragraph" in newest
    assert '<th scope="row">Title</th>' not in newest
    assert '<th scope="row">Publication time</th>' not in newest  # unchanged: no sub-second noise

    # Chosen in either order, older first; the title is a word diff with the markup escaped.
    response = editor_client.get(compare, {"older": third.pk, "newer": first.pk})
    content = response.content.decode()
    assert response.context["older"] == first and response.context["newer"] == third
    assert "<ins>&lt;b&gt;resigns&lt;/b&gt;</ins>" in content
    assert "<b>resigns" not in content


@pytest.mark.parametrize("query", [{"older": "abc"}, {"newer": 999999}, {"older": "other-article"}])
def test_comparing_unknown_revisions_is_a_404(editor_client, article, query):
    if query.get("older") == "other-article":
        query = {"older": ArticleFactory().history.first().pk}
    response = editor_client.get(reverse("admin:articles_article_compare", args=[article.pk]), query)
    assert response.status_code == 404


def test_comparing_the_revisions_of_a_missing_article_is_a_404(editor_client):
    assert editor_client.get(reverse("admin:articles_article_compare", args=[424242])).status_code == 404


# --- Query counts ----------------------------------------------------------------------------------


def _many(count: int) -> None:
    sources = SourceFactory.create_batch(count)
    for index in range(count):
        ArticleFactory(source=sources[index], cited_source=sources[-index - 1])


def _assert_flat(client, url, grow, limit, django_assert_max_num_queries):
    client.get(url)  # warm per-process caches (content types) so both counts compare like with like
    with django_assert_max_num_queries(limit) as small:
        assert client.get(url).status_code == 200
    grow()
    with django_assert_max_num_queries(limit) as large:
        assert client.get(url).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)


@pytest.mark.parametrize(
    "query", ["", "?q=article", f"?status__exact=published&edited_since_import__exact=0", "?published_at__year=2026"]
)
def test_the_changelist_runs_the_same_queries_for_1_and_200_articles(
    editor_client, article, django_assert_max_num_queries, query
):
    _assert_flat(editor_client, CHANGELIST + query, lambda: _many(199), CHANGELIST_MAX_QUERIES, django_assert_max_num_queries)


def test_the_change_form_runs_the_same_queries_for_1_and_200_articles(
    editor_client, django_assert_max_num_queries
):
    article = ArticleFactory(cited_source=SourceFactory())
    _assert_flat(editor_client, change_url(article), lambda: _many(199), CHANGE_FORM_MAX_QUERIES, django_assert_max_num_queries)


def test_the_source_list_runs_the_same_queries_for_1_and_200_sources(
    editor_client, article, django_assert_max_num_queries
):
    _assert_flat(editor_client, SOURCE_CHANGELIST, lambda: _many(199), SOURCE_CHANGELIST_MAX_QUERIES, django_assert_max_num_queries)


def test_the_history_page_runs_the_same_queries_for_2_and_30_revisions(
    editor_client, other_editor_client, article, django_assert_max_num_queries
):
    """Each revision's changes are diffed on the page, sources included, without a query per row."""

    def more_revisions():
        for number in range(28):
            client = editor_client if number % 2 else other_editor_client
            new_sources = {"source": SourceFactory().pk, "cited_source": SourceFactory().pk}
            client.post(change_url(article), form_data(article, title=f"Take {number}", **new_sources))

    editor_client.post(change_url(article), form_data(article, title="Second take"))
    url = reverse("admin:articles_article_history", args=[article.pk])
    _assert_flat(editor_client, url, more_revisions, HISTORY_MAX_QUERIES, django_assert_max_num_queries)
    assert article.history.count() == 30


# --- Sources ---------------------------------------------------------------------------------------


def test_the_source_list_counts_articles_and_links_to_them(editor_client):
    fox = SourceFactory(name="Fox")
    ArticleFactory.create_batch(3, source=fox)
    ArticleFactory(cited_source=fox)
    SourceFactory(name="Unused")
    response = editor_client.get(SOURCE_CHANGELIST + "?q=fox")
    rows = {source.name: (source.article_count, source.cited_count) for source in response.context["cl"].result_list}
    assert rows == {"Fox": (3, 1)}
    content = response.content.decode()
    assert f'href="{CHANGELIST}?source={fox.pk}">3</a>' in content
    assert f'href="{CHANGELIST}?cited={fox.pk}">1</a>' in content


def test_deleting_a_source_with_articles_is_refused_with_a_clear_message(admin_client, article):
    source = article.source
    url = reverse("admin:articles_source_delete", args=[source.pk])
    page = admin_client.get(url)
    assert "Sean Hannity: 1 article(s) published by it and 0 citing it. Reassign or delete them first" in (
        page.content.decode()
    )
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 200
    assert Source.objects.filter(pk=source.pk).exists() and Article.objects.filter(pk=article.pk).exists()


def test_bulk_deleting_sources_refuses_those_in_use_and_deletes_nothing(admin_client, article):
    unused = SourceFactory(name="Unused")
    cited = SourceFactory(name="Cited only")
    ArticleFactory(cited_source=cited)
    response = admin_client.post(
        SOURCE_CHANGELIST,
        {"action": "delete_selected", "_selected_action": [article.source_id, unused.pk, cited.pk], "post": "yes"},
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert "Sean Hannity: 1 article(s)" in content and "Cited only: 0 article(s) published by it and 1 citing it" in content
    assert "Unused:" not in content
    assert Source.objects.filter(pk__in=[article.source_id, unused.pk, cited.pk]).count() == 3


def test_a_source_without_articles_can_be_deleted(admin_client):
    unused = SourceFactory(name="Unused")
    response = admin_client.post(reverse("admin:articles_source_delete", args=[unused.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Source.objects.filter(pk=unused.pk).exists()


# --- Roles -----------------------------------------------------------------------------------------


def test_setup_roles_is_idempotent_and_resets_the_editor_permissions(db):
    out = StringIO()
    call_command("setup_roles", stdout=out)
    assert "Created the 'Editor' group with 13 permissions." in out.getvalue()
    group = Group.objects.get(name=EDITOR_GROUP)
    granted = set(group.permissions.values_list("codename", flat=True))
    assert {"change_article", "add_source", "view_historicalarticle", "view_importrun", "view_importconflict"} <= granted
    assert not {"delete_article", "delete_source", "add_user", "change_user", "change_group"} & granted

    group.permissions.add(Permission.objects.get(codename="add_user"))
    group.permissions.remove(Permission.objects.get(codename="change_article"))
    out = StringIO()
    call_command("setup_roles", stdout=out)
    assert "1 permissions added, 1 removed" in out.getvalue()
    assert set(group.permissions.values_list("codename", flat=True)) == granted

    out = StringIO()
    call_command("setup_roles", stdout=out)
    assert "up to date" in out.getvalue()
    assert Group.objects.filter(name=EDITOR_GROUP).count() == 1


def test_setup_roles_refuses_to_run_before_the_permissions_exist(db):
    Permission.objects.filter(codename="view_historicalsource").delete()
    with pytest.raises(CommandError, match=r"articles\.view_historicalsource.*migrate"):
        call_command("setup_roles", stdout=StringIO())
    assert not Group.objects.filter(name=EDITOR_GROUP).exists()


def test_a_blank_summary_defaults_to_the_start_of_the_first_paragraph(editor_client):
    """As for imported articles, so listings, feeds and the page description are never blank."""
    response = editor_client.post(
        reverse("admin:articles_article_add"),
        {
            "title": "Written in the admin",
            "slug": "written-in-the-admin",
            "summary": "",
            "body": "The opening paragraph.\r\n\r\nThe second one.",
            "status": Article.Status.DRAFT,
            "published_at_0": "2026-01-02",
            "published_at_1": "10:00:00",
            "source": "",
            "cited_source": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    article = Article.objects.get(slug="written-in-the-admin")
    assert article.summary == "The opening paragraph."
    assert article.body == "The opening paragraph.\n\nThe second one."


@pytest.mark.parametrize(
    "query",
    ["source=99999999999999999999999", "source=-1", "cited=0", "source=abc", "q=%00", "q=a%00b", "q=%F0%9F%99%82"],
)
def test_bad_changelist_parameters_never_give_a_server_error(editor_client, article, query):
    """Hand-edited URLs: a filter the database cannot compare, NUL bytes PostgreSQL refuses, emoji."""
    response = editor_client.get(reverse("admin:articles_article_changelist") + "?" + query)
    assert response.status_code in (200, 302)


def test_source_search_tolerates_nul_bytes(editor_client):
    response = editor_client.get(reverse("admin:articles_source_changelist") + "?q=fox%00news")
    assert response.status_code == 200
