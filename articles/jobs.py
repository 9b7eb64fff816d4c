"""Background work: imports queued from the admin, the watched inbox, stale runs, periodic tasks.

The task functions in ``articles.tasks`` only call these. Everything here runs through Django's
task framework (``django_tasks``), whichever backend is configured; nothing loops or sleeps.

* **Queued imports.** An upload is unpacked into its own folder, an ``ImportRun`` is created in the
  *queued* state and a task imports the folder with the same service as the command. The run's page
  shows the progress the service records after every batch.
* **Killed workers.** Batches are written in transactions, so a worker killed with ``kill -9``
  leaves whole batches, never half of one. Its run stops showing progress; :func:`fail_stale_runs`
  marks it failed and queues a new run of the same files, which finishes the job (files already
  imported are unchanged the second time).
* **Periodic tasks** schedule their own next run with ``run_after``; :class:`~articles.models.TaskSchedule`
  keeps exactly one chain of each alive (see :func:`schedule_next`).
"""

from __future__ import annotations

import secrets
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import tasks
from .importing import import_seeds
from .models import ImportRun, TaskSchedule
from .seed_files import iter_seed_files


# --- Queued imports -----------------------------------------------------------------------------------


def queue_import(folder: Path, *, user=None, command: str, owns_folder: bool = False) -> ImportRun:
    """Create a queued run of ``folder`` and a task to import it once this transaction commits.

    ``owns_folder``: the folder was made for this run (an upload) and is removed when it ends.
    """
    run = ImportRun.objects.create(
        state=ImportRun.State.QUEUED,
        command=command,
        started_by=user.get_username() if user else "",
        user=user,
        paths=[str(folder)],
        upload_dir=str(folder) if owns_folder else "",
    )
    transaction.on_commit(lambda: _enqueue_run(run.pk))
    return run


def _enqueue_run(run_id: int) -> None:
    result = tasks.run_import.enqueue(run_id)
    ImportRun.objects.filter(pk=run_id).update(task_id=str(result.id)[:64])


def run_queued_import(run_id: int) -> str:
    """Import a queued run's folder; a run already started or finished is left alone (a duplicate task)."""
    claimed = ImportRun.objects.filter(pk=run_id, state=ImportRun.State.QUEUED).update(
        state=ImportRun.State.RUNNING, heartbeat_at=timezone.now()
    )
    if not claimed:
        return "not queued"
    run = ImportRun.objects.get(pk=run_id)
    run.total_files = sum(1 for _ in iter_seed_files(run.paths))
    run.save(update_fields=["total_files"])
    try:
        # An upload's files were written by us and closed: nothing is still being written.
        summary = import_seeds(run.paths, run=run, settle_seconds=0 if run.upload_dir else None)
    finally:
        if run.upload_dir:
            shutil.rmtree(run.upload_dir, ignore_errors=True)
    return summary.line()


def fail_stale_runs(*, now=None) -> list[ImportRun]:
    """Mark failed every running import whose worker stopped; queue a new run of the same files.

    A run is stale when it has shown no progress for ``NEWSROOM_IMPORT_STALE_SECONDS`` (every
    batch shows progress, so a live run never is). Returns the new runs.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.NEWSROOM_IMPORT_STALE_SECONDS)
    resumed = []
    with transaction.atomic():
        stale = ImportRun.objects.select_for_update().filter(state=ImportRun.State.RUNNING, heartbeat_at__lt=cutoff)
        for run in stale:
            run.state = ImportRun.State.FAILED
            run.exit_status = 1
            run.finished_at = now
            run.error = (
                f"The worker running this import stopped (no progress since {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC). "
                "Files written before then are kept in whole batches."
            )
            if run.task_id or run.upload_dir:  # it ran as a task: finish the job in a new run
                folder = Path(run.upload_dir or run.paths[0])
                new_run = queue_import(
                    folder, user=run.user, command=f"resume of import #{run.pk}", owns_folder=bool(run.upload_dir)
                )
                run.upload_dir = ""  # the folder now belongs to the new run
                run.error += f" Resumed as import #{new_run.pk}."
                resumed.append(new_run)
            run.save()
    return resumed


# --- The watched inbox ------------------------------------------------------------------------------


def sweep_inbox() -> str:
    """Import new and changed files from ``NEWSROOM_INBOX``; files still being written wait for the next pass.

    A pass that changes nothing leaves no run in the log.
    """
    inbox = settings.NEWSROOM_INBOX
    if not inbox:
        return "no inbox configured"
    summary = import_seeds([inbox], command=f"inbox {inbox}", started_by="inbox", keep_quiet_run=False)
    return summary.line()


# --- Periodic tasks -----------------------------------------------------------------------------------


def ensure_scheduled(name: str, *, interval: float) -> bool:
    """Start the chain of periodic task ``name`` unless a live one is scheduled; True if it started one.

    A chain is live while its next run is due no more than three intervals ago: a busy worker may
    run it late, but a chain lost with a killed worker is restarted.
    """
    now = timezone.now()
    with transaction.atomic():
        schedule = TaskSchedule.objects.select_for_update().filter(name=name).first()
        if schedule and schedule.next_run_at >= now - timedelta(seconds=3 * interval):
            return False
        token = secrets.token_hex(8)
        TaskSchedule.objects.update_or_create(name=name, defaults={"token": token, "next_run_at": now})
        transaction.on_commit(lambda: _periodic_task(name).enqueue(token))
    return True


def schedule_next(name: str, token: str, *, interval: float) -> bool:
    """Called at the end of a periodic run: schedule the next one, unless this chain was replaced."""
    run_after = timezone.now() + timedelta(seconds=interval)
    with transaction.atomic():
        updated = TaskSchedule.objects.filter(name=name, token=token).update(next_run_at=run_after)
        if updated:
            transaction.on_commit(lambda: _periodic_task(name).using(run_after=run_after).enqueue(token))
    return bool(updated)


def _periodic_task(name: str):
    return {"housekeeping": tasks.housekeeping, "inbox": tasks.sweep_inbox}[name]


def periodic_intervals() -> dict[str, float]:
    """Which periodic tasks this site runs, and how often."""
    intervals = {"housekeeping": settings.NEWSROOM_WEBHOOK_INTERVAL}
    if settings.NEWSROOM_INBOX:
        intervals["inbox"] = settings.NEWSROOM_INBOX_INTERVAL
    return intervals
