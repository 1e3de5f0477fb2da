"""The finance dashboard as finance reads it: invoices by issue month with links that list exactly them, the
next billing run to the minute, the last run's outcome in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from backoffice import dashboard
from invoicing.models import BillingRun, Invoice
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


def _invoice(customer, *, status, issued_at, total="10.00"):
    return Invoice.objects.create(
        reason=Invoice.Reason.BOUNDARY,
        customer=customer,
        currency="USD",
        status=status,
        total=Decimal(total),
        subtotal=Decimal(total),
        issued_at=issued_at,
    )


def test_invoices_this_month_count_by_issue_date_and_link_to_that_month_and_status(admin_client):
    """Regression: the card counted every invoice created this month (a catch-up run creates rows today for
    earlier months) and its links listed the status over all months."""
    now = timezone.now()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    acme = CustomerFactory(name="Acme")
    this_month = _invoice(acme, status=Invoice.Status.PAID, issued_at=month_start + timedelta(minutes=1))
    _invoice(acme, status=Invoice.Status.FINALIZED, issued_at=month_start + timedelta(minutes=2))
    # Created today (as every row is here) but issued last month: not this month's.
    _invoice(acme, status=Invoice.Status.PAID, issued_at=month_start - timedelta(days=3))
    Invoice.objects.create(reason=Invoice.Reason.BOUNDARY, customer=acme, currency="USD")  # a draft: not issued at all

    response = admin_client.get("/admin/")
    card = response.context["dashboard"]["issued_this_month"]
    counts = {row["value"]: row["count"] for row in card["rows"]}
    # 1 paid + 1 finalized issued this month; the draft is not an issued invoice.
    assert counts == {"finalized": 1, "paid": 1, "void": 0, "uncollectible": 0}

    paid = next(row for row in card["rows"] if row["value"] == "paid")
    assert parse_qs(paid["query"]) == {"status__exact": ["paid"], "issued_month": [f"{month_start:%Y-%m}"]}
    body = response.content.decode()
    assert f'href="/admin/invoicing/invoice/?{paid["query"].replace("&", "&amp;")}"' in body

    # The link opens the invoice list with exactly the invoice the card counted.
    listed = admin_client.get(f"/admin/invoicing/invoice/?{paid['query']}")
    assert listed.status_code == 200
    assert list(listed.context["cl"].result_list) == [this_month]
    # A malformed month is refused by the list (its "?e=1" page), never a 500.
    bad = admin_client.get("/admin/invoicing/invoice/?issued_month=2026-13")
    assert bad.status_code == 302 and "e=1" in bad["Location"]


def test_next_billing_run_is_the_crontab_minute_exactly(admin_client):
    """Regression: a crontab at :05 showed as 14:04 (now + a remaining time measured against a later clock
    reading: 14:04:59.99)."""
    schedule = CrontabSchedule.objects.create(
        minute="5", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.create(name="billing run", task="invoicing.billing_run_execute", crontab=schedule)

    now = datetime(2026, 3, 1, 14, 4, 30, 500_000, tzinfo=UTC)
    runs = dashboard.billing_runs(now)
    assert runs["next"]["at"] == datetime(2026, 3, 1, 14, 5, tzinfo=UTC) and runs["next"]["due"] is False

    # Through the page, on the real clock: the next :05, to the second, shown as such.
    before = timezone.now()
    response = admin_client.get("/admin/")
    at = response.context["dashboard"]["runs"]["next"]["at"]
    assert (at.minute, at.second, at.microsecond) == (5, 0, 0)
    assert timedelta(0) < at - before <= timedelta(hours=1)
    assert f"Next: {at.day} {at:%b %Y}, {at:%H}:05" in response.content.decode()

    # Last run at 11:04:30 (long ago): due since 11:05; the beat runs it at its next tick and the page says so.
    PeriodicTask.objects.filter(name="billing run").update(last_run_at=now - timedelta(hours=3))
    runs = dashboard.billing_runs(now)
    assert runs["next"]["due"] is True and runs["next"]["at"] == datetime(2026, 3, 1, 11, 5, tzinfo=UTC)


def test_last_billing_run_reads_as_a_date_and_counts_in_words(admin_client):
    """Regression: the card showed the summary line with a raw ISO timestamp and the counts as JSON-ish text."""
    run = BillingRun.objects.create(
        as_of=datetime(2026, 3, 1, tzinfo=UTC),
        trigger="beat",
        status=BillingRun.Status.SUCCEEDED,
        counts={"boundaries": 12, "invoices_created": 12, "invoices_finalized": 3, "grants_expired": 0, "alerts": 1},
        summary="as of 2026-03-01T00:00:00+00:00: 12 period boundaries, ...",
    )
    assert run.counts_text == ("12 invoices created, 3 finalized, 12 period boundaries billed, 1 low-balance alert")
    assert BillingRun(counts={"boundaries": 0}).counts_text == "Nothing was due."

    body = admin_client.get("/admin/").content.decode()
    assert "Billed up to 1 Mar 2026, 00:00: 12 invoices created, 3 finalized" in body
    assert "2026-03-01T00:00:00" not in body and "invoices_created" not in body
