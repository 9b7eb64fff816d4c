"""Webhooks: events derived from article state, signed deliveries to a real HTTP receiver on
127.0.0.1, retries with backoff, no redirects, and the admin's endpoint form and delivery log."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from articles import publishing, tasks, webhooks
from articles.models import Article, WebhookDelivery, WebhookEndpoint

from bench._common import LOCK_ERRORS, base_env, manage

from .factories import ArticleFactory
from .test_caching import redis_url  # noqa: F401 (a fixture: a throwaway redis-server)
from .test_concurrency import shared_database_url

pytestmark = pytest.mark.django_db

ALL_EVENTS = [choice for choice, _label in WebhookEndpoint.Event.choices]


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers with the next queued status."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def endpoint(receiver):
    return WebhookEndpoint.objects.create(name="Wire desk", url=receiver.url, secret="s3cret", events=ALL_EVENTS)


def events():
    return sorted((d.event, d.article_id) for d in WebhookDelivery.objects.all())


def deliver_all():
    for delivery_id in webhooks.announce_changes():
        webhooks.attempt_delivery(delivery_id)


# --- Which events -------------------------------------------------------------------------------------


def test_publishing_editing_and_unpublishing_are_each_announced_once(endpoint, admin_user):
    article = ArticleFactory(status=Article.Status.DRAFT)
    assert webhooks.announce_changes() == []

    publishing.publish(Article.objects.filter(pk=article.pk), user=admin_user)
    webhooks.announce_changes()
    assert events() == [("published", article.pk)]
    assert webhooks.announce_changes() == []  # nothing new: nothing sent twice

    Article.objects.filter(pk=article.pk).update(title="Corrected headline", version=F("version") + 1)
    webhooks.announce_changes()
    assert events() == [("published", article.pk), ("updated", article.pk)]
    assert WebhookDelivery.objects.get(event="updated").payload["article"]["title"] == "Corrected headline"

    publishing.unpublish(Article.objects.filter(pk=article.pk), user=admin_user)
    webhooks.announce_changes()
    assert [e for e, _ in events()] == ["published", "unpublished", "updated"]
    assert webhooks.announce_changes() == []


def test_a_scheduled_article_is_announced_when_its_time_comes(endpoint):
    article = ArticleFactory(published_at=timezone.now() + timedelta(minutes=30))
    assert webhooks.announce_changes() == []
    later = timezone.now() + timedelta(minutes=31)
    [delivery_id] = webhooks.announce_changes(now=later)
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.event, delivery.article_id) == ("published", article.pk)
    assert webhooks.announce_changes(now=later) == []


def test_an_endpoint_gets_only_the_events_it_asked_for(endpoint, receiver):
    only_published = WebhookEndpoint.objects.create(name="Social", url=receiver.url, secret="x", events=["published"])
    inactive = WebhookEndpoint.objects.create(name="Old", url=receiver.url, secret="x", events=ALL_EVENTS, active=False)
    article = ArticleFactory()
    webhooks.announce_changes()
    Article.objects.filter(pk=article.pk).update(version=F("version") + 1)
    webhooks.announce_changes()
    by_endpoint = sorted((d.endpoint.name, d.event) for d in WebhookDelivery.objects.select_related("endpoint"))
    assert by_endpoint == [("Social", "published"), ("Wire desk", "published"), ("Wire desk", "updated")]
    assert not inactive.deliveries.exists() and only_published.deliveries.count() == 1


def test_announcing_works_through_many_batches(endpoint):
    ArticleFactory.create_batch(7)
    assert len(webhooks.announce_changes(batch_size=3)) == 7
    assert webhooks.announce_changes(batch_size=3) == []


# --- Delivering ---------------------------------------------------------------------------------------


def test_a_delivery_is_signed_and_a_receiver_can_verify_it(endpoint, receiver, settings):
    settings.NEWSROOM_SITE_URL = "https://news.example.com"
    article = ArticleFactory(title="Harbour reopens")
    deliver_all()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.response_code, delivery.attempts) == ("delivered", 200, 1)
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert headers["X-Newsroom-Event"] == "published" and headers["X-Newsroom-Delivery"] == str(delivery.pk)
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["article"]["title"] == "Harbour reopens"
    assert payload["article"]["url"] == f"https://news.example.com{article.get_absolute_url()}"
    timestamp, signature = headers["X-Newsroom-Timestamp"], headers["X-Newsroom-Signature"]
    assert webhooks.verify_signature("s3cret", body, timestamp=timestamp, signature=signature)
    # What a receiver must refuse: another secret, a changed body, a replay long after, junk headers.
    assert not webhooks.verify_signature("other", body, timestamp=timestamp, signature=signature)
    assert not webhooks.verify_signature("s3cret", body.replace(b"Harbour", b"Harbor"), timestamp=timestamp, signature=signature)
    replayed_at = int(timestamp) + webhooks.REPLAY_TOLERANCE_SECONDS + 1
    assert not webhooks.verify_signature("s3cret", body, timestamp=timestamp, signature=signature, now=replayed_at)
    assert not webhooks.verify_signature("s3cret", body, timestamp="yesterday", signature=signature)
    # The timestamp is part of what is signed: it cannot be refreshed to pass the replay check.
    assert not webhooks.verify_signature("s3cret", body, timestamp=str(int(timestamp) + 1), signature=signature)


def test_a_failing_receiver_is_retried_with_growing_delays_then_given_up(endpoint, receiver, settings):
    settings.NEWSROOM_WEBHOOK_MAX_ATTEMPTS = 3
    settings.NEWSROOM_WEBHOOK_RETRY_BASE_SECONDS = 30
    receiver.statuses = [500, 503, 500]
    ArticleFactory()
    [delivery_id] = webhooks.announce_changes()
    first = webhooks.attempt_delivery(delivery_id)
    assert (first.state, first.response_code, first.attempts) == ("retrying", 500, 1)
    assert "HTTP 500" in first.last_error
    delay = first.next_attempt_at - timezone.now()
    assert timedelta(seconds=28) < delay <= timedelta(seconds=33)
    second = webhooks.attempt_delivery(delivery_id)
    assert second.state == "retrying" and second.response_code == 503
    assert timedelta(seconds=58) < second.next_attempt_at - timezone.now() <= timedelta(seconds=66)
    third = webhooks.attempt_delivery(delivery_id)
    assert (third.state, third.attempts, third.next_attempt_at) == ("failed", 3, None)
    assert webhooks.attempt_delivery(delivery_id).attempts == 3  # given up: never sent again by itself
    assert len(receiver.requests) == 3


def test_the_retry_delay_doubles_and_is_capped(settings):
    settings.NEWSROOM_WEBHOOK_RETRY_BASE_SECONDS = 30
    for attempts, base in [(1, 30), (2, 60), (5, 480)]:
        assert timedelta(seconds=base) <= webhooks.retry_delay(attempts) <= timedelta(seconds=base * 1.1)
    assert webhooks.retry_delay(30) == webhooks.MAX_RETRY_DELAY


def test_a_redirect_is_not_followed(endpoint, receiver):
    receiver.statuses = [302]
    ArticleFactory()
    deliver_all()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.response_code) == ("retrying", 302)
    assert [r["path"] for r in receiver.requests] == ["/hook"]  # /elsewhere never got the signed body


def test_an_unreachable_receiver_is_an_error_without_a_code(endpoint, receiver):
    receiver.close()
    ArticleFactory()
    deliver_all()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "retrying" and delivery.response_code is None
    assert "Connection refused" in delivery.last_error or "URLError" in delivery.last_error


def test_the_delivery_task_queues_its_own_retry_for_later(endpoint, receiver):
    receiver.statuses = [500]
    ArticleFactory()
    [delivery_id] = webhooks.announce_changes()
    assert tasks.deliver_webhook.call(delivery_id) == "retrying"
    [retry] = DBTaskResult.objects.filter(task_path=tasks.deliver_webhook.module_path)
    assert retry.args_kwargs["args"] == [delivery_id]
    assert retry.run_after == WebhookDelivery.objects.get().next_attempt_at
    assert tasks.deliver_webhook.call(delivery_id) == "delivered"
    assert tasks.deliver_webhook.call(delivery_id) == "delivered"  # a duplicate task sends nothing
    assert len(receiver.requests) == 2


def test_housekeeping_announces_and_queues_deliveries(endpoint):
    ArticleFactory()
    assert tasks.housekeeping.call("no-chain").startswith("1 deliveries queued")
    [queued] = DBTaskResult.objects.filter(task_path=tasks.deliver_webhook.module_path)
    assert queued.args_kwargs["args"] == [WebhookDelivery.objects.get().pk]


def test_deliveries_whose_task_was_lost_are_found_again(endpoint):
    ArticleFactory()
    [delivery_id] = webhooks.announce_changes()
    assert webhooks.overdue_deliveries() == []
    assert webhooks.overdue_deliveries(now=timezone.now() + timedelta(minutes=6)) == [delivery_id]


# --- Admin ----------------------------------------------------------------------------------------------


def test_staff_register_an_endpoint_with_a_generated_secret(admin_client, receiver):
    add = reverse("admin:articles_webhookendpoint_add")
    form = admin_client.get(add).context["adminform"].form
    assert len(form.initial["secret"]) >= 32 and form.initial["events"] == ALL_EVENTS
    response = admin_client.post(add, {"name": "CMS mirror", "url": receiver.url, "secret": "abc", "events": ["published", "unpublished"], "active": "on"})
    assert response.status_code == 302
    assert WebhookEndpoint.objects.get().events == ["published", "unpublished"]
    bad = admin_client.post(add, {"name": "x", "url": "ftp://example.com/", "secret": "abc", "events": ["published"]})
    assert bad.status_code == 200 and WebhookEndpoint.objects.count() == 1


def test_the_delivery_log_shows_state_code_and_attempts_and_sends_failed_ones_again(
    admin_client, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    settings.NEWSROOM_WEBHOOK_MAX_ATTEMPTS = 1
    receiver.statuses = [500]
    ArticleFactory(title="Bridge closes")
    deliver_all()
    log = reverse("admin:articles_webhookdelivery_changelist")
    page = admin_client.get(log).content.decode()
    assert "Failed" in page and "500" in page and "Bridge closes" in page
    delivery = WebhookDelivery.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(log, {"action": "send_again", "_selected_action": [delivery.pk]})
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 0)
    assert DBTaskResult.objects.filter(task_path=tasks.deliver_webhook.module_path).count() == 1
    assert admin_client.get(reverse("admin:articles_webhookdelivery_change", args=[delivery.pk])).status_code == 200


def test_the_log_never_lets_anyone_edit_a_delivery(admin_client, endpoint):
    ArticleFactory()
    webhooks.announce_changes()
    delivery = WebhookDelivery.objects.get()
    assert admin_client.get(reverse("admin:articles_webhookdelivery_add")).status_code == 403
    admin_client.post(reverse("admin:articles_webhookdelivery_change", args=[delivery.pk]), {"state": "delivered"})
    delivery.refresh_from_db()
    assert delivery.state == "pending"


def test_editors_cannot_resend_or_see_secrets(client, endpoint):
    from .test_admin import make_editor

    client.force_login(make_editor("eve"))
    assert client.get(reverse("admin:articles_webhookendpoint_changelist")).status_code == 403


def test_the_log_lists_a_page_in_a_fixed_number_of_queries(admin_client, endpoint, django_assert_max_num_queries):
    ArticleFactory.create_batch(20)
    webhooks.announce_changes()
    with django_assert_max_num_queries(12):
        assert admin_client.get(reverse("admin:articles_webhookdelivery_changelist")).status_code == 200


# --- The RQ backend: Redis and a real rqworker --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_with_redis_the_same_tasks_run_on_an_rq_worker(receiver, redis_url, tmp_path):
    """Workers on other machines: tasks go through Redis and ``rqworker`` runs them (README)."""
    import redis

    endpoint = WebhookEndpoint.objects.create(name="Wire desk", url=receiver.url, secret="s3cret", events=ALL_EVENTS)
    article = ArticleFactory(title="Ferry resumes")
    env = {
        **base_env(shared_database_url(), tmp_path / "var", production=False),
        "NEWSROOM_TASKS_REDIS_URL": redis_url,
        "NEWSROOM_WEBHOOK_INTERVAL": "3600",
    }
    manage(env, "schedule_tasks")  # queues housekeeping in Redis, not in the database
    assert not DBTaskResult.objects.exists()
    worker = manage(env, "rqworker", "--job-class", "django_tasks_rq.Job", "--with-scheduler", "--burst", "default")
    assert not LOCK_ERRORS.search(worker.stderr), worker.stderr

    delivery = endpoint.deliveries.get()
    assert (delivery.event, delivery.article_id, delivery.state) == ("published", article.pk, "delivered")
    [request] = receiver.requests
    assert webhooks.verify_signature(
        "s3cret", request["body"],
        timestamp=request["headers"]["X-Newsroom-Timestamp"], signature=request["headers"]["X-Newsroom-Signature"],
    )
    # Housekeeping scheduled its next run an interval ahead, in RQ's own schedule.
    assert redis.Redis.from_url(redis_url).zcard("rq:scheduled:default") == 1
