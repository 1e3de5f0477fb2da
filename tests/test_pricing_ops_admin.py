"""Pricing operations in the admin: "Backtest…" on a plan version's page (window form, totals, movers, histogram,
CSV), a large backtest on a real Celery worker with its progress on the run's row, and a migration's dry run
then confirmation.

Same plan and usage as tests/invoicing/test_pricing_operations.py: v1 = $10.00 in advance + $0.01 a call; "small"
made 100 calls in January, "large" 1,000; January billed: $11.00 and $20.00 invoiced, $31.00 together. Draft
v2 = $5.00 + $0.02 a call: small $7.00 (-$4.00), large $25.00 (+$5.00), together $32.00 (+$1.00).
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.models import PlanVersion
from customers.models import Subscription
from invoicing.models import BacktestRun, Invoice, SubscriptionMigration
from tests.invoicing.test_pricing_operations import _invoice_snapshot, _version, billed  # noqa: F401

WINDOW = {"start": "2026-01-01", "end": "2026-02-01"}


@pytest.fixture
def draft(api, billed):  # noqa: F811
    assert _version(api, "5.00", "0.02", publish=False) == 2
    return PlanVersion.objects.get(plan__key="api", number=2)


@pytest.mark.django_db
def test_backtest_from_the_version_page(admin_client, draft):
    page = admin_client.get(f"/admin/catalog/planversion/{draft.pk}/change/")
    assert f"/admin/invoicing/backtestrun/new/{draft.pk}/" in page.content.decode()
    form = admin_client.get(f"/admin/invoicing/backtestrun/new/{draft.pk}/")
    assert form.status_code == 200 and b"Run the backtest" in form.content
    before = _invoice_snapshot()

    response = admin_client.post(f"/admin/invoicing/backtestrun/new/{draft.pk}/", WINDOW)
    run = BacktestRun.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/backtestrun/{run.pk}/result/")
    assert run.status == BacktestRun.Status.DONE  # two subscriptions: priced in the request
    page = admin_client.get(response["Location"]).content.decode()
    for text in ("$31.00", "$32.00", "$1.00", "1 / 1 / 0", "<svg", "Biggest increases", "large", "$5.00", "-$4.00"):
        assert text in page, text
    csv = admin_client.get(f"/admin/invoicing/backtestrun/{run.pk}/csv/")
    lines = csv.content.decode().splitlines()
    assert lines[0] == "customer,customer_name,subscription,periods,actual,simulated,delta"
    assert [line.split(",")[-3:] for line in lines[1:]] == [["20.00", "25.00", "5.00"], ["11.00", "7.00", "-4.00"]]
    assert _invoice_snapshot() == before
    assert PlanVersion.objects.get(pk=draft.pk).status == PlanVersion.Status.DRAFT


@pytest.mark.django_db
def test_backtest_form_names_a_bad_window(admin_client, draft):
    response = admin_client.post(
        f"/admin/invoicing/backtestrun/new/{draft.pk}/", {"start": "2025-01-01", "end": "2026-02-01"}
    )
    assert response.status_code == 200
    assert "at most 12 months" in response.content.decode()
    assert not BacktestRun.objects.exists()


def test_histogram_bins_every_delta():
    from decimal import Decimal

    from backoffice.pricing_ops import delta_histogram

    # Deltas -4, 0, 1, 5 over 3 bins of width 3: [-4, -1) holds -4; [-1, 2) holds 0 and 1; [2, 5] holds 5.
    chart = delta_histogram([Decimal(-4), Decimal(0), Decimal(1), Decimal(5)], "USD", bins=3)
    assert [bar.count for bar in chart["bars"]] == [1, 2, 1]
    assert [bar.height for bar in chart["bars"]] == [80.0, 160.0, 80.0]  # tallest bar = the plot's 160 units
    assert (chart["low"], chart["high"]) == ("-$4.00", "$5.00")


@pytest.mark.django_db(transaction=True)
def test_a_large_backtest_runs_on_a_worker_with_progress(celery_worker, admin_client, draft, monkeypatch):
    # Past the inline limit (set to 1 here), the request only creates the run and the worker prices it.
    monkeypatch.setattr("backoffice.pricing_ops.INLINE_SUBSCRIPTIONS", 1)
    response = admin_client.post(f"/admin/invoicing/backtestrun/new/{draft.pk}/", WINDOW)
    run = BacktestRun.objects.get()
    assert run.total == 2
    first = admin_client.get(response["Location"]).content.decode()
    if BacktestRun.objects.get().status in ("pending", "running"):
        assert "refreshes itself" in first and '<meta http-equiv="refresh"' in first
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and BacktestRun.objects.get().status != BacktestRun.Status.DONE:
        time.sleep(0.2)
    run.refresh_from_db()
    assert (run.status, run.done, run.total) == (BacktestRun.Status.DONE, 2, 2)
    assert run.result["totals"]["delta"] == "1.00"
    assert "$32.00" in admin_client.get(response["Location"]).content.decode()


@pytest.mark.django_db
def test_migration_dry_run_then_confirm(admin_client, api, billed):  # noqa: F811
    plan, subs = billed
    Subscription.objects.filter(pk__in=[s.pk for s in subs.values()]).update(pinned_version=plan.versions.get(number=1))
    assert _version(api, "15.00", None, publish=True, effective_from="2026-01-01T00:00:00Z") == 2
    v2 = plan.versions.get(number=2)
    invoices = Invoice.objects.count()
    page = admin_client.get(f"/admin/catalog/planversion/{v2.pk}/change/").content.decode()
    assert f"/admin/invoicing/backtestrun/migrate/{v2.pk}/" in page

    dry = admin_client.post(f"/admin/invoicing/backtestrun/migrate/{v2.pk}/", {"from_versions": ["1"]})
    text = dry.content.decode()
    assert "Dry run: 2 subscriptions would move" in text and "Yes, move 2 subscriptions" in text
    assert not SubscriptionMigration.objects.exists()

    done = admin_client.post(
        f"/admin/invoicing/backtestrun/migrate/{v2.pk}/", {"from_versions": ["1"], "confirm": "yes"}
    )
    assert done.status_code == 302
    assert SubscriptionMigration.objects.count() == 2
    assert set(Subscription.objects.values_list("pinned_version__number", flat=True)) == {2}
    assert Invoice.objects.count() == invoices
    audit = admin_client.get("/admin/invoicing/subscriptionmigration/")
    assert audit.status_code == 200 and b"large" in audit.content


@given(st.lists(st.decimals(min_value=-1000, max_value=1000, places=2), min_size=1, max_size=60))
def test_histogram_counts_every_row_once(deltas):
    from backoffice.pricing_ops import delta_histogram

    chart = delta_histogram(deltas, "USD")
    assert sum(bar.count for bar in chart["bars"]) == len(deltas)
    assert max(bar.height for bar in chart["bars"]) == chart["height"]
