"""The import service and the ``import_seeds`` command, against a real database."""

import os
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from articles import bulk_writes, importing
from articles.importing import Outcome, import_seeds, merge_fields
from articles.models import Article, ContentVersion, Source
from articles.search import search_articles

pytestmark = pytest.mark.django_db

REPO_SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def seed_text(title="A Title", publisher="The Publisher", paragraphs=("First paragraph.", "Second."), outlet="Outlet"):
    lines = [title, "", f"Originally published at: {title} | {publisher}", ""]
    for paragraph in paragraphs:
        lines += [paragraph, ""]
    if outlet:
        lines.append(f"Read the full report at {outlet}.")
    return "\n".join(lines) + "\n"


def write(folder: Path, name: str, text: str | bytes, *, mtime: float | None = None) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def run(*args, **options):
    """Run the command; return (stdout, stderr, exit status)."""
    stdout, stderr = StringIO(), StringIO()
    try:
        call_command("import_seeds", *map(str, args), stdout=stdout, stderr=stderr, **options)
        status = 0
    except CommandError as err:
        status = err.returncode
        stderr.write(str(err))
    return stdout.getvalue(), stderr.getvalue(), status


def summary_line(stdout: str) -> str:
    return stdout.strip().splitlines()[-1]


def test_the_real_seed_imports_with_its_metadata():
    stdout, stderr, status = run(REPO_SEEDS)
    assert status == 0, stderr
    assert summary_line(stdout) == "created 1, updated 0, unchanged 0, conflicts 0, duplicates 0, rejected 0"
    article = Article.objects.get()
    assert article.title == "LIFELINE LOST? Russia Withdraws Key Military Support for Venezuela’s Socialist Regime"
    assert article.source.name == "Sean Hannity"
    assert article.cited_source.name == "Fox News"
    assert len(article.paragraphs) == 8
    assert article.status == Article.Status.PUBLISHED
    assert article.slug == "lifeline-lost-russia-withdraws-key-military-support-for-venezuelas-socialist-regime"
    assert article in Article.objects.published()


def test_first_import_records_provenance_and_a_revision(tmp_path):
    mtime = time.time() - 86400
    path = write(tmp_path, "story-1.txt", seed_text(), mtime=mtime)
    run(tmp_path)
    article = Article.objects.select_related("source", "cited_source").get()
    assert article.seed_identity == "story-1"
    assert len(article.seed_sha256) == 64
    assert article.imported_at is not None
    assert not article.edited_since_import
    assert article.published_at == datetime.fromtimestamp(mtime, tz=UTC)
    assert article.imported_fields == article.seed_field_values()
    assert article.summary == "First paragraph."
    assert (article.source.name, article.cited_source.name) == ("The Publisher", "Outlet")
    assert (article.source.slug, article.cited_source.slug) == ("the-publisher", "outlet")
    revision = article.history.get()
    assert revision.history_type == "+"
    assert revision.history_user.username == "importer"
    assert not revision.history_user.has_usable_password()
    assert path.exists()


def test_reimport_without_changes_leaves_everything_alone(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    run(tmp_path)
    before = Article.objects.values().get()
    version = ContentVersion.current()
    stdout, _, status = run(tmp_path)
    assert status == 0
    assert summary_line(stdout) == "created 0, updated 0, unchanged 1, conflicts 0, duplicates 0, rejected 0"
    assert Article.objects.values().get() == before
    assert Article.history.count() == 1
    assert ContentVersion.current() == version


def test_changed_seed_updates_untouched_fields(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    run(tmp_path)
    original = Article.objects.get()
    write(tmp_path, "a.txt", seed_text(title="A New Title", paragraphs=("New first.", "Second."), publisher="Other"))
    stdout, _, _ = run(tmp_path)
    assert summary_line(stdout) == "created 0, updated 1, unchanged 0, conflicts 0, duplicates 0, rejected 0"
    article = Article.objects.select_related("source").get()
    assert (article.title, article.summary, article.source.name) == ("A New Title", "New first.", "Other")
    assert article.slug == original.slug, "a re-import never changes the address"
    assert article.version == original.version + 1
    assert article.imported_fields == article.seed_field_values()
    assert [h.history_type for h in article.history.all()] == ["~", "+"]


def test_editor_change_is_kept_and_untouched_field_merged_with_conflict_reported(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    run(tmp_path)
    article = Article.objects.get()
    article.title = "Editor's headline"
    article.edited_since_import = True
    article.save()

    write(tmp_path, "a.txt", seed_text(title="Seed's new headline", paragraphs=("Seed's new first.", "Second.")))
    stdout, stderr, status = run(tmp_path)
    assert status == 0
    assert summary_line(stdout) == "created 0, updated 0, unchanged 0, conflicts 1, duplicates 0, rejected 0"
    assert "a.txt: conflict: editor's changes kept for title" in stderr
    article.refresh_from_db()
    assert article.title == "Editor's headline"
    assert article.body.startswith("Seed's new first."), "a field the editor never touched takes the seed's value"

    # Once reported, the same file is not re-reported; --overwrite takes the seed's values deliberately.
    stdout, _, _ = run(tmp_path)
    assert "unchanged 1" in summary_line(stdout)
    stdout, _, _ = run(tmp_path, overwrite=True)
    assert "updated 1" in summary_line(stdout)
    article.refresh_from_db()
    assert article.title == "Seed's new headline"
    assert not article.edited_since_import


def test_editor_change_without_seed_change_to_that_field_is_not_a_conflict(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    run(tmp_path)
    Article.objects.update(summary="An editor's dek")
    write(tmp_path, "a.txt", seed_text(outlet="Another Outlet"))
    stdout, _, _ = run(tmp_path)
    assert "updated 1" in summary_line(stdout)
    article = Article.objects.select_related("cited_source").get()
    assert article.summary == "An editor's dek"
    assert article.cited_source.name == "Another Outlet"


def test_conflict_is_reported_again_when_the_seed_changes_that_field_again(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    run(tmp_path)
    Article.objects.update(title="Editor")
    write(tmp_path, "a.txt", seed_text(title="Seed 2"))
    assert "conflicts 1" in summary_line(run(tmp_path)[0])
    write(tmp_path, "a.txt", seed_text(title="Seed 3"))
    assert "conflicts 1" in summary_line(run(tmp_path)[0])
    assert Article.objects.get().title == "Editor"


@pytest.mark.parametrize(
    ("current", "incoming", "changes", "conflicts"),
    [
        ("base", "base", {}, ()),
        ("base", "seed", {"title": "seed"}, ()),
        ("editor", "base", {}, ()),
        ("editor", "seed", {}, ("title",)),
        ("same", "same", {}, ()),
    ],
    ids=["nobody", "seed-only", "editor-only", "both", "both-same"],
)
def test_merge_rule(current, incoming, changes, conflicts):
    fields = {"summary": "s", "body": "b", "source": None, "cited_source": None}
    merge = merge_fields(
        baseline={"title": "base", **fields},
        current={"title": current, **fields},
        incoming={"title": incoming, **fields},
        overwrite=False,
    )
    assert merge.changes == changes
    assert merge.conflicts == conflicts


def test_scheduled_article_is_hidden_until_its_time(tmp_path):
    future = time.time() + 3600
    write(tmp_path, "later.txt", seed_text(), mtime=future)
    run(tmp_path)
    article = Article.objects.get()
    assert article.is_scheduled
    assert not Article.objects.published().exists()
    assert list(Article.objects.published(now=timezone.now() + timedelta(hours=2))) == [article]


def test_same_content_under_another_name_is_a_duplicate(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    write(tmp_path, "b.txt", seed_text())
    write(tmp_path, "c.txt", seed_text().replace("\n", "\r\n"))
    stdout, _, status = run(tmp_path)
    assert status == 0
    assert summary_line(stdout) == "created 1, updated 0, unchanged 0, conflicts 0, duplicates 2, rejected 0"
    assert "b.txt: duplicate: same text as seed 'a'" in stdout
    # Also against what is already stored, in a later run.
    write(tmp_path / "later", "d.txt", seed_text())
    assert "duplicates 1" in summary_line(run(tmp_path / "later")[0])
    assert Article.objects.count() == 1


def test_dry_run_writes_nothing_and_reports_the_same_summary(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    write(tmp_path, "b.txt", seed_text(title="Other"))
    write(tmp_path, "bad.txt", b"")
    version = ContentVersion.current()
    stdout, stderr, status = run(tmp_path, dry_run=True)
    assert status == 1
    assert "Dry run" in stdout
    assert summary_line(stdout).endswith("created 2, updated 0, unchanged 0, conflicts 0, duplicates 0, rejected 1")
    assert "bad.txt: file is empty" in stderr
    assert not Article.objects.exists()
    assert not Source.objects.exists()
    assert not Article.history.exists()
    assert ContentVersion.current() == version


def test_one_bad_file_among_good_ones(tmp_path):
    write(tmp_path, "1-good.txt", seed_text(title="One"))
    write(tmp_path, "2-bad.txt", b"Title\x00\n\nBody")
    write(tmp_path, "3-good.txt", seed_text(title="Three"))
    stdout, stderr, status = run(tmp_path)
    assert status == 1
    assert summary_line(stdout) == "created 2, updated 0, unchanged 0, conflicts 0, duplicates 0, rejected 1"
    assert f"{tmp_path / '2-bad.txt'}: file contains NUL bytes" in stderr
    assert set(Article.objects.values_list("title", flat=True)) == {"One", "Three"}


def test_rejected_file_never_touches_what_is_stored(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    run(tmp_path)
    before = Article.objects.values().get()
    write(tmp_path, "a.txt", b"")
    _, stderr, status = run(tmp_path)
    assert status == 1 and "a.txt: file is empty" in stderr
    assert Article.objects.values().get() == before


def test_database_failure_in_a_batch_is_retried_file_by_file(tmp_path, monkeypatch):
    for number in range(4):
        write(tmp_path, f"{number}.txt", seed_text(title=f"Story {number}"))
    write(tmp_path, "boom.txt", seed_text(title="Boom"))
    real_insert = bulk_writes.insert_rows

    def failing_insert(model, rows):
        if any(row.get("title") == "Boom" for row in rows):
            raise IntegrityError("simulated constraint failure")
        real_insert(model, rows)

    monkeypatch.setattr(bulk_writes, "insert_rows", failing_insert)
    stdout, stderr, status = run(tmp_path)
    assert status == 1
    assert "boom.txt: database error: simulated constraint failure" in stderr
    assert summary_line(stdout) == "created 4, updated 0, unchanged 0, conflicts 0, duplicates 0, rejected 1"
    assert Article.objects.count() == 4
    assert Article.history.count() == 4
    # The rolled-back batch took its search indexing with it; the retried files are indexed.
    assert sorted(a.title for a in search_articles("story")) == [f"Story {n}" for n in range(4)]
    assert not search_articles("boom").exists()


def test_status_option_sets_new_articles_status(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    run(tmp_path, status="draft")
    assert Article.objects.get().status == Article.Status.DRAFT


def test_unknown_status_is_a_command_error(tmp_path):
    with pytest.raises(CommandError):
        call_command("import_seeds", str(tmp_path), status="bogus", stdout=StringIO(), stderr=StringIO())


def test_only_txt_files_are_read_recursively_and_symlinks_once(tmp_path):
    write(tmp_path, "top.txt", seed_text(title="Top"))
    write(tmp_path / "nested" / "deeper", "inner.TXT", seed_text(title="Inner"))
    write(tmp_path, "notes.md", seed_text(title="Markdown"))
    write(tmp_path, "image.png", b"\x89PNG\x00")
    (tmp_path / "link.txt").symlink_to(tmp_path / "top.txt")
    (tmp_path / "nested" / "loop").symlink_to(tmp_path)  # a folder link back up must not loop
    stdout, stderr, status = run(tmp_path, tmp_path / "top.txt")
    assert status == 0, stderr
    assert summary_line(stdout) == "created 2, updated 0, unchanged 0, conflicts 0, duplicates 0, rejected 0"
    assert set(Article.objects.values_list("title", flat=True)) == {"Top", "Inner"}


def test_named_missing_path_and_non_txt_file_are_rejected(tmp_path):
    write(tmp_path, "notes.md", "hello")
    _, stderr, status = run(tmp_path / "missing", tmp_path / "notes.md")
    assert status == 1
    assert f"{tmp_path / 'missing'}: no such file or folder" in stderr
    assert f"{tmp_path / 'notes.md'}: not a .txt file" in stderr


def test_unreadable_file_is_rejected(tmp_path):
    write(tmp_path, "good.txt", seed_text())
    (tmp_path / "broken.txt").symlink_to(tmp_path / "gone.txt")
    _, stderr, status = run(tmp_path)
    assert status == 1
    assert f"{tmp_path / 'broken.txt'}: cannot read: it is a link to a missing file" in stderr
    assert Article.objects.count() == 1


def test_slugs_are_unique_and_never_changed_by_reimport(tmp_path):
    write(tmp_path, "a.txt", seed_text(title="Same Title", paragraphs=("One.",)))
    write(tmp_path, "b.txt", seed_text(title="Same Title", paragraphs=("Two.",)))
    write(tmp_path, "c.txt", seed_text(title="!!!", paragraphs=("Three.",)))
    write(tmp_path, "d.txt", seed_text(title="Über café 東京", paragraphs=("Four.",)))
    run(tmp_path)
    slugs = dict(Article.objects.values_list("seed_identity", "slug"))
    assert slugs == {"a": "same-title", "b": "same-title-2", "c": "article", "d": "über-café-東京"}
    write(tmp_path, "a.txt", seed_text(title="Renamed", paragraphs=("One.",)))
    run(tmp_path)
    assert Article.objects.get(seed_identity="a").slug == "same-title"


def test_two_files_with_one_name_in_different_folders(tmp_path):
    write(tmp_path / "x", "story.txt", seed_text(title="From x"))
    write(tmp_path / "y", "story.txt", seed_text(title="From y"))
    stdout, stderr, status = run(tmp_path)
    assert status == 1
    assert "story.txt: another file named 'story' was already imported in this run" in stderr
    assert Article.objects.get().title == "From x"


def test_warnings_go_to_stderr_and_the_article_is_still_imported(tmp_path):
    write(tmp_path, "a.txt", "Title\n\nJust body text.\n")
    stdout, stderr, status = run(tmp_path)
    assert status == 0
    assert "a.txt: warning: no “Originally published at” line" in stderr
    assert Article.objects.get().source is None


def test_verbosity_two_lists_every_file_and_zero_only_errors(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    write(tmp_path, "b.txt", "Title only")
    stdout, stderr, _ = run(tmp_path, verbosity=2)
    assert f"{tmp_path / 'a.txt'}: created" in stdout
    stdout, stderr, _ = run(tmp_path, verbosity=0)
    assert "b.txt: no body text" in stderr
    assert "\r" not in stderr, "no progress bar when not on a terminal"


def test_large_run_uses_batches_and_the_parsing_worker(tmp_path, monkeypatch):
    """Several batches, so the worker-process parsing path and batch boundaries are exercised."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # one parsing worker, whatever the machine
    pools = []
    real_context = importing.multiprocessing.get_context

    def get_context(method):
        pools.append(method)
        return real_context(method)

    monkeypatch.setattr(importing.multiprocessing, "get_context", get_context)
    for number in range(23):
        write(tmp_path, f"{number:02d}.txt", seed_text(title=f"Story {number}", paragraphs=(f"Body {number}.",)))
    write(tmp_path, "zz-bad.txt", b"")
    results = []
    summary = import_seeds([tmp_path], batch_size=5, on_result=results.append)
    assert summary.counts[Outcome.CREATED] == 23
    assert summary.rejected == 1
    assert [Path(r.path).name for r in results][:3] == ["00.txt", "01.txt", "02.txt"]
    assert Article.objects.count() == 23
    assert Article.history.count() == 23
    assert pools == ["fork"], "the files were parsed in a worker process"


def test_import_bumps_the_content_version_once_per_batch(tmp_path):
    for number in range(5):
        write(tmp_path, f"{number}.txt", seed_text(title=f"Story {number}", paragraphs=(f"Body {number}.",)))
    before = ContentVersion.current()
    import_seeds([tmp_path], batch_size=2)
    assert ContentVersion.current() == before + 3


def test_copy_of_seeds_folder_default_path(tmp_path, settings):
    shutil.copytree(REPO_SEEDS, tmp_path / "seeds")
    settings.SEEDS_DIR = tmp_path / "seeds"
    stdout, _, status = run()
    assert status == 0 and "created 1" in summary_line(stdout)


def test_import_refreshes_sqlite_planner_statistics(tmp_path):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's autovacuum keeps its own statistics")
    write(tmp_path, "a.txt", seed_text())
    run(tmp_path)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'articles_article'")
        assert cursor.fetchone()[0] > 0


def test_new_slug_never_takes_an_old_address_kept_as_a_redirect(tmp_path):
    """An old address redirects to its article; a new article taking it would hijack those links."""
    from articles.models import SlugRedirect
    from tests.factories import ArticleFactory

    moved = ArticleFactory(title="Moved", slug="moved-now")
    ArticleFactory(title="Same Title", slug="same-title")
    SlugRedirect.objects.create(old_slug="same-title-2", article=moved)
    SlugRedirect.objects.create(old_slug="fresh-title", article=moved)
    write(tmp_path, "a.txt", seed_text(title="Same Title"))
    write(tmp_path, "b.txt", seed_text(title="Fresh Title", paragraphs=("Other.",)))
    run(tmp_path)
    assert Article.objects.get(seed_identity="a").slug == "same-title-3"
    assert Article.objects.get(seed_identity="b").slug == "fresh-title-2"


def test_a_much_used_title_gets_the_first_free_suffix_beyond_one_lookup_window(tmp_path, django_assert_num_queries):
    """Suffixes are looked up by exact value a window at a time; a run of taken ones spanning more
    than a window, a gap, and an old address in the way are all stepped over."""
    from articles.models import SlugRedirect
    from tests.factories import ArticleFactory

    window = importing.SLUG_PROBE_WINDOW
    taken = ["briefing"] + [f"briefing-{n}" for n in range(2, window + 5) if n != window + 3]
    articles = [ArticleFactory(title="Briefing", slug=slug) for slug in taken]
    SlugRedirect.objects.create(old_slug=f"briefing-{window + 6}", article=articles[0])
    for name in "abc":
        write(tmp_path, f"{name}.txt", seed_text(title="Briefing", paragraphs=(f"Edition {name}.",)))
    run(tmp_path)
    slugs = dict(Article.objects.filter(seed_identity__isnull=False).values_list("seed_identity", "slug"))
    assert slugs == {"a": f"briefing-{window + 3}", "b": f"briefing-{window + 5}", "c": f"briefing-{window + 7}"}
    # One lookup per (model, field) for the bases, plus one per (model, field) per window probed.
    with django_assert_num_queries(2 + 2 * 2):
        more = importing._allocate_slugs(["briefing"] * 3, taken_in=[(Article, "slug"), (SlugRedirect, "old_slug")])
    assert more == [f"briefing-{window + n}" for n in (8, 9, 10)]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query planner")
def test_importer_lookups_use_indexes_not_table_scans(tmp_path):
    """Every importer query on articles is answered from an index, once the table has statistics;
    a full scan per batch made large re-imports quadratic."""
    for number in range(2000):
        write(tmp_path, f"{number:04d}.txt", seed_text(title=f"Story {number}", paragraphs=(f"Body {number}.",)))
    import_seeds([tmp_path])  # ends with ANALYZE
    write(tmp_path, "new.txt", seed_text(title="Story 7", paragraphs=("A new take.",)))  # a slug that collides
    write(tmp_path, "0001.txt", seed_text(title="Story 1", paragraphs=("Changed.",)))
    with CaptureQueriesContext(connection) as captured:
        import_seeds([tmp_path], batch_size=200)
    plans = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            sql = query["sql"]
            if sql.startswith(("SELECT", "INSERT", "UPDATE")) and "articles_article" in sql:
                cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
                plans.append((sql[:120], [row[3] for row in cursor.fetchall()]))
    assert len(plans) > 5
    scans = [(sql, plan) for sql, plan in plans if any(re.match(r"SCAN articles_article\b", step) for step in plan)]
    assert not scans


def test_unreadable_folder_is_reported(tmp_path, monkeypatch):
    write(tmp_path, "ok.txt", seed_text())
    locked = tmp_path / "locked"
    write(locked, "hidden.txt", seed_text(title="Hidden"))
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    stdout, stderr, status = run(tmp_path)
    assert status == 1
    assert f"{locked}: cannot read folder: Permission denied" in stderr
    assert "created 1" in summary_line(stdout) and "rejected 1" in summary_line(stdout)


def test_overwrite_restores_seed_values_even_when_the_file_is_unchanged(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    run(tmp_path)
    Article.objects.update(title="Editor's title", edited_since_import=True)
    assert "unchanged 1" in summary_line(run(tmp_path)[0])
    assert "updated 1" in summary_line(run(tmp_path, overwrite=True)[0])
    article = Article.objects.get()
    assert article.title == "A Title" and not article.edited_since_import


def test_overlapping_paths_and_links_import_each_file_once(tmp_path):
    """The same folder twice, a folder inside another, a file inside a named folder, and links to both."""
    seeds = tmp_path / "seeds"
    write(seeds / "sub", "inner.txt", seed_text(title="Inner"))
    write(seeds, "top.txt", seed_text(title="Top"))
    (seeds / "again").symlink_to(seeds / "sub")  # a folder link inside the roots
    (seeds / "top-again.txt").symlink_to(seeds / "top.txt")  # a file link inside the roots
    stdout, stderr, status = run(seeds, seeds, seeds / "sub", seeds / "top.txt", tmp_path / "seeds" / ".." / "seeds")
    assert status == 0, stderr
    assert summary_line(stdout) == "created 2, updated 0, unchanged 0, conflicts 0, duplicates 0, rejected 0"
    assert set(Article.objects.values_list("title", flat=True)) == {"Inner", "Top"}
