"""Plan changes (DESIGN.md "Subscription changes"): the worked examples, preview, scheduled changes, validation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import Plan, PlanVersion, Price
from core.errors import Conflict, ValidationFailed
from customers.models import Subscription
from invoicing.models import CreditNote, Invoice, InvoiceLine
from invoicing.services import billing_run_execute, subscription_change, subscription_change_cancel
from tests.factories.catalog import PlanCreditGrantFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory
from tests.factories.invoicing import events_create
from tests.factories.metering import MeterFactory
from wallets.models import CreditGrant, Wallet
from wallets.services import wallet_consume

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db


def fee_plan(key: str, amount: str, interval: str = "month", *, name: str | None = None) -> PlanVersion:
    version = PlanVersionFactory(
        published=True, number=1, plan__key=key, plan__name=name or key.title(), plan__interval=interval
    )
    PriceFactory(plan_version=version, name=f"{name or key.title()} fee", amount=Decimal(amount))
    return version


def counts() -> tuple[int, ...]:
    return (
        Invoice.objects.count(),
        CreditNote.objects.count(),
        Subscription.objects.count(),
        CreditGrant.objects.count(),
    )


def test_lago_upgrade_monthly_to_yearly_now_credit_note_and_change_invoice():
    monthly = fee_plan("monthly", "10.00")
    yearly = fee_plan("yearly", "120.00", "year")
    sub = start(CustomerFactory(), monthly.plan, utc(2023, 6, 29, 12, 12), billing="anniversary")
    t = utc(2023, 9, 28, 5)
    billing_run_execute(now=t)  # Jul 29 and Aug 29 boundaries
    aug = Invoice.objects.get(subscription=sub, billing_boundary_at=utc(2023, 8, 29, 12, 12))
    assert aug.total == Decimal("10.00") and aug.amount_due == Decimal("10.00")
    before = counts()

    # Preview first: the same code, rolled back.
    preview = subscription_change(subscription=sub, plan=yearly.plan, now=t, preview=True)
    assert counts() == before
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.ACTIVE
    assert preview.applies == "now" and preview.upgrade

    outcome = subscription_change(subscription=sub, plan=yearly.plan, now=t)
    # Upgrade: 120.00 x 1 per year >= 10.00 x 12 = 120.00 (equality is an upgrade), so "auto" applies now.
    assert outcome.applies == "now" and outcome.upgrade
    assert outcome.old_yearly == Decimal("120.00") and outcome.new_yearly == Decimal("120.00")
    # Credit note: 1 unused day (Sep 28 -> Sep 29) of the period's 31 (Aug 29 -> Sep 29): 10.00 x 1/31 = 0.3226
    # -> 0.32, on the Aug 29 invoice, which then owes 10.00 - 0.32 = 9.68.
    [note] = outcome.credit_notes
    assert note.amount == Decimal("0.32") and note.invoice_id == aug.pk
    assert note.refund_to == CreditNote.RefundTo.INVOICE
    aug.refresh_from_db()
    assert aug.amount_due == Decimal("9.68")
    # Change invoice: the yearly period containing Sep 28 from the anchor is Jun 29 2023 -> Jun 29 2024 (366 days,
    # Feb 29 2024 included); Sep 28 -> Jun 29 is 275 days: 120.00 x 275/366 = 90.1639 -> 90.16.
    invoice = outcome.invoice
    assert invoice.total == Decimal("90.16") and invoice.reason == Invoice.Reason.CHANGE
    [line] = invoice.lines.all()
    assert line.kind == InvoiceLine.Kind.PRORATION
    assert line.details["proration"]["text"] == "275 of 366 days"
    assert (line.period_start, line.period_end) == (t, utc(2024, 6, 29, 12, 12))
    assert line.details["plan_change"]["why"].startswith("Yearly, 275 of 366 days")
    new = outcome.subscription
    assert new.previous_subscription_id == sub.pk and new.plan == yearly.plan
    assert (new.current_period_start, new.current_period_end) == (t, utc(2024, 6, 29, 12, 12))
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.ENDED and sub.ended_at == t
    assert sub.next_subscription_or_none == new
    # Its periods (the admin's table) begin at the change, counted from the old anchor.
    from customers.selectors import subscription_periods

    [row] = subscription_periods(subscription=new, until=utc(2023, 10, 1))
    assert (row.start, row.end, row.is_current, row.days) == (t, utc(2024, 6, 29, 12, 12), True, 275)
    # The preview showed the same numbers.
    assert preview.invoice.total == invoice.total
    assert [n.amount for n in preview.credit_notes] == [Decimal("0.32")]

    # The new subscription's next boundary bills the next year in full.
    billing_run_execute(now=utc(2024, 6, 29, 12, 12))
    new.refresh_from_db()
    assert invoices_of(new)[-1].total == Decimal("120.00")


def test_lago_downgrade_monthly_to_yearly_at_the_boundary():
    monthly = fee_plan("monthly", "129.00")
    yearly = fee_plan("yearly", "1188.00", "year")
    sub = start(CustomerFactory(), monthly.plan, utc(2023, 7, 19), billing="anniversary")
    billing_run_execute(now=utc(2023, 11, 9))  # Aug, Sep, Oct 19 boundaries
    invoices_before = Invoice.objects.count()
    outcome = subscription_change(subscription=sub, plan=yearly.plan, now=utc(2023, 11, 9))
    # 1,188.00 a year < 129.00 x 12 = 1,548.00: a downgrade, applied at the period's end (Nov 19); nothing billed.
    assert outcome.applies == "period_end" and not outcome.upgrade
    assert outcome.invoice is None and outcome.credit_notes == []
    assert Invoice.objects.count() == invoices_before
    sub.refresh_from_db()
    assert sub.scheduled_plan == yearly.plan and sub.status == Subscription.Status.ACTIVE

    billing_run_execute(now=utc(2023, 11, 19))
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.ENDED and sub.ended_at == utc(2023, 11, 19)
    new = sub.next_subscription_or_none
    assert new.plan == yearly.plan
    assert (new.current_period_start, new.current_period_end) == (utc(2023, 11, 19), utc(2024, 7, 19))
    boundary = Invoice.objects.get(subscription=sub, billing_boundary_at=utc(2023, 11, 19))
    [line] = boundary.lines.all()
    # The yearly period from the anchor containing Nov 19 is Jul 19 2023 -> Jul 19 2024 (366 days);
    # Nov 19 -> Jul 19 is 243 days: 1,188.00 x 243/366 = 788.7541 -> 788.75.
    assert line.amount == Decimal("788.75")
    assert line.details["proration"]["text"] == "243 of 366 days"
    assert line.period_end == utc(2024, 7, 19)
    assert Invoice.objects.filter(subscription=new).count() == 0  # its first fees are on the boundary invoice


def test_cancel_scheduled_change_keeps_the_plan():
    monthly = fee_plan("monthly", "129.00")
    yearly = fee_plan("yearly", "1188.00", "year")
    sub = start(CustomerFactory(), monthly.plan, utc(2023, 7, 19), billing="anniversary")
    subscription_change(subscription=sub, plan=yearly.plan, at="period_end", now=utc(2023, 7, 20))
    subscription_change_cancel(subscription=sub, now=utc(2023, 7, 21))
    sub.refresh_from_db()
    assert sub.scheduled_plan is None
    with pytest.raises(Conflict):
        subscription_change_cancel(subscription=sub, now=utc(2023, 7, 21))
    billing_run_execute(now=utc(2023, 8, 19))
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.ACTIVE and sub.current_period_end == utc(2023, 9, 19)
    assert invoices_of(sub)[-1].total == Decimal("129.00")


def test_plan_credits_follow_the_money_starter_to_pro():
    meter = MeterFactory(key="calls", event_name="call")
    starter = fee_plan("starter", "100.00")
    PriceFactory(
        plan_version=starter,
        name="Calls",
        model=Price.Model.PER_UNIT,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        unit_amount=Decimal("0.01"),
        meter=meter,
    )
    PlanCreditGrantFactory(plan_version=starter, credits=Decimal("2000"), rollover_cap=None)
    pro = fee_plan("pro", "300.00")
    PlanCreditGrantFactory(plan_version=pro, credits=Decimal("6000"), rollover_cap=None)
    customer = CustomerFactory(external_id="clay")
    # A usage-only wallet: plan credits go to it, and it pays only usage lines.
    Wallet.objects.create(customer=customer, currency="USD", applies_to=Wallet.AppliesTo.USAGE)
    sub = start(customer, starter.plan, utc(2026, 4, 1))
    wallet = Wallet.objects.get(customer=customer)
    assert wallet.balance == Decimal("2000")
    wallet_consume(
        wallet=wallet, credits=Decimal("400"), reference="product", idempotency_key="use-1", now=utc(2026, 4, 10)
    )
    events_create(customer_external_id="clay", event_name="call", count=1000, start=utc(2026, 4, 3))
    april = invoices_of(sub)[0]
    assert april.total == Decimal("100.00")

    t = utc(2026, 4, 16)
    outcome = subscription_change(subscription=sub, plan=pro.plan, now=t)
    assert outcome.applies == "now"  # 300 x 12 >= 100 x 12: upgrade
    # Credit note: Apr 16 -> May 1 is 15 unused days of 30: 100.00 x 15/30 = 50.00 on the Apr 1 invoice.
    [note] = outcome.credit_notes
    assert note.amount == Decimal("50.00") and note.invoice_id == april.pk
    # Change invoice: April's usage so far on Starter (1,000 calls x 0.01 = 10.00, Apr 1 -> Apr 16) and Pro's fee
    # for 15 of 30 days: 300.00 x 15/30 = 150.00. Total 160.00.
    usage, fee = outcome.invoice.lines.order_by("position")
    assert usage.kind == InvoiceLine.Kind.USAGE and usage.amount == Decimal("10.00")
    assert (usage.period_start, usage.period_end) == (utc(2026, 4, 1), t)
    assert fee.amount == Decimal("150.00") and fee.details["plan_change"]["why"].startswith("Pro, 15 of 30 days")
    assert outcome.invoice.total == Decimal("160.00")
    # Credits: Starter's 2,000 cut to its used share 2,000 x 15/30 = 1,000; 400 were used, so 600 of the remaining
    # 1,600 stay and 1,000 expire; cap null: the 600 carry. Pro grants 6,000 x 15/30 = 3,000: 3,600 after the
    # change. The usage-only wallet then pays the invoice's usage line: 10.00 = 10 credits -> 3,590.
    assert outcome.credits_expired == Decimal("1000")
    assert outcome.credits_granted == Decimal("3000")
    assert outcome.invoice.credits_applied == Decimal("10.00")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("3590")
    # What carries moved to the new subscription (it caps and forfeits them from now on).
    assert set(CreditGrant.objects.filter(status="active").values_list("subscription_id", flat=True)) == {
        outcome.subscription.pk
    }


def test_credit_note_goes_to_the_wallet_when_the_invoice_was_paid_and_carries_its_tax():
    basic = fee_plan("basic", "31.00")
    plus = fee_plan("plus", "62.00")
    customer = CustomerFactory()
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=Decimal("20")))
    sub = start(customer, basic.plan, utc(2026, 1, 1))
    [jan] = invoices_of(sub)
    from invoicing.services import payment_record

    payment_record(invoice=jan, amount=Decimal("37.20"), now=utc(2026, 1, 2))
    outcome = subscription_change(subscription=sub, plan=plus.plan, now=utc(2026, 1, 11))
    # Jan 11 -> Feb 1: 21 unused days of 31: 31.00 x 21/31 = 21.00, plus 20% tax 4.20 = 25.20; the invoice is
    # paid, so it all goes to the wallet (created at rate 1, as plan credits would create it): 25.20 credits.
    [note] = outcome.credit_notes
    assert note.amount == Decimal("25.20") and note.refund_to == CreditNote.RefundTo.WALLET
    # The change invoice: Plus for Jan 11 -> Feb 1, 62.00 x 21/31 = 42.00, plus 8.40 tax = 50.40; the refunded
    # 25.20 credits pay it first (an all-lines wallet), leaving 25.20 due and the wallet empty.
    invoice = outcome.invoice
    assert invoice.total == Decimal("50.40") and invoice.credits_applied == Decimal("25.20")
    assert invoice.amount_due == Decimal("25.20")
    wallet = Wallet.objects.get(customer=customer)
    assert wallet.balance == Decimal("0")


def test_validation_and_conflicts():
    monthly = fee_plan("monthly", "10.00")
    yearly = fee_plan("yearly", "120.00", "year")
    eur = PlanVersionFactory(published=True, plan__currency="EUR", plan__key="euro")
    draft_only = PlanVersionFactory(plan__key="drafty")
    sub = start(CustomerFactory(), monthly.plan, utc(2026, 1, 1))
    now = utc(2026, 1, 10)
    for plan, field in ((monthly.plan, "plan"), (eur.plan, "plan"), (draft_only.plan, "plan")):
        with pytest.raises(ValidationFailed) as err:
            subscription_change(subscription=sub, plan=plan, now=now)
        assert err.value.field == field
    for effective_at in (utc(2025, 12, 31), utc(2026, 1, 11)):
        with pytest.raises(ValidationFailed) as err:
            subscription_change(subscription=sub, plan=yearly.plan, effective_at=effective_at, now=now)
        assert err.value.field == "effective_at"
    with pytest.raises(ValidationFailed) as err:
        subscription_change(subscription=sub, plan=yearly.plan, at="later", now=now)
    assert err.value.field == "at"
    subscription_change(subscription=sub, plan=yearly.plan, at="now", now=now)
    with pytest.raises(Conflict):
        subscription_change(subscription=sub, plan=yearly.plan, now=now)
    assert Plan.objects.count() == 4


def test_entitlements_switch_at_the_change_and_the_billing_period_window_does_not_reset():
    from catalog.models import Entitlement
    from customers.entitlements import entitlement_check
    from tests.factories.catalog import EntitlementFactory, FeatureFactory

    feature = FeatureFactory(key="exports", metered=True, meter__event_name="export")
    starter = fee_plan("starter", "100.00")
    pro = fee_plan("pro", "300.00")
    for version, limit in ((starter, "100"), (pro, "200")):
        EntitlementFactory(
            plan_version=version, feature=feature, limit=Decimal(limit), reset=Entitlement.Reset.BILLING_PERIOD
        )
    customer = CustomerFactory(external_id="ent")
    sub = start(customer, starter.plan, utc(2026, 4, 1))
    events_create(customer_external_id="ent", event_name="export", count=100, start=utc(2026, 4, 5))
    before = entitlement_check(customer=customer, feature_key="exports", now=utc(2026, 4, 16))
    # Starter: 100 used of 100, hard limit: not allowed.
    assert (before.usage, before.limit, before.allowed) == (Decimal(100), Decimal(100), False)
    subscription_change(subscription=sub, plan=pro.plan, now=utc(2026, 4, 16))
    after = entitlement_check(customer=customer, feature_key="exports", now=utc(2026, 4, 16, 1))
    # Pro's limit from the change on; the window still starts Apr 1 (the change is not a new period): 100 of 200.
    assert (after.usage, after.limit, after.remaining, after.allowed) == (
        Decimal(100),
        Decimal(200),
        Decimal(100),
        True,
    )
    assert (after.window_start, after.window_end) == (utc(2026, 4, 1), utc(2026, 5, 1))


def test_a_run_catching_up_past_a_scheduled_change_bills_the_successor_too():
    monthly = fee_plan("monthly", "129.00")
    yearly = fee_plan("yearly", "1188.00", "year")
    sub = start(CustomerFactory(), monthly.plan, utc(2023, 7, 19), billing="anniversary")
    subscription_change(subscription=sub, plan=yearly.plan, at="period_end", now=utc(2023, 7, 20))
    billing_run_execute(now=utc(2024, 7, 20))
    sub.refresh_from_db()
    new = sub.next_subscription_or_none
    # Aug 19 2023, the change: Aug 19 2023 -> Jul 19 2024 is 335 of the yearly period's 366 days:
    # 1,188.00 x 335/366 = 1,087.3770 -> 1,087.38. Jul 19 2024, the successor's own boundary: a full year, 1,188.00.
    change = Invoice.objects.get(subscription=sub, billing_boundary_at=utc(2023, 8, 19))
    assert change.lines.get(price__plan_version=yearly).amount == Decimal("1087.38")
    assert [i.total for i in invoices_of(new)] == [Decimal("1188.00")]
    new.refresh_from_db()
    assert new.current_period_end == utc(2025, 7, 19)


def test_a_period_billed_ahead_changes_only_at_its_end():
    monthly = fee_plan("monthly", "10.00")
    cheaper = fee_plan("cheaper", "5.00")
    sub = start(CustomerFactory(), monthly.plan, utc(2026, 1, 1))
    billing_run_execute(now=utc(2026, 2, 1))  # the run billed February ahead: its period starts after now below
    now = utc(2026, 1, 31)
    with pytest.raises(ValidationFailed) as err:
        subscription_change(subscription=sub, plan=cheaper.plan, at="now", now=now)
    assert err.value.field == "effective_at"
    outcome = subscription_change(subscription=sub, plan=cheaper.plan, now=now)  # auto: a downgrade, at period end
    assert outcome.applies == "period_end" and outcome.effective_at == utc(2026, 3, 1)


def test_the_upcoming_invoice_shows_what_a_scheduled_change_will_bill():
    from invoicing.selectors import upcoming_invoice_preview

    monthly = fee_plan("monthly", "129.00")
    yearly = fee_plan("yearly", "1188.00", "year")
    customer = CustomerFactory()
    sub = start(customer, monthly.plan, utc(2023, 7, 19), billing="anniversary")
    billing_run_execute(now=utc(2023, 11, 9))
    subscription_change(subscription=sub, plan=yearly.plan, now=utc(2023, 11, 9))
    preview = upcoming_invoice_preview(customer=customer, now=utc(2023, 11, 9))
    # The Nov 19 boundary will bill the yearly fee for Nov 19 2023 -> Jul 19 2024: 1,188.00 x 243/366 = 788.75.
    assert [line.amount for line in preview.lines] == [Decimal("788.75")]
    billing_run_execute(now=utc(2023, 11, 19))
    assert Invoice.objects.get(subscription=sub, billing_boundary_at=utc(2023, 11, 19)).total == preview.total


def test_a_partly_paid_invoice_gets_two_notes_what_it_owes_then_the_wallet():
    from invoicing.services import payment_record

    basic = fee_plan("basic", "31.00")
    plus = fee_plan("plus", "62.00")
    customer = CustomerFactory()
    sub = start(customer, basic.plan, utc(2026, 1, 1))
    [jan] = invoices_of(sub)
    payment_record(invoice=jan, amount=Decimal("20.00"), now=utc(2026, 1, 2))  # 11.00 still owed
    outcome = subscription_change(subscription=sub, plan=plus.plan, now=utc(2026, 1, 11))
    # 31.00 x 21 unused days / 31 = 21.00: 11.00 reduces what the invoice owes, the other 10.00 (of the 20.00
    # received) goes to the wallet as 10 credits (a rate-1 wallet, created for it).
    assert [(n.amount, n.refund_to) for n in outcome.credit_notes] == [
        (Decimal("11.00"), CreditNote.RefundTo.INVOICE),
        (Decimal("10.00"), CreditNote.RefundTo.WALLET),
    ]
    jan.refresh_from_db()
    assert jan.amount_due == Decimal("0") and jan.status == Invoice.Status.PAID
    # The change invoice (62.00 x 21/31 = 42.00) is paid first by those 10 credits: 32.00 due.
    assert outcome.invoice.total == Decimal("42.00") and outcome.invoice.amount_due == Decimal("32.00")


def test_a_draft_that_charged_the_fees_is_finalized_first():
    basic = fee_plan("basic", "31.00")
    plus = fee_plan("plus", "62.00")
    sub = start(CustomerFactory(invoice_grace_days=3), basic.plan, utc(2026, 1, 1))
    [jan] = invoices_of(sub)
    assert jan.status == Invoice.Status.DRAFT
    outcome = subscription_change(subscription=sub, plan=plus.plan, now=utc(2026, 1, 2))
    jan.refresh_from_db()
    # Finalized (numbered) before it is credited: 31.00 x 30 unused days (Jan 2 -> Feb 1) / 31 = 30.00.
    assert jan.status == Invoice.Status.FINALIZED and jan.number
    [note] = outcome.credit_notes
    assert note.amount == Decimal("30.00") and jan.amount_due == Decimal("1.00")
    # The change invoice waits out the customer's grace days like any new invoice.
    assert outcome.invoice.status == Invoice.Status.DRAFT


def test_a_rollover_cap_of_zero_expires_the_old_plans_share_at_the_change():
    starter = fee_plan("starter", "100.00")
    PlanCreditGrantFactory(plan_version=starter, credits=Decimal("2000"), rollover_cap=Decimal("0"))
    pro = fee_plan("pro", "300.00")
    PlanCreditGrantFactory(plan_version=pro, credits=Decimal("6000"), rollover_cap=None)
    customer = CustomerFactory()
    Wallet.objects.create(customer=customer, currency="USD", applies_to=Wallet.AppliesTo.USAGE)
    sub = start(customer, starter.plan, utc(2026, 4, 1))
    wallet = Wallet.objects.get(customer=customer)
    wallet_consume(wallet=wallet, credits=Decimal("400"), reference="p", idempotency_key="u", now=utc(2026, 4, 10))
    outcome = subscription_change(subscription=sub, plan=pro.plan, now=utc(2026, 4, 16))
    # Cut to the share: 1,000 of the 1,600 left expire; the 600 kept then meet the cap of 0 and expire too.
    # Pro grants 3,000: the wallet holds 3,000.
    assert outcome.credits_expired == Decimal("1600")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("3000")
