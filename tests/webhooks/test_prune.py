"""Pruning old webhook events and deliveries (webhooks/retention.py, ``manage.py prune_webhooks``, the daily beat
task): delivered deliveries older than the cutoff go, and their events once no delivery is left; failed ones only
when asked; pending ones never."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from core.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from webhooks.retention import webhooks_prune
from webhooks.tasks import prune_task

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DELIVERED, FAILED, PENDING = (WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED, "pending")


def days_ago(n: int) -> datetime:
    return NOW - timedelta(days=n)


@pytest.fixture
def endpoints():
    return [
        WebhookEndpoint.objects.create(url=f"https://hooks.example.com/{i}", events=["*"], secret=f"whsec_{i}")
        for i in range(2)
    ]


def event(age: int, *deliveries: tuple[str, int | None]) -> OutboxEvent:
    """An event recorded ``age`` days ago with one delivery per ``(status, days ago of its last try)``."""
    row = OutboxEvent.objects.create(
        uuid=uuid.uuid4(), type="invoice.finalized", data={"id": "1"}, created_at=days_ago(age)
    )
    for endpoint, (status, tried) in zip(WebhookEndpoint.objects.order_by("id"), deliveries, strict=False):
        at = days_ago(tried) if tried is not None else None
        WebhookDelivery.objects.create(
            event=row,
            endpoint=endpoint,
            status=status,
            attempts=1 if at else 0,
            last_attempt_at=at,
            delivered_at=at if status == DELIVERED else None,
            next_attempt_at=days_ago(age) if status == PENDING else None,
        )
    return row


@pytest.fixture
def history(endpoints):
    return {
        "old_delivered": event(120, (DELIVERED, 120)),
        "recent_delivered": event(30, (DELIVERED, 30)),
        # Recorded 100 days ago, delivered only 80 days ago (after retries): younger than 90 days, kept.
        "late_delivered": event(100, (DELIVERED, 80)),
        "old_failed": event(200, (FAILED, 199)),
        "old_pending": event(150, (PENDING, None)),
        "mixed": event(95, (DELIVERED, 95), (FAILED, 94)),
        "no_listener_left": event(400),  # its endpoint was deleted (deliveries cascade)
    }


def remaining(history) -> set[str]:
    kept = set(OutboxEvent.objects.values_list("pk", flat=True))
    return {name for name, row in history.items() if row.pk in kept}


def test_default_prunes_old_delivered_and_keeps_failed_and_pending(history):
    summary = webhooks_prune(now=NOW)
    # Cutoff 2026-06-01 - 90 days = 2026-03-03. Deliveries delivered before it: old_delivered's (120 days) and
    # mixed's delivered one (95 days) = 2. Events left without a delivery and recorded before it: old_delivered
    # and no_listener_left = 2 (mixed keeps its failed delivery, so the event stays).
    assert (summary.cutoff, summary.deliveries, summary.events) == (days_ago(90), 2, 2)
    assert remaining(history) == {"recent_delivered", "late_delivered", "old_failed", "old_pending", "mixed"}
    assert list(history["mixed"].deliveries.values_list("status", flat=True)) == [FAILED]
    # A second run finds nothing left to prune.
    again = webhooks_prune(now=NOW)
    assert (again.deliveries, again.events) == (0, 0)


def test_include_failed_prunes_failed_deliveries_too(history):
    summary = webhooks_prune(now=NOW, include_failed=True)
    # As above, plus old_failed's (last try 199 days ago) and mixed's failed one (94 days): 4 deliveries; events
    # old_delivered, no_listener_left, old_failed and mixed: 4. The stuck pending delivery keeps its event.
    assert (summary.deliveries, summary.events) == (4, 4)
    assert remaining(history) == {"recent_delivered", "late_delivered", "old_pending"}


def test_a_shorter_age_reaches_younger_rows(history):
    # 20 days: recent_delivered (30) and late_delivered (80) go too; failed and pending stay.
    summary = webhooks_prune(now=NOW, older_than_days=20)
    assert (summary.deliveries, summary.events) == (4, 4)
    assert remaining(history) == {"old_failed", "old_pending", "mixed"}


def test_the_command_dry_run_counts_and_deletes_nothing_then_prunes(history):
    counts = (OutboxEvent.objects.count(), WebhookDelivery.objects.count())
    out = io.StringIO()
    call_command("prune_webhooks", "--dry-run", "--now", "2026-06-01T00:00:00Z", stdout=out)
    assert out.getvalue().strip() == (
        "prune_webhooks as of 2026-06-01T00:00:00+00:00: would delete 2 deliveries and 2 events recorded before "
        "2026-03-03T00:00:00+00:00"
    )
    assert (OutboxEvent.objects.count(), WebhookDelivery.objects.count()) == counts
    # Dry run with failed ones: the same counts as the real prune below (4 and 4).
    out = io.StringIO()
    call_command("prune_webhooks", "--dry-run", "--include-failed", "--now", "2026-06-01T00:00:00Z", stdout=out)
    assert "would delete 4 deliveries and 4 events" in out.getvalue()
    out = io.StringIO()
    call_command(
        "prune_webhooks", "--include-failed", "--older-than-days", "90", "--now", "2026-06-01T00:00:00Z", stdout=out
    )
    assert "deleted 4 deliveries and 4 events" in out.getvalue()
    assert remaining(history) == {"recent_delivered", "late_delivered", "old_pending"}


@pytest.mark.parametrize("days", ["0", "-5", "4000"])
def test_the_command_refuses_a_bad_age(history, days):
    with pytest.raises(CommandError, match="--older-than-days"):
        call_command("prune_webhooks", "--older-than-days", days, stdout=io.StringIO())
    assert OutboxEvent.objects.count() == len(history)


def test_the_task_and_its_daily_schedule(history):
    from django_celery_beat.models import PeriodicTask

    assert prune_task(now="2026-06-01T00:00:00Z") == (
        "deleted 2 deliveries and 2 events recorded before 2026-03-03T00:00:00+00:00"
    )
    call_command("setup_periodic_tasks", stdout=io.StringIO())
    task = PeriodicTask.objects.get(name="Webhook pruning (daily)")
    assert (task.task, task.crontab.minute, task.crontab.hour) == ("webhooks.prune", "43", "3")
