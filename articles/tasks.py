"""The background tasks (Django's task framework). Each only calls a service in ``articles.jobs`` or
``articles.webhooks``; run them with ``manage.py db_worker`` (default) or an RQ worker (README)."""

from django.conf import settings
from django_tasks import task

from . import jobs, webhooks
from .models import WebhookDelivery


@task()
def run_import(run_id: int) -> str:
    """Import a run queued from the admin (its files were unpacked into the run's own folder)."""
    return jobs.run_queued_import(run_id)


@task()
def deliver_webhook(delivery_id: int) -> str:
    """Send one webhook delivery; on failure, schedule the next attempt with backoff."""
    delivery = webhooks.attempt_delivery(delivery_id)
    if delivery is None:
        return "gone"
    if delivery.state == WebhookDelivery.State.RETRYING:
        deliver_webhook.using(run_after=delivery.next_attempt_at).enqueue(delivery_id)
    return delivery.state


@task()
def housekeeping(token: str) -> str:
    """Periodic: announce article changes to webhooks, re-send lost deliveries, fail stale imports."""
    ids = webhooks.announce_changes()
    for delivery_id in [*ids, *webhooks.overdue_deliveries()]:
        deliver_webhook.enqueue(delivery_id)
    resumed = jobs.fail_stale_runs()
    jobs.schedule_next("housekeeping", token, interval=settings.NEWSROOM_WEBHOOK_INTERVAL)
    return f"{len(ids)} deliveries queued, {len(resumed)} stale imports resumed"


@task()
def sweep_inbox(token: str) -> str:
    """Periodic: import new and changed files from the watched inbox (``NEWSROOM_INBOX``)."""
    try:
        return jobs.sweep_inbox()
    finally:
        jobs.schedule_next("inbox", token, interval=settings.NEWSROOM_INBOX_INTERVAL)

