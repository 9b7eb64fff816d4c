"""The importer's record in the admin: runs, their files, and the inbox where editors settle conflicts."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from articles import importing
from articles.importing import Choice, conflict_token, resolve_conflicts
from articles.models import Article, ImportConflict, ImportOutcome, ImportRun

from .test_admin import CHANGELIST, change_url, make_editor
from .test_importing import run, seed_text, summary_line, write

pytestmark = pytest.mark.django_db

User = get_user_model()
INBOX = reverse("admin:articles_importconflict_changelist")
RUNS = reverse("admin:articles_importrun_changelist")


def resolve_page(article):
    return reverse("admin:articles_importconflict_resolve", args=[article.pk])


@pytest.fixture
def editor(db):
    return make_editor("eve")


@pytest.fixture
def editor_client(editor):
    client = Client()
    client.force_login(editor)
    return client


def story(**changes):
    values = {"title": "Council approves budget", "paragraphs": ("The council met on Monday.", "It voted.")}
    values.update(changes)
    return seed_text(**values)


@pytest.fixture
def conflicted(tmp_path):
    """An imported article whose title and body an editor changed, then a seed that changes both."""
    write(tmp_path, "budget.txt", story())
    run(tmp_path)
    article = Article.objects.get()
    article.title = "Council approves the 2027 budget"
    article.body = "The council met on Monday evening.\n\nIt voted 7 to 2."
    article.save()
    write(tmp_path, "budget.txt", story(title="Council passes budget", paragraphs=("The council met Monday.", "Vote.")))
    stdout, stderr, status = run(tmp_path)
    assert status == 0, stderr
    assert "conflicts 1" in summary_line(stdout)
    article.refresh_from_db()
    return article


# --- Runs and their files ---------------------------------------------------------------------------


def test_a_run_records_its_counts_and_every_file_that_was_not_unchanged(tmp_path):
    write(tmp_path, "kept.txt", seed_text(title="Kept"))
    run(tmp_path)
    write(tmp_path, "new.txt", seed_text(title="New"))
    write(tmp_path, "copy.txt", seed_text(title="Kept"))  # the same text under another name
    write(tmp_path, "empty.txt", b"")
    stdout, _, status = run(tmp_path, verbosity=0)
    assert status == 1
    first, second = ImportRun.objects.order_by("pk")
    assert (first.created, first.exit_status, first.state) == (1, 0, ImportRun.State.FINISHED)
    assert (second.created, second.unchanged, second.duplicates, second.rejected) == (1, 1, 1, 1)
    assert second.exit_status == 1 and second.finished_at >= second.started_at
    assert second.command == f"manage.py import_seeds {tmp_path}"
    assert second.paths == [str(tmp_path)]
    assert "@" in second.started_by
    outcomes = {(Path_name(o.path), o.outcome, o.article_id is not None) for o in second.outcomes.all()}
    assert outcomes == {("new.txt", "created", True), ("copy.txt", "duplicate", False), ("empty.txt", "rejected", False)}
    assert second.outcomes.get(outcome="rejected").detail == "file is empty"
    assert second.outcomes.get(outcome="created").article == Article.objects.get(title="New")


def Path_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def test_a_dry_run_records_nothing(tmp_path):
    write(tmp_path, "story.txt", seed_text())
    run(tmp_path, dry_run=True)
    assert not ImportRun.objects.exists() and not ImportOutcome.objects.exists()


def test_a_run_that_crashes_is_marked_failed(tmp_path, monkeypatch):
    write(tmp_path, "story.txt", seed_text())

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(importing, "_write_plan", broken)
    with pytest.raises(RuntimeError):
        run(tmp_path)
    failed = ImportRun.objects.get()
    assert failed.state == ImportRun.State.FAILED and failed.exit_status == 1
    assert failed.error == "RuntimeError: disk on fire"


def test_rejections_before_a_failed_batch_are_kept(tmp_path, monkeypatch):
    """A batch the database refuses is retried file by file; outcome rows already waiting survive."""
    write(tmp_path, "a-empty.txt", b"")
    write(tmp_path, "b-story.txt", seed_text())
    real_write = importing._RunRecorder.write
    calls = []

    def fail_first(self, results):
        calls.append(1)
        if len(calls) == 1:
            from django.db import DatabaseError

            raise DatabaseError("simulated")
        return real_write(self, results)

    monkeypatch.setattr(importing._RunRecorder, "write", fail_first)
    run(tmp_path)
    assert sorted(ImportOutcome.objects.values_list("outcome", flat=True)) == ["created", "rejected"]


def test_runs_page_and_a_runs_files_filtered_by_outcome(tmp_path, editor_client, django_assert_max_num_queries):
    write(tmp_path, "good.txt", seed_text())
    write(tmp_path, "bad.txt", b"")
    run(tmp_path)
    import_run = ImportRun.objects.get()
    with django_assert_max_num_queries(8):
        response = editor_client.get(RUNS)
    assert response.status_code == 200
    page = response.content.decode()
    assert str(import_run) in page
    detail = editor_client.get(reverse("admin:articles_importrun_change", args=[import_run.pk])).content.decode()
    rejected_link = f"run__id__exact={import_run.pk}&amp;outcome__exact=rejected"
    assert rejected_link in detail and "1 rejected" in detail
    files = editor_client.get(
        reverse("admin:articles_importoutcome_changelist"),
        {"run__id__exact": import_run.pk, "outcome__exact": "rejected"},
    ).content.decode()
    assert "bad.txt" in files and "good.txt" not in files


def test_runs_are_read_only_even_for_administrators(tmp_path, admin_client):
    """"Add" is the upload page (tests/test_jobs.py); a recorded run itself cannot be edited."""
    write(tmp_path, "good.txt", seed_text())
    run(tmp_path)
    import_run = ImportRun.objects.get()
    response = admin_client.post(reverse("admin:articles_importrun_change", args=[import_run.pk]), {"state": "failed"})
    assert response.status_code == 403
    assert ImportRun.objects.get().state == ImportRun.State.FINISHED


# --- Conflicts -------------------------------------------------------------------------------------------


def test_a_conflict_keeps_the_editors_value_and_waits_with_the_seeds(conflicted):
    conflicts = {c.field: c for c in ImportConflict.objects.filter(article=conflicted)}
    assert set(conflicts) == {"title", "body"}
    assert conflicts["title"].base_value == "Council approves budget"
    assert conflicts["title"].incoming_value == "Council passes budget"
    assert conflicts["body"].incoming_value == "The council met Monday.\n\nVote."
    assert conflicted.title == "Council approves the 2027 budget"  # the editor's, still on the site
    assert ImportRun.objects.latest("pk").outcomes.get().outcome == "conflict"


def test_the_article_list_marks_and_filters_conflicts(conflicted, editor_client, django_assert_max_num_queries):
    other = Article.objects.create(title="Quiet story", slug="quiet", body="Nothing to see.")
    with django_assert_max_num_queries(12):
        response = editor_client.get(CHANGELIST, {"attention": "import_conflict"})
    page = response.content.decode()
    assert resolve_page(conflicted) in page
    assert other.title not in page
    everything = editor_client.get(CHANGELIST).content.decode()
    assert other.title in everything and everything.count('class="import-conflict-marker"') == 1


def test_the_article_form_points_to_the_conflict(conflicted, editor_client):
    page = editor_client.get(change_url(conflicted)).content.decode()
    assert "A newer seed changes fields you edited: Title, Body." in page
    assert resolve_page(conflicted) in page


def test_the_resolve_page_shows_both_sides_and_a_word_diff(conflicted, editor_client):
    response = editor_client.get(resolve_page(conflicted))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Council approves the 2027 budget" in page and "Council passes budget" in page
    assert "<del>approves the 2027</del>" in page and "<ins>passes</ins>" in page
    assert page.count('value="mine"') == 2 and page.count('value="seed"') == 2


def choose(client, article, **choices):
    page = client.get(resolve_page(article)).content.decode()
    data = {f"token_{field}": value for field, value in re.findall(r'name="token_(\w+)" value="(\w+)"', page)}
    data.update({f"choice_{field}": choice for field, choice in choices.items()})
    return client.post(resolve_page(article), data)


def test_round_trip_keep_mine_and_take_the_seeds_then_a_quiet_reimport(conflicted, editor, editor_client, tmp_path):
    version = conflicted.version
    response = choose(editor_client, conflicted, title="mine", body="seed")
    assert response.status_code == 302 and response.url == change_url(conflicted)
    conflicted.refresh_from_db()
    assert conflicted.title == "Council approves the 2027 budget"
    assert conflicted.body == "The council met Monday.\n\nVote."
    assert conflicted.version == version + 1
    assert not ImportConflict.objects.exists()
    revision = conflicted.history.first()
    assert revision.history_user == editor
    assert revision.history_change_reason == (
        "Import conflict resolved: took the seed's body; kept the editor's title"
    )
    stdout, _, _ = run(tmp_path)
    assert summary_line(stdout).startswith("created 0, updated 0, unchanged 1, conflicts 0")
    assert not ImportConflict.objects.exists()
    conflicted.refresh_from_db()
    assert conflicted.title == "Council approves the 2027 budget"


def test_a_field_left_unanswered_stays_in_the_inbox(conflicted, editor_client):
    response = choose(editor_client, conflicted, body="mine")
    assert response.status_code == 302 and response.url == resolve_page(conflicted)
    assert list(ImportConflict.objects.values_list("field", flat=True)) == ["title"]
    assert editor_client.get(INBOX).content.decode().count(resolve_page(conflicted)) == 1


def test_a_newer_seed_replaces_the_pending_value(conflicted, tmp_path):
    write(tmp_path, "budget.txt", story(title="Council adopts budget", paragraphs=("The council met Monday.", "Vote.")))
    run(tmp_path)
    assert ImportConflict.objects.get(field="title").incoming_value == "Council adopts budget"
    assert ImportConflict.objects.filter(article=conflicted).count() == 2


def test_a_seed_that_stops_disagreeing_clears_the_conflict(conflicted, tmp_path):
    write(tmp_path, "budget.txt", story(title="Council approves the 2027 budget", paragraphs=("The council met Monday.", "Vote.")))
    run(tmp_path)
    assert list(ImportConflict.objects.values_list("field", flat=True)) == ["body"]


def test_overwrite_takes_the_seeds_values_and_clears_the_inbox(conflicted, tmp_path):
    run(tmp_path, overwrite=True)
    conflicted.refresh_from_db()
    assert conflicted.title == "Council passes budget"
    assert not ImportConflict.objects.exists()


def test_a_choice_made_on_an_outdated_page_is_refused(conflicted, editor, editor_client, tmp_path):
    page = editor_client.get(resolve_page(conflicted)).content.decode()
    tokens = dict(re.findall(r'name="token_(\w+)" value="(\w+)"', page))
    write(tmp_path, "budget.txt", story(title="Council adopts budget", paragraphs=("The council met Monday.", "Vote.")))
    run(tmp_path)
    response = editor_client.post(
        resolve_page(conflicted), {"choice_title": "seed", **{f"token_{k}": v for k, v in tokens.items()}}, follow=True
    )
    assert "A newer seed changed Title after you opened this page" in response.content.decode()
    conflicted.refresh_from_db()
    assert conflicted.title == "Council approves the 2027 budget"
    assert ImportConflict.objects.filter(field="title").exists()


def test_taking_the_seeds_source_creates_it_like_the_importer(tmp_path, editor):
    write(tmp_path, "budget.txt", story())
    run(tmp_path)
    article = Article.objects.get()
    article.source = None
    article.save()
    write(tmp_path, "budget.txt", seed_text(title="Council approves budget", publisher="Brand New Wire",
                                            paragraphs=("The council met on Monday.", "It voted.")))
    run(tmp_path)
    conflict = ImportConflict.objects.get(field="source")
    resolve_conflicts(article.pk, {"source": Choice.SEED}, tokens={"source": conflict_token(conflict)}, user=editor)
    article.refresh_from_db()
    assert article.source.name == "Brand New Wire"
    assert article.imported_fields["source"] == "Brand New Wire"


@pytest.mark.parametrize(
    "data",
    [{"choice_title": "burn-it"}, {"choice_title": "seed", "token_title": ""}, {}],
    ids=["unknown-choice", "missing-token", "nothing-chosen"],
)
def test_bad_resolve_posts_change_nothing(conflicted, editor_client, data):
    response = editor_client.post(resolve_page(conflicted), data)
    assert response.status_code in (200, 302)
    assert ImportConflict.objects.filter(article=conflicted).count() == 2
    conflicted.refresh_from_db()
    assert conflicted.title == "Council approves the 2027 budget"


def test_resolving_needs_the_right_to_change_articles(conflicted):
    viewer = User.objects.create_user("viv", password="unused-password", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_importconflict", "view_article"]))
    client = Client()
    client.force_login(viewer)
    assert client.get(resolve_page(conflicted)).status_code == 403
    assert client.post(resolve_page(conflicted), {"choice_title": "seed"}).status_code == 403
    assert Client().get(resolve_page(conflicted)).status_code == 302  # to the login page


def test_an_article_without_conflicts_has_no_resolve_page(editor_client):
    article = Article.objects.create(title="Quiet", slug="quiet", body="Text.")
    assert editor_client.get(resolve_page(article)).status_code == 404
    assert editor_client.get("/admin/articles/importconflict/article/999999/resolve/").status_code == 404


def test_conflict_text_is_escaped(tmp_path, editor_client):
    write(tmp_path, "x.txt", story())
    run(tmp_path)
    article = Article.objects.get()
    article.title = "Editor <b>bold</b>"
    article.save()
    write(tmp_path, "x.txt", story(title="<script>alert(1)</script>"))
    run(tmp_path)
    page = editor_client.get(resolve_page(article)).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
