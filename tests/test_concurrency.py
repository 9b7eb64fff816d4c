"""An import, public traffic and editors' saves at the same time lose nothing and raise no lock errors.

Real processes against the test database (a file in WAL mode on SQLite, see newsroom/test_settings.py;
the throwaway cluster's test database on PostgreSQL): gunicorn with two workers serving public pages
to bench/loadgen.py, ``manage.py import_seeds`` re-importing and adding articles, and editors in
this process saving articles as the admin does. `make test` runs it on both databases.
"""

import subprocess
import sys
import threading
import time
from io import StringIO
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections

from articles.models import Article
from articles.seeds import parse_seed
from bench._common import LOCK_ERRORS, ROOT, Gunicorn, base_env, save_as_editor, start_load, summarize, write_seeds

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

#: Imported before the run; the concurrent import brings a new version of each.
EXISTING = 200
#: Created by the concurrent import.
NEW = 800
EDITORS = 3
#: Articles each editor keeps re-saving while the import runs.
ARTICLES_PER_EDITOR = 8


def shared_database_url() -> str:
    """A DATABASE_URL for other processes that points at the database this test is using."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    password = f":{quote(params['PASSWORD'], safe='')}" if params["PASSWORD"] else ""
    return f"postgres://{quote(params['USER'], safe='')}{password}@{params['HOST']}:{params['PORT']}/{params['NAME']}"


class Editor(threading.Thread):
    """Re-saves its own articles through the admin's save service until told to stop.

    Only this editor changes these titles, and the import must keep an editor's title, so a form
    that opens with any other title than the one this editor saved last means a save was lost
    (overwritten by a stale write), even if a later save would hide it.
    """

    def __init__(self, number: int, article_ids: list[int], stop: threading.Event, import_running):
        super().__init__(name=f"editor-{number}")
        self.number = number
        self.article_ids = article_ids
        self.stop = stop
        self.import_running = import_running
        self.saved: dict[int, list[str]] = {pk: [] for pk in article_ids}
        self.saves_during_import = 0
        self.conflicts = 0
        self.overwritten: list[tuple[int, str, str]] = []
        self.error: BaseException | None = None

    def run(self):
        try:
            rounds = 0
            while not self.stop.is_set() or rounds == 0:
                for pk in self.article_ids:
                    title = f"Edited by editor {self.number}, round {rounds}, article {pk}"
                    seen, conflicts = save_as_editor(pk, title=title)
                    if self.saved[pk] and seen != self.saved[pk][-1]:
                        self.overwritten.append((pk, self.saved[pk][-1], seen))
                    self.saved[pk].append(title)
                    self.conflicts += conflicts
                    if self.import_running():
                        self.saves_during_import += 1
                rounds += 1
        except BaseException as err:  # reported by the test, with the traceback
            self.error = err
        finally:
            connections.close_all()


def public_paths(slugs: list[str]) -> list[tuple[str, str]]:
    paths = [("home", "/"), ("page", "/?page=2"), ("page", "/?page=9"), ("feed", "/feed/")]
    paths += [("search", "/search/?q=election"), ("search", "/search/?q=council+budget")]
    paths += [("article", f"/articles/{slug}/") for slug in slugs]
    paths += [("missing", "/articles/no-such-article/"), ("missing", "/no/such/page/")]
    return paths


def test_import_traffic_and_editors_at_once(tmp_path):
    first = write_seeds(tmp_path / "first", range(EXISTING), seed=1)
    second = write_seeds(tmp_path / "second", range(EXISTING + NEW), seed=2)
    call_command("import_seeds", str(first), stdout=StringIO(), stderr=StringIO())
    existing = list(Article.objects.filter(seed_identity__isnull=False).order_by("id"))
    assert len(existing) == EXISTING
    edited_ids = [article.id for article in existing[: EDITORS * ARTICLES_PER_EDITOR]]

    env = base_env(shared_database_url(), settings.VAR_DIR, production=False)
    with Gunicorn(env, tmp_path, options=("--workers", "2")) as server:
        server.start()
        load = start_load(
            server.port, public_paths([a.slug for a in existing[:40]]), tmp_path, concurrency=4, duration=300
        )
        importer = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "import_seeds", str(second)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        import_started = time.time()
        stop = threading.Event()
        editors = [
            Editor(n, edited_ids[n::EDITORS], stop, lambda: importer.poll() is None) for n in range(EDITORS)
        ]
        for editor in editors:
            editor.start()
        import_out, import_err = importer.communicate(timeout=240)
        import_finished = time.time()
        stop.set()
        for editor in editors:
            editor.join(timeout=60)
        load.stop()
        traffic = load.result()
        server_log = server.error_text()

    # The import finished cleanly, with the right counts, and nothing was lost on either side.
    assert importer.returncode == 0, import_out + import_err
    assert f"created {NEW}," in import_out, import_out
    assert not LOCK_ERRORS.search(import_err), import_err
    assert Article.objects.filter(seed_identity__startswith="bench_").count() == EXISTING + NEW
    for editor in editors:
        assert editor.error is None, f"{editor.name} failed: {editor.error!r}"
        assert not editor.overwritten, f"saves lost (article, saved, found instead): {editor.overwritten[:5]}"
        assert editor.saves_during_import > 0, "the editors never overlapped the import; the test proves nothing"
    saved = {pk: titles for editor in editors for pk, titles in editor.saved.items()}
    titles_now = dict(Article.objects.filter(pk__in=saved).values_list("pk", "title"))
    assert titles_now == {pk: titles[-1] for pk, titles in saved.items()}, "an editor's last save was overwritten"
    for pk, titles in saved.items():
        recorded = set(Article.history.filter(id=pk).values_list("title", flat=True))
        assert set(titles) <= recorded, f"article {pk}: saves missing from its history"
    bodies_now = dict(Article.objects.filter(seed_identity__startswith="bench_").values_list("seed_identity", "body"))
    for path in sorted(second.iterdir()):
        expected = parse_seed(path.read_bytes(), path)
        assert bodies_now[expected.identity] == expected.body, f"{path.name}: the import's new text was lost"

    # The public site answered every request, during the import too.
    assert not LOCK_ERRORS.search(server_log), server_log[-3000:]
    during = summarize(traffic, since=import_started, until=import_finished)
    assert during["requests"] > 0, "no traffic overlapped the import"
    figures = summarize(traffic)
    samples = traffic["server_error_bodies"] + traffic["connection_errors"]
    assert figures["server_errors"] == 0 and figures["connection_errors"] == 0, (figures["statuses"], samples)
    wrong = [row for row in traffic["requests"] if row[3] != (404 if row[2] == "missing" else 200)]
    assert not wrong, wrong[:10]
