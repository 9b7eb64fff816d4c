"""Background jobs through Django's task framework: admin uploads, the watched inbox, periodic tasks,
and an import whose worker is killed.

Tasks are rows of the database backend (django_tasks_db) here, run by the real ``db_worker``
command: in this process for most tests, as a separate process for the ``kill -9`` test.
"""

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from articles import jobs, tasks
from articles.models import Article, ImportRun, TaskSchedule
from bench._common import ROOT, base_env, write_seeds

from .test_admin import make_editor
from .test_concurrency import shared_database_url
from .test_importing import seed_text, write

UPLOAD = reverse("admin:articles_importrun_add")


def run_page(run):
    return reverse("admin:articles_importrun_change", args=[run.pk])


def work_off_the_queue():
    """What ``manage.py db_worker`` does in production: run every task that is due, then stop.

    The worker closes idle connections between tasks; here that would close the test's own
    connection (and its transaction), so that one step is left out.
    """
    with mock.patch("django_tasks_db.management.commands.db_worker.close_old_connections"):
        call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", "--queue-name", "*", verbosity=0)


def queued_tasks(task):
    return list(DBTaskResult.objects.filter(task_path=task.module_path, status="READY"))


def zipped(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def editor_client(db):
    client = Client()
    client.force_login(make_editor("eve"))
    return client


# --- Import from the admin ------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_upload_is_imported_by_a_task_and_its_page_shows_the_result(
    editor_client, settings, django_capture_on_commit_callbacks
):
    files = [
        SimpleUploadedFile("one.txt", seed_text(title="Harbour reopens").encode()),
        SimpleUploadedFile("wire.zip", zipped({"a/two.txt": seed_text(title="Bridge closes"), "bad.txt": "no title"})),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(UPLOAD, {"files": files})
    run = ImportRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run_page(run)
    assert run.state == ImportRun.State.QUEUED and run.started_by == "eve"
    upload_dir = run.upload_dir
    assert os.path.isdir(upload_dir) and upload_dir.startswith(str(settings.NEWSROOM_UPLOAD_DIR))
    [queued] = queued_tasks(tasks.run_import)
    assert queued.args_kwargs["args"] == [run.pk] and run.task_id == str(queued.id)
    waiting = editor_client.get(run_page(run)).content.decode()
    assert "Waiting for a worker" in waiting and 'http-equiv="refresh"' in waiting

    work_off_the_queue()

    run.refresh_from_db()
    assert run.state == ImportRun.State.FINISHED and run.exit_status == 1  # one file was rejected
    assert (run.total_files, run.done_files, run.created, run.rejected) == (3, 3, 2, 1)
    assert set(Article.objects.values_list("title", flat=True)) == {"Harbour reopens", "Bridge closes"}
    assert not os.path.exists(upload_dir)
    page = editor_client.get(run_page(run)).content.decode()
    assert "3 / 3 (100 %)" in page and "2 created" in page and 'http-equiv="refresh"' not in page
    assert "bad.txt" in editor_client.get(reverse("admin:articles_importoutcome_changelist")).content.decode()


@pytest.mark.django_db
def test_a_hostile_upload_is_refused_on_the_form_and_leaves_nothing(editor_client, settings, tmp_path):
    settings.NEWSROOM_UPLOAD_DIR = tmp_path / "uploads"
    traversal = SimpleUploadedFile("evil.zip", zipped({"../../etc/cron.d/x.txt": seed_text()}))
    response = editor_client.post(UPLOAD, {"files": [traversal]})
    assert response.status_code == 200
    assert "evil.zip" in response.content.decode() and "../../etc/cron.d/x.txt" in response.content.decode()
    assert not ImportRun.objects.exists() and not DBTaskResult.objects.exists()
    assert not any(settings.NEWSROOM_UPLOAD_DIR.glob("*"))


@pytest.mark.django_db
def test_an_upload_over_the_size_limit_is_refused(editor_client, settings):
    settings.NEWSROOM_UPLOAD_MAX_BYTES = 1000
    response = editor_client.post(UPLOAD, {"files": [SimpleUploadedFile("big.txt", seed_text().encode() * 20)]})
    assert response.status_code == 200 and "the limit is 1,000" in response.content.decode()
    assert not ImportRun.objects.exists()


@pytest.mark.django_db
def test_staff_without_the_import_permission_cannot_upload(client, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    client.force_login(viewer)
    assert client.get(UPLOAD).status_code == 403
    assert client.post(UPLOAD, {"files": [SimpleUploadedFile("a.txt", seed_text().encode())]}).status_code == 403
    assert not ImportRun.objects.exists()


@pytest.mark.django_db
def test_a_running_import_shows_progress_rate_and_time_left(editor_client):
    started = timezone.now() - timedelta(seconds=10)
    run = ImportRun.objects.create(
        state=ImportRun.State.RUNNING, total_files=1000, done_files=400, created=390, conflicts=10,
        heartbeat_at=started + timedelta(seconds=10),
    )
    ImportRun.objects.filter(pk=run.pk).update(started_at=started)
    page = editor_client.get(run_page(run)).content.decode()
    assert "400 / 1,000 (40 %)" in page
    assert "40 files/s" in page and "about 15 s left" in page  # 600 files to go at 40 a second
    assert "390 created" in page and "10 conflict" in page
    assert 'http-equiv="refresh"' in page


@pytest.mark.django_db
def test_a_duplicate_task_for_a_run_already_taken_does_nothing(tmp_path):
    write(tmp_path, "a.txt", seed_text())
    run = ImportRun.objects.create(state=ImportRun.State.FINISHED, paths=[str(tmp_path)])
    assert tasks.run_import.call(run.pk) == "not queued"
    assert not Article.objects.exists()


@pytest.mark.django_db
def test_a_queued_run_of_a_folder_it_does_not_own_leaves_the_folder(tmp_path, django_capture_on_commit_callbacks):
    write(tmp_path, "a.txt", seed_text(title="Same rules"))
    write(tmp_path, "b.txt", "\n\n")
    with django_capture_on_commit_callbacks(execute=True):
        run = jobs.queue_import(tmp_path, command="test")
    work_off_the_queue()
    run.refresh_from_db()
    assert (run.state, run.created, run.rejected) == (ImportRun.State.FINISHED, 1, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


# --- Killed workers -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_whose_worker_stopped_is_failed_and_resumed(tmp_path, settings, django_capture_on_commit_callbacks):
    settings.NEWSROOM_IMPORT_STALE_SECONDS = 60
    now = timezone.now()
    upload = tmp_path / "upload"
    write(upload, "a.txt", seed_text())
    dead = ImportRun.objects.create(
        state=ImportRun.State.RUNNING, paths=[str(upload)], upload_dir=str(upload), task_id="t1",
        heartbeat_at=now - timedelta(seconds=61),
    )
    alive = ImportRun.objects.create(
        state=ImportRun.State.RUNNING, paths=[str(tmp_path)], task_id="t2", heartbeat_at=now - timedelta(seconds=5)
    )
    from_the_shell = ImportRun.objects.create(state=ImportRun.State.RUNNING, heartbeat_at=now - timedelta(hours=1))

    with django_capture_on_commit_callbacks(execute=True):
        [resumed] = jobs.fail_stale_runs(now=now)

    dead.refresh_from_db()
    assert dead.state == ImportRun.State.FAILED and dead.exit_status == 1
    assert "stopped" in dead.error and f"Resumed as import #{resumed.pk}" in dead.error
    assert dead.upload_dir == "" and resumed.upload_dir == str(upload)  # the folder moves to the new run
    assert resumed.command == f"resume of import #{dead.pk}" and resumed.state == ImportRun.State.QUEUED
    assert [t.args_kwargs["args"] for t in queued_tasks(tasks.run_import)] == [[resumed.pk]]
    alive.refresh_from_db()
    assert alive.state == ImportRun.State.RUNNING
    from_the_shell.refresh_from_db()
    assert from_the_shell.state == ImportRun.State.FAILED  # nothing to resume: the command's user re-runs it
    work_off_the_queue()
    assert Article.objects.count() == 1 and not upload.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_kill_9_mid_import_leaves_whole_batches_and_the_resumed_run_finishes(tmp_path):
    """A real ``db_worker`` process killed with SIGKILL in the middle of an import of 6,000 files."""
    seeds = write_seeds(tmp_path / "seeds", range(6000), seed=7)
    run = jobs.queue_import(seeds, command="kill test")  # outside a transaction: enqueued at once
    env = base_env(shared_database_url(), tmp_path / "var", production=False)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-startup-delay", "--no-reload", "--queue-name", "*"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.done_files:
                break
            time.sleep(0.01)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    run.refresh_from_db()
    assert run.state == ImportRun.State.RUNNING and 0 < run.done_files < 6000, run.done_files
    # Whole batches only: the articles written are exactly those the run's last progress counted.
    assert Article.objects.count() == run.created == run.done_files
    assert run.done_files % 1000 == 0

    [resumed] = jobs.fail_stale_runs(now=timezone.now() + timedelta(hours=1))
    work_off_the_queue()

    run.refresh_from_db()
    resumed.refresh_from_db()
    assert run.state == ImportRun.State.FAILED and f"#{resumed.pk}" in run.error
    assert resumed.state == ImportRun.State.FINISHED and resumed.exit_status == 0
    assert resumed.unchanged == run.created and resumed.created == 6000 - run.created
    assert Article.objects.count() == 6000
    assert Article.history.count() == 6000  # one creation revision each: nothing written twice


# --- The watched inbox ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_inbox_imports_new_and_changed_files_and_quiet_passes_leave_no_run(tmp_path, settings):
    settings.NEWSROOM_INBOX = str(tmp_path)
    write(tmp_path, "a.txt", seed_text(title="First"))
    assert tasks.sweep_inbox.call("token").startswith("created 1")
    assert ImportRun.objects.get().started_by == "inbox"

    assert tasks.sweep_inbox.call("token").startswith("created 0")  # nothing new
    assert ImportRun.objects.count() == 1

    write(tmp_path, "a.txt", seed_text(title="First, updated"))
    write(tmp_path, "b.txt", seed_text(title="Second"))
    tasks.sweep_inbox.call("token")
    assert ImportRun.objects.count() == 2
    assert set(Article.objects.values_list("title", flat=True)) == {"First, updated", "Second"}


@pytest.mark.django_db
def test_the_inbox_leaves_a_file_still_being_written_for_the_next_pass(tmp_path, settings):
    settings.NEWSROOM_INBOX = str(tmp_path)
    settings.NEWSROOM_IMPORT_SETTLE_SECONDS = 30
    path = write(tmp_path, "arriving.txt", seed_text(title="Arriving"))
    jobs.sweep_inbox()
    assert not Article.objects.exists()
    assert ImportRun.objects.get().skipped == 1
    old = time.time() - 60
    os.utime(path, (old, old))
    jobs.sweep_inbox()
    assert Article.objects.get().title == "Arriving"


def test_no_inbox_means_no_inbox_task(settings):
    settings.NEWSROOM_INBOX = ""
    assert "inbox" not in jobs.periodic_intervals()
    assert jobs.sweep_inbox() == "no inbox configured"


# --- Periodic tasks ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_schedule_tasks_starts_each_chain_once(settings, django_capture_on_commit_callbacks):
    settings.NEWSROOM_INBOX = "/nonexistent"
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("schedule_tasks", stdout=out)
        call_command("schedule_tasks", stdout=out)
    assert "housekeeping: scheduled" in out.getvalue() and "housekeeping: already scheduled" in out.getvalue()
    assert len(queued_tasks(tasks.housekeeping)) == 1 and len(queued_tasks(tasks.sweep_inbox)) == 1


@pytest.mark.django_db
def test_a_periodic_run_schedules_the_next_and_a_replaced_chain_stops(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        jobs.ensure_scheduled("housekeeping", interval=10)
    token = TaskSchedule.objects.get(name="housekeeping").token
    with django_capture_on_commit_callbacks(execute=True):
        work_off_the_queue()  # runs housekeeping, which schedules its next run 10 s on
    [next_run] = queued_tasks(tasks.housekeeping)
    assert next_run.args_kwargs["args"] == [token]
    assert timedelta(seconds=8) < next_run.run_after - timezone.now() <= timedelta(seconds=10)

    # The worker holding that chain dies; long after, a new chain starts with a new token.
    TaskSchedule.objects.filter(name="housekeeping").update(next_run_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.ensure_scheduled("housekeeping", interval=10)
    assert TaskSchedule.objects.get(name="housekeeping").token != token
    # A late run of the old chain does not schedule again: one chain stays alive, not two.
    assert not jobs.schedule_next("housekeeping", token, interval=10)


@pytest.mark.django_db
def test_housekeeping_fails_stale_runs(settings):
    settings.NEWSROOM_IMPORT_STALE_SECONDS = 1
    run = ImportRun.objects.create(state=ImportRun.State.RUNNING, heartbeat_at=timezone.now() - timedelta(seconds=5))
    TaskSchedule.objects.create(name="housekeeping", token="abc", next_run_at=timezone.now())
    assert tasks.housekeeping.call("abc") == "0 deliveries queued, 0 stale imports resumed"
    run.refresh_from_db()
    assert run.state == ImportRun.State.FAILED
