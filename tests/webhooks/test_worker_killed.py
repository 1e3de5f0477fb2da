"""Fault: the Celery worker sending a webhook is killed (SIGKILL) while the receiver has the request.

A real worker on Redis takes the task enqueued after the commit that recorded ``customer.created``; the
receiver holds that first request without answering, and the worker is killed then. The delivery stays
``pending`` with its lease (``services.LEASE``, 5 minutes) as the only trace of the try. Once the lease has run out, a
new worker's beat task sends it again: the receiver sees the same ``webhook-id`` twice (it deduplicates on it)
and the delivery ends ``delivered`` after 2 tries.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from standardwebhooks import Webhook

from core.models import WebhookDelivery
from customers.services import customer_create
from tests.celery_support import WorkerProcess
from webhooks import services
from webhooks.tasks import deliveries_send_due_task

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]


@pytest.fixture
def worker_env(monkeypatch):
    """The worker process reads its settings from the environment: allow 127.0.0.1, give the hanging
    receiver long enough that the worker is surely still waiting for it when it is killed."""
    monkeypatch.setenv("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", "true")
    monkeypatch.setenv("WEBHOOKS_TIMEOUT_SECONDS", "60")


def _wait(predicate, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_a_worker_killed_mid_delivery_leaves_it_to_be_sent_again_with_the_same_id(
    worker_env, receivers, celery_worker, settings
):
    receiver = receivers(["hang", 200])
    endpoint = services.endpoint_create(url=receiver.url, events=["customer.created"])
    customer_create(external_id="killed", name="Killed", currency="USD")  # commits: the task is enqueued

    _wait(lambda: len(receiver.received) == 1)  # the worker's POST is being held by the receiver
    celery_worker.kill()
    receiver.release()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    claimed_until = delivery.next_attempt_at
    # The try was counted when claimed; no outcome was written; the lease keeps it from being sent at once.
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert delivery.last_attempt_at is None

    replacement = WorkerProcess(celery_worker.queue, celery_worker.env)
    replacement.start()
    try:
        # Before the lease ends, nothing is due.
        deliveries_send_due_task.delay((claimed_until - timedelta(seconds=1)).isoformat())
        # After it, the beat task sends it again.
        deliveries_send_due_task.delay((claimed_until + timedelta(seconds=1)).isoformat())
        _wait(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "delivered")
    finally:
        replacement.stop()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert len(receiver.received) == 2
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.event.webhook_id
    assert Webhook(endpoint.secret).verify(second.body, second.headers)["data"]["external_id"] == "killed"
