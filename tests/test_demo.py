"""The demo loader on a small scale (one customer per plan family, and API Pro's second customer, who shows its
second version), checked against hand-worked invoices.

``now`` is fixed at 2026-04-15T00:00:00Z, so the subscriptions start on 2026-01-01 (calendar) and
2026-01-10T09:30Z (the coding assistant's anniversary subscription), and billing runs on Feb 1, Mar 1,
Apr 1 and Apr 15. API Pro v2 takes effect on Mar 1 (published Feb 15); Parcel Track signs up on it on Mar 5.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from backoffice.demo import billing_instants, demo_load, month_start
from catalog.models import PlanVersion
from customers.models import Customer, Subscription
from invoicing.models import Invoice, Payment
from metering.models import Event
from wallets.models import LedgerEntry, Wallet

NOW = datetime(2026, 4, 15, tzinfo=UTC)
SMALL = 0.5  # max(1, round(2 * 0.5)) = 1 customer per family


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def invoice(external_id: str, boundary: datetime) -> Invoice:
    return Invoice.objects.prefetch_related("lines").get(
        customer__external_id=external_id, billing_boundary_at=boundary
    )


def amounts(inv: Invoice) -> tuple[Decimal, Decimal, Decimal]:
    return inv.subtotal, inv.tax, inv.total


def line_amounts(inv: Invoice) -> list[tuple[str, Decimal, Decimal]]:
    return [(line.kind, line.quantity, line.amount) for line in inv.lines.order_by("position")]


def counts() -> dict[str, int]:
    return {
        "customers": Customer.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "invoices": Invoice.objects.count(),
        "events": Event.objects.count(),
        "ledger": LedgerEntry.objects.count(),
        "payments": Payment.objects.count(),
    }


@pytest.mark.django_db
def test_demo_invoices_match_the_hand_worked_numbers_and_a_second_run_adds_nothing():
    out = io.StringIO()
    demo_load(stdout=out, scale=SMALL, now=NOW)
    text = out.getvalue()
    assert "[####################] 4/4 billing runs" in text
    assert "failures" not in text

    # Seven families, one customer each, and Geo Lookup on API Pro v2: each has 4 invoices (start + 3 boundaries):
    # 8 x 4 = 32. Parcel Track (API Pro v2 from Mar 5, 14-day trial) has 2: no start invoice (in trial), the trial
    # end's on Mar 19 and the Apr 1 boundary's. 32 + 2 = 34 invoices, 8 + 1 = 9 customers.
    first = counts()
    assert first["customers"] == 9
    assert first["invoices"] == 34
    # Payments: the API Pro customer's first usage invoice, then every finalized invoice due more than 20 days
    # before Apr 15 (i.e. before Mar 26) that still had something due, except the late payer's.
    settled = Payment.objects.exclude(reference="Wire transfer WT-2210")
    assert first["payments"] == 1 + settled.count()
    assert settled.exists() and not settled.filter(invoice__customer__external_id="clipwise").exists()
    assert all(p.invoice.due_at < utc(2026, 3, 26) for p in settled)
    assert (
        not Invoice.objects.filter(status=Invoice.Status.FINALIZED, amount_due__gt=0, due_at__lt=utc(2026, 3, 26))
        .exclude(customer__external_id="clipwise")
        .exists()
    )
    assert Invoice.objects.filter(customer__external_id="clipwise", status=Invoice.Status.FINALIZED).exists()

    # API Pro ($99 + 5,000 calls included, then $0.01), VAT 20%. January: 5,250 calls.
    # 250 extra x $0.01 = $2.50; + February's fee $99.00 = $101.50; VAT 20% = $20.30; total $121.80, paid offline.
    feb = invoice("scoreapi", utc(2026, 2, 1))
    assert line_amounts(feb) == [("usage", Decimal(5250), Decimal("2.50")), ("fixed", Decimal(1), Decimal("99.00"))]
    assert amounts(feb) == (Decimal("101.50"), Decimal("20.30"), Decimal("121.80"))
    assert (feb.status, feb.amount_paid, feb.amount_due) == (Invoice.Status.PAID, Decimal("121.80"), Decimal(0))
    # March: 5,600 calls -> 600 x $0.01 = $6.00 + $99 = $105.00; VAT $21.00; total $126.00.
    assert amounts(invoice("scoreapi", utc(2026, 4, 1))) == (Decimal("105.00"), Decimal("21.00"), Decimal("126.00"))

    # API Pro has two published versions: v2 ($119 including 6,000 calls) takes effect on Mar 1 and was published
    # two weeks before; ScoreAPI is pinned on v1 (grandfathered), Geo Lookup follows the plan onto v2.
    v1, v2 = PlanVersion.objects.filter(plan__key="api-pro").order_by("number")
    assert (v1.status, v2.status) == (PlanVersion.Status.PUBLISHED, PlanVersion.Status.PUBLISHED)
    assert (v2.effective_from, v2.published_at) == (utc(2026, 3, 1), utc(2026, 2, 15))
    assert v1.published_at < v2.published_at
    pinned = Subscription.objects.get(customer__external_id="scoreapi")
    follows = Subscription.objects.get(customer__external_id="geo-lookup")
    assert (pinned.pinned_version, pinned.plan_version) == (v1, v1)
    assert (follows.pinned_version, follows.plan_version) == (None, v2)
    # Geo Lookup, no tax. Jan 1 (start): v1's fee $99.00. Feb 1: January's 5,100 calls on v1, 100 over 5,000 x $0.01
    # = $1.00 + February's fee $99.00 = $100.00. Mar 1: February's 4,000 calls on v1 (February started before v2)
    # = $0.00 + March's fee on v2 $119.00 = $119.00. Apr 1: March's 6,500 calls on v2, 500 over 6,000 x $0.01 = $5.00
    # + April's fee $119.00 = $124.00.
    versions = [
        (inv.total, [line.plan_version.number for line in inv.lines.order_by("position")])
        for inv in Invoice.objects.filter(customer__external_id="geo-lookup").order_by("billing_boundary_at")
    ]
    assert versions == [
        (Decimal("99.00"), [1]),
        (Decimal("100.00"), [1, 1]),
        (Decimal("119.00"), [1, 2]),
        (Decimal("124.00"), [2, 2]),
    ]
    assert line_amounts(invoice("geo-lookup", utc(2026, 4, 1))) == [
        ("usage", Decimal(6500), Decimal("5.00")),
        ("fixed", Decimal(1), Decimal("119.00")),
    ]
    # ScoreAPI's April invoice, on v1 beside it: March's 5,600 calls, 600 over v1's 5,000 (v2 would include 6,000).
    assert [line.plan_version for line in invoice("scoreapi", utc(2026, 4, 1)).lines.all()] == [v1, v1]

    # v2 gives new subscriptions a 14-day free trial; subscriptions started on v1 (Jan 1) have none.
    assert (v1.trial_days, v2.trial_days) == (0, 14)
    assert Subscription.objects.get(customer__external_id="geo-lookup").trial_end is None
    # Parcel Track signs up on Mar 5 00:00 on v2: the trial ends 14 days later, Mar 19 00:00, with no start
    # invoice (no fee for trial days). The Apr 1 run bills the trial end first: the rest of March, Mar 19-31 =
    # 13 of 31 days x $119.00 = $49.9032... -> $49.90; then the Apr 1 boundary: March's 6,800 calls (from Mar 5;
    # usage is billed during a trial as usual), 800 over 6,000 x $0.01 = $8.00, + April's fee $119.00 = $127.00.
    trial = Subscription.objects.get(customer__external_id="parcel-track")
    assert (trial.start_at, trial.trial_end, trial.plan_version) == (utc(2026, 3, 5), utc(2026, 3, 19), v2)
    assert trial.in_trial_at(utc(2026, 3, 18, 23, 59)) and not trial.in_trial_at(NOW)
    trial_invoices = Invoice.objects.filter(customer__external_id="parcel-track").order_by("billing_boundary_at")
    assert [(inv.reason, inv.billing_boundary_at, inv.total) for inv in trial_invoices] == [
        (Invoice.Reason.TRIAL_END, utc(2026, 3, 19), Decimal("49.90")),
        (Invoice.Reason.BOUNDARY, utc(2026, 4, 1), Decimal("127.00")),
    ]
    assert line_amounts(trial_invoices[0]) == [("proration", Decimal(1), Decimal("49.90"))]
    assert trial_invoices[0].lines.get().details["proration"]["text"] == "13 of 31 days"
    assert line_amounts(trial_invoices[1]) == [
        ("usage", Decimal(6800), Decimal("8.00")),
        ("fixed", Decimal(1), Decimal("119.00")),
    ]

    # Voice Creator: $11/month, 100,000 characters included, then $0.30 per 1k = $0.0003 a character.
    # January: 20 generations x 6,000 = 120,000 characters -> 20,000 x 0.0003 = $6.00; + $11 fee = $17.00.
    feb = invoice("narrator-studio", utc(2026, 2, 1))
    assert line_amounts(feb) == [("usage", Decimal(120_000), Decimal("6.00")), ("fixed", Decimal(1), Decimal("11.00"))]
    assert feb.total == Decimal("17.00")
    # February 90,000 (within the included) -> $0 + $11; March 110,000 -> 10,000 x 0.0003 = $3.00 + $11 = $14.00.
    assert invoice("narrator-studio", utc(2026, 3, 1)).total == Decimal("11.00")
    assert invoice("narrator-studio", utc(2026, 4, 1)).total == Decimal("14.00")
    # The welcome offer (a promotional grant of 5.50 credits at $1) pays half the first month's $11 fee.
    promo = Wallet.objects.get(customer__external_id="narrator-studio")
    assert LedgerEntry.objects.filter(wallet=promo, type="consume").get().credits == Decimal("-5.50")

    # Coding Pro, anniversary from Jan 10 09:30: $20/month + $0.04 per request, thinking models count x2.
    # First period: 60 standard requests -> 60 x 0.04 = $2.40; 40 thinking requests -> 80 weighted x 0.04 = $3.20;
    # + the next period's $20 fee = $25.60.
    first_period = invoice("devshop", utc(2026, 2, 10, 9, 30))
    assert (first_period.period_start, first_period.period_end) == (utc(2026, 1, 10, 9, 30), utc(2026, 2, 10, 9, 30))
    assert line_amounts(first_period) == [
        ("usage", Decimal(60), Decimal("2.40")),
        ("usage", Decimal(80), Decimal("3.20")),
        ("fixed", Decimal(1), Decimal("20.00")),
    ]
    assert first_period.total == Decimal("25.60")

    # Enrichment Starter: $149 + credits used at $0.05; 2,000 plan credits a month, rollover cap 2,000, paid from
    # a usage-only wallet at 1 credit = $0.05. January uses 1,000 credits: 1,000 x 0.05 = $50.00 + $149 = $199.00,
    # and the wallet pays the $50 usage line with 1,000 credits.
    feb = invoice("growth-gurus", utc(2026, 2, 1))
    assert feb.total == Decimal("199.00")
    wallet = Wallet.objects.get(customer__external_id="growth-gurus")
    consumed = LedgerEntry.objects.filter(wallet=wallet, type="consume").order_by("id")
    # January 1,000 credits ($50.00), February 500 ($25.00), March none.
    assert [row.credits for row in consumed] == [Decimal(-1000), Decimal(-500)]
    assert consumed[0].reference == f"invoice:{feb.pk}"
    # Balance: Feb 1 rolls 1,000 (+2,000 new) = 3,000; Feb uses 500 -> 2,500, Mar 1 rolls min(2,500, 2,000) = 2,000
    # (+2,000) = 4,000; March uses none -> Apr 1 rolls 2,000 (+2,000) = 4,000: it never exceeds 2 x 2,000.
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(4000)

    # Support: $39 + $0.99 per conversation (count unique chat_id; 5 messages each), VAT 20%, 30 grace days.
    # March: 12 conversations x 0.99 = $11.88 + $39 = $50.88; VAT 10.176 -> $10.18 (half-up); total $61.06.
    # Created on Apr 1 with 30 grace days, it is still a draft on Apr 15, waiting for review.
    draft = invoice("helpdesk-hq", utc(2026, 4, 1))
    assert draft.status == Invoice.Status.DRAFT and draft.number is None
    assert line_amounts(draft) == [("usage", Decimal(12), Decimal("11.88")), ("fixed", Decimal(1), Decimal("39.00"))]
    assert amounts(draft) == (Decimal("50.88"), Decimal("10.18"), Decimal("61.06"))
    # February's 15 conversations: 14.85 + 39 = 53.85; VAT 10.77; finalized by the Apr 1 run (grace ran out Mar 31).
    mar = invoice("helpdesk-hq", utc(2026, 3, 1))
    assert (mar.status, mar.total) == (Invoice.Status.FINALIZED, Decimal("64.62"))
    assert Invoice.objects.filter(status=Invoice.Status.DRAFT).count() == 1

    # Analytics: $49 + the last MTU snapshot in volume tiers. January's last snapshot 26,730 falls in the
    # 10,001-50,000 tier: 26,730 x 0.004 = $106.92 + $49 = $155.92. March's 9,800 is in the first tier:
    # 9,800 x 0.005 = $49.00 + $49 = $98.00.
    assert line_amounts(invoice("metricly", utc(2026, 2, 1)))[0] == ("usage", Decimal(26_730), Decimal("106.92"))
    assert invoice("metricly", utc(2026, 2, 1)).total == Decimal("155.92")
    assert invoice("metricly", utc(2026, 4, 1)).total == Decimal("98.00")
    # The launch coupon (50% off once, analytics plan), applied at signup: January's start invoice, $49.00 fee in
    # advance, 50% = $24.50 off -> $24.50; February's invoice above pays in full (the coupon is used).
    jan = invoice("metricly", utc(2026, 1, 1))
    assert (jan.subtotal, jan.discount, jan.total) == (Decimal("49.00"), Decimal("24.50"), Decimal("24.50"))
    assert jan.coupon_discounts.get().explanation == "LAUNCH50: 50% off, once; now used"
    assert invoice("metricly", utc(2026, 2, 1)).discount == 0

    # Video Plus: entitlements only (hard limits), so every invoice is the $35 fee.
    assert {inv.total for inv in Invoice.objects.filter(customer__external_id="clipwise")} == {Decimal("35.00")}

    # Running it again creates nothing: same customers, subscriptions, invoices, events and ledger rows.
    again = io.StringIO()
    demo_load(stdout=again, scale=SMALL, now=NOW)
    assert counts() == first
    assert "created 0 customers, 0 subscriptions, 0 events" in again.getvalue()


def test_billing_instants_are_each_first_of_the_month_then_now():
    start = month_start(NOW, 3)
    assert start == utc(2026, 1, 1)
    assert billing_instants(start, NOW) == [utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 4, 1), NOW]
    # On a month's first instant, "now" is not repeated; January is reached across a year end.
    assert billing_instants(month_start(utc(2026, 2, 1), 3), utc(2026, 2, 1)) == [
        utc(2025, 12, 1),
        utc(2026, 1, 1),
        utc(2026, 2, 1),
    ]


@pytest.mark.django_db
def test_demo_command_prepares_the_login_and_one_live_key_without_serving(tmp_path, monkeypatch):
    import re

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from backoffice.management.commands import demo
    from core.models import ApiKey

    monkeypatch.setattr(demo, "DEMO_KEY_FILE", tmp_path / ".demo" / "api-key")
    monkeypatch.setattr(demo.settings, "BASE_DIR", tmp_path)
    out = io.StringIO()
    call_command("demo", "--no-serve", "--scale", "0.5", stdout=out)
    first = out.getvalue()
    call_command("demo", "--no-serve", "--scale", "0.5", stdout=out)
    text = out.getvalue()
    second = text[len(first) :]
    assert "is ready" in text and "/admin/invoicing/invoice/" in text and "/admin/wallets/wallet/" in text
    # The second wave's pages: the trial customer (Parcel Track) is loaded at every scale.
    assert re.search(r"A trial: +http://\S+/admin/customers/customer/\d+/change/ +\(14 days on API Pro v2", text)
    user = get_user_model().objects.get(username="finance")
    assert user.is_staff and user.check_password("finance-demo")
    assert list(user.groups.values_list("name", flat=True)) == ["Finance admin"]
    # Regression: a second run revoked the key the first one printed. The demo keeps its key (stored hashed in the
    # database, raw only in .demo/api-key, owner-only) and prints the same one while it is valid.
    key = re.search(r"API key:\s+(ll_\S+)", first).group(1)
    assert re.search(r"API key:\s+(ll_\S+)", second).group(1) == key and "the same key as the last run" in second
    assert (tmp_path / ".demo" / "api-key").read_text().strip() == key
    assert (tmp_path / ".demo" / "api-key").stat().st_mode & 0o077 == 0
    assert ApiKey.objects.filter(name="demo", revoked=False).count() == 1
    assert not ApiKey.objects.filter(name="demo", revoked=True).exists()
    # Without the file, a new key; the one nobody can show any more is revoked, and the run says so.
    (tmp_path / ".demo" / "api-key").unlink()
    call_command("demo", "--no-serve", "--scale", "0.5", stdout=(third := io.StringIO()))
    assert re.search(r"API key:\s+(ll_\S+)", third.getvalue()).group(1) != key
    assert "1 earlier demo key revoked" in third.getvalue()
    assert ApiKey.objects.filter(name="demo", revoked=True).count() == 1
    assert text.count("4/4 starting the server") == 0
    assert Customer.objects.count() == 9  # one per family, Geo Lookup and Parcel Track (loaded at any scale)


@pytest.mark.django_db
def test_at_the_default_scale_one_customer_is_outside_utc_and_one_has_a_negotiated_price():
    from backoffice.demo import customers_for, subscription_start_at
    from backoffice.demo_catalog import catalog_load
    from catalog.models import Plan
    from catalog.overrides import price_overrides_parse

    specs = {s.external_id: s for s in customers_for(1.0)}
    la = specs["podcast-lab"]
    assert la.timezone == "America/Los_Angeles"
    # Its subscription starts at local midnight on the 1st: 2026-01-01 00:00 PST = 08:00 UTC.
    assert subscription_start_at(la, utc(2026, 1, 1)) == utc(2026, 1, 1, 8)
    deal = specs["byte-works"]
    catalog_load(effective_from=utc(2025, 12, 1), now=utc(2026, 1, 1))
    version = Plan.objects.get(key=deal.plan).versions.get(number=1)
    # The override names a price of its plan with values of that price's model.
    assert price_overrides_parse(list(deal.price_overrides), prices=version.prices.all()) == [
        {"price": "Standard-model requests", "unit_amount": "0.03"}
    ]
    assert all(s.timezone == "UTC" and not s.price_overrides for s in customers_for(SMALL))
