"""Webhooks: tell registered endpoints when an article is published, updated or unpublished.

* **Events come from state, not from hooks in every write path.** Each article remembers the
  version last announced as public (``Article.announced_version``). :func:`announce_changes`
  compares that with the article now: public and never announced → ``published`` (a scheduled
  article's time has come counts too, with no cron); public with a newer version → ``updated``;
  announced but no longer public → ``unpublished``. Saves, bulk actions and imports need no
  extra code, and an event is never lost to a crash between a write and its notification.
* **Deliveries are tasks**, one per event and endpoint, signed with HMAC-SHA256 over
  ``"<timestamp>.<body>"`` (see :func:`sign` and :func:`verify_signature` for receivers), retried
  with exponential backoff, and logged (state, response code, attempts, last error). Delivery is
  at least once: receivers de-duplicate on the ``X-Newsroom-Delivery`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import Article, WebhookDelivery, WebhookEndpoint

Event = WebhookEndpoint.Event
SIGNATURE_HEADER = "X-Newsroom-Signature"
TIMESTAMP_HEADER = "X-Newsroom-Timestamp"
DELIVERY_HEADER = "X-Newsroom-Delivery"
EVENT_HEADER = "X-Newsroom-Event"
#: Receivers should refuse a timestamp further than this from their clock (replays).
REPLAY_TOLERANCE_SECONDS = 300
#: The longest wait between two attempts.
MAX_RETRY_DELAY = timedelta(hours=6)


# --- Signing ---------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the HMAC of ``"<timestamp>.<body>"``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, *, timestamp: str, signature: str, now: float | None = None
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent (no replays)."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > REPLAY_TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(sign(secret, sent_at, body), signature)


# --- Finding events ----------------------------------------------------------------------------------


def announce_changes(*, now: datetime | None = None, batch_size: int = 1000) -> list[int]:
    """Record a delivery per endpoint for every article whose public state changed; return their ids.

    Articles are taken ``batch_size`` at a time, each batch in its own transaction with its rows
    locked while they are compared and marked, so a save in between is announced next time rather
    than lost.
    """
    now = now or timezone.now()
    ids: list[int] = []
    while True:
        examined, created = _announce_batch(now=now, limit=batch_size)
        ids += created
        if examined < batch_size:
            return ids


def _announce_batch(*, now: datetime, limit: int) -> tuple[int, list[int]]:
    public = Q(status=Article.Status.PUBLISHED, published_at__lte=now)
    changed = (public & (Q(announced_version__isnull=True) | Q(announced_version__lt=F("version")))) | (
        ~public & Q(announced_version__isnull=False)
    )
    with transaction.atomic():
        candidates = Article.objects.filter(changed).select_related("source").order_by("pk")
        if connection.features.has_select_for_update:
            candidates = candidates.select_for_update(of=("self",))
        articles = list(candidates.defer("body", "imported_fields")[:limit])
        if not articles:
            return 0, []
        endpoints = list(WebhookEndpoint.objects.filter(active=True))
        deliveries = []
        for article in articles:
            event = _event_for(article, now=now)
            payload = _payload(article, event, now=now)
            deliveries += [
                WebhookDelivery(endpoint=endpoint, event=event, article=article, payload=payload, created_at=now)
                for endpoint in endpoints
                if event in endpoint.events
            ]
        announced_public = [a.pk for a in articles if _is_public(a, now)]
        Article.objects.filter(pk__in=announced_public).update(announced_version=F("version"))
        Article.objects.filter(pk__in=[a.pk for a in articles if not _is_public(a, now)]).update(
            announced_version=None
        )
        # SQLite ≥ 3.35 and PostgreSQL return the new ids from the bulk insert.
        return len(articles), [delivery.pk for delivery in WebhookDelivery.objects.bulk_create(deliveries)]


def _is_public(article: Article, now: datetime) -> bool:
    return article.status == Article.Status.PUBLISHED and article.published_at <= now


def _event_for(article: Article, *, now: datetime) -> str:
    if not _is_public(article, now):
        return Event.UNPUBLISHED
    return Event.PUBLISHED if article.announced_version is None else Event.UPDATED


def _payload(article: Article, event: str, *, now: datetime) -> dict:
    path = article.get_absolute_url()
    site = settings.NEWSROOM_SITE_URL.rstrip("/")
    return {
        "event": event,
        "occurred_at": now.isoformat(),
        "article": {
            "id": article.pk,
            "title": article.title,
            "slug": article.slug,
            "path": path,
            "url": f"{site}{path}" if site else None,
            "summary": article.summary,
            "source": article.source.name if article.source_id else None,
            "status": article.status,
            "published_at": article.published_at.isoformat(),
            "updated_at": article.updated_at.isoformat(),
            "version": article.version,
        },
    }


# --- Delivering ----------------------------------------------------------------------------------------


def attempt_delivery(delivery_id: int) -> WebhookDelivery | None:
    """Send one delivery once; record the outcome and, on failure, when to try again.

    Returns the delivery (``None`` if it is gone). A delivery that is already delivered or has
    failed for good is left alone, so a duplicate task is harmless. No database transaction is held
    during the HTTP request.
    """
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.state in (WebhookDelivery.State.DELIVERED, WebhookDelivery.State.FAILED):
        return delivery
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    request = urllib.request.Request(
        delivery.endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Newsroom-Webhooks/1",
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: str(delivery.pk),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(delivery.endpoint.secret, timestamp, body),
        },
    )
    code, error = _post(request)
    attempts = delivery.attempts + 1
    now = timezone.now()
    changes = {"attempts": attempts, "response_code": code, "last_error": error}
    if error == "":
        changes.update(state=WebhookDelivery.State.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif attempts >= settings.NEWSROOM_WEBHOOK_MAX_ATTEMPTS:
        changes.update(state=WebhookDelivery.State.FAILED, next_attempt_at=None)
    else:
        changes.update(state=WebhookDelivery.State.RETRYING, next_attempt_at=now + retry_delay(attempts))
    # Only if nobody else recorded an attempt meanwhile (a duplicate task): the first one wins.
    WebhookDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).update(**changes)
    delivery.refresh_from_db()
    return delivery


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: following it would re-send a signed POST somewhere else."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(request) -> tuple[int | None, str]:
    """``(status code, error)``; the error is empty for a 2xx answer."""
    try:
        with _opener.open(request, timeout=settings.NEWSROOM_WEBHOOK_TIMEOUT) as response:
            return response.status, ""
    except urllib.error.HTTPError as err:
        return err.code, f"HTTP {err.code} {err.reason}"
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        return None, f"{type(err).__name__}: {reason}"[:1000]


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff from ``NEWSROOM_WEBHOOK_RETRY_BASE_SECONDS``, with up to 10 % jitter."""
    base = settings.NEWSROOM_WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    return min(timedelta(seconds=base * (1 + random.random() / 10)), MAX_RETRY_DELAY)


def overdue_deliveries(*, now: datetime | None = None, grace: timedelta = timedelta(minutes=5)) -> list[int]:
    """Deliveries whose task was lost (a killed worker): waiting well past their time."""
    now = now or timezone.now()
    waiting = Q(state=WebhookDelivery.State.PENDING, created_at__lt=now - grace) | Q(
        state=WebhookDelivery.State.RETRYING, next_attempt_at__lt=now - grace
    )
    return list(WebhookDelivery.objects.filter(waiting).values_list("pk", flat=True)[:1000])
