"""Coupons on subscription invoices: the issue's worked examples, drafts, void and the rules around them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import Price
from core.errors import Conflict, ValidationFailed
from invoicing.models import AppliedCoupon, InvoiceCoupon
from invoicing.services import billing_run_execute, invoice_finalize, invoice_recalculate, invoice_void
from invoicing.services.coupons import applied_coupon_end, coupon_create, customer_coupon_apply
from tests.factories.catalog import PlanFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory
from tests.factories.invoicing import events_create
from tests.factories.metering import MeterFactory

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db
D = Decimal
JAN1, FEB1, MAR1, APR1 = utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 4, 1)


def _usage_price(version, name, position):
    """$1.00 per event, in arrears."""
    return PriceFactory(
        plan_version=version,
        name=name,
        model=Price.Model.PER_UNIT,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        unit_amount=D("1.00"),
        meter=MeterFactory(event_name=f"{name.lower().replace(' ', '_')}_{version.pk}"),
        position=position,
    )


def _plan(fee: str, *, key: str | None = None, currency: str = "USD"):
    plan = PlanFactory(key=key, currency=currency) if key else PlanFactory(currency=currency)
    version = PlanVersionFactory(plan=plan, published=True, number=1)
    PriceFactory(plan_version=version, name="Platform fee", amount=D(fee), position=0)
    return version


def _apply(customer, code, now=JAN1):
    from invoicing.models import Coupon

    return customer_coupon_apply(customer=customer, coupon=Coupon.objects.get(code=code), now=now)


def test_worked_example_fixed_10_over_100_50_30_with_tax_20():
    version = _plan("100")
    storage, calls = _usage_price(version, "Storage", 1), _usage_price(version, "Calls", 2)
    customer = CustomerFactory(external_id="launch")
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=D("20")))
    sub = start(customer, version.plan, JAN1)
    coupon_create(code="LAUNCH10", kind="fixed", amount=D("10.00"), currency="USD", duration="once")
    _apply(customer, "LAUNCH10")
    events_create(customer_external_id="launch", event_name=storage.meter.event_name, count=50, start=utc(2026, 1, 5))
    events_create(
        customer_external_id="launch", event_name=calls.meter.event_name, count=30, start=utc(2026, 1, 6), prefix="c"
    )
    billing_run_execute(now=FEB1)
    jan, feb = invoices_of(sub)
    # January's invoice was created before the coupon was applied: $100 + 20% = $120, no discount.
    assert (jan.discount, jan.total) == (D("0"), D("120.00"))
    # Feb 1: usage 50.00 + 30.00 (January) and the fee 100.00 (February): subtotal 180.00. The 10.00 coupon by
    # largest remainder: 5.5555 -> 5.55, 2.7777 -> 2.78, 1.6666 -> 1.67. Tax 20% x (180 - 10) = 34.00, total 204.00.
    assert (feb.subtotal, feb.discount, feb.tax, feb.total) == (D("180.00"), D("10.00"), D("34.00"), D("204.00"))
    by_amount = {line.amount: line for line in feb.lines.all()}
    assert {a: line.discount for a, line in by_amount.items()} == {
        D("100.00"): D("5.55"),
        D("50.00"): D("2.78"),
        D("30.00"): D("1.67"),
    }
    assert by_amount[D("100.00")].details["discounts"] == [{"coupon": "LAUNCH10", "amount": "5.55"}]
    # Per-line tax on the discounted amounts: 94.45 x 20% = 18.89, 47.22 -> 9.444, 28.33 -> 5.666 -> 9.44 / 5.67.
    assert sum(line.tax for line in feb.lines.all()) == D("34.00")
    [row] = feb.coupon_discounts.all()
    assert row.amount == D("10.00") and row.explanation == "LAUNCH10: $10.00 fixed, once; now used"
    applied = AppliedCoupon.objects.get(customer=customer)
    assert (applied.status, applied.remaining_amount) == (AppliedCoupon.Status.USED, D("0.00"))


def test_worked_example_fixed_100_on_60_keeps_40_for_the_next_invoice():
    version = _plan("60")
    customer = CustomerFactory()
    coupon_create(code="WELCOME100", kind="fixed", amount=D("100.00"), currency="USD")
    _apply(customer, "WELCOME100")
    sub = start(customer, version.plan, JAN1)
    applied = AppliedCoupon.objects.get(customer=customer)
    # January: the 60.00 fee is discounted 60.00 (capped at the lines): total 0.00, 40.00 left.
    [jan] = invoices_of(sub)
    assert (jan.subtotal, jan.discount, jan.total, jan.status) == (D("60.00"), D("60.00"), D("0.00"), "paid")
    applied.refresh_from_db()
    assert (applied.remaining_amount, applied.status) == (D("40.00"), "active")
    assert jan.coupon_discounts.get().explanation == "WELCOME100: $100.00 fixed, once; $40.00 left"
    # February: 40.00 off 60.00 -> 20.00; the coupon is used. March: no discount, 60.00.
    billing_run_execute(now=FEB1)
    billing_run_execute(now=MAR1)
    _jan, feb, mar = invoices_of(sub)
    assert (feb.discount, feb.total) == (D("40.00"), D("20.00"))
    assert (mar.discount, mar.total) == (D("0.00"), D("60.00"))
    assert not mar.coupon_discounts.exists()
    applied.refresh_from_db()
    assert (applied.remaining_amount, applied.status) == (D("0.00"), "used")


def test_worked_example_10_percent_limited_to_plan_b():
    plan_a = _plan("50", key="plan-a")
    plan_b = _plan("80", key="plan-b")
    customer = CustomerFactory()
    coupon_create(code="B10", kind="percentage", percentage=D("10"), duration="once", plans=["plan-b"])
    _apply(customer, "B10")
    sub_a = start(customer, plan_a.plan, JAN1)
    sub_b = start(customer, plan_b.plan, JAN1)
    # Plan A's invoice, created first, is not touched (and does not use the once coupon up).
    [a_jan] = invoices_of(sub_a)
    assert (a_jan.discount, a_jan.total) == (D("0.00"), D("50.00"))
    # Plan B's 80.00: 10% = 8.00 -> 72.00; the once coupon is used.
    [b_jan] = invoices_of(sub_b)
    assert (b_jan.discount, b_jan.total) == (D("8.00"), D("72.00"))
    assert b_jan.coupon_discounts.get().explanation == "B10: 10% off, once; now used"
    assert AppliedCoupon.objects.get(customer=customer).status == "used"
    billing_run_execute(now=FEB1)
    assert invoices_of(sub_b)[1].discount == 0


def test_repeating_coupon_applies_to_n_invoices_then_is_used():
    version = _plan("50")
    customer = CustomerFactory()
    coupon_create(code="SUPPORT10", kind="percentage", percentage=D("10"), duration="repeating", periods=2)
    _apply(customer, "SUPPORT10")
    sub = start(customer, version.plan, JAN1)
    billing_run_execute(now=FEB1)
    billing_run_execute(now=MAR1)
    # 10% of 50.00 = 5.00 on January and February; March pays 50.00.
    assert [i.discount for i in invoices_of(sub)] == [D("5.00"), D("5.00"), D("0.00")]
    assert (
        invoices_of(sub)[0].coupon_discounts.get().explanation
        == "SUPPORT10: 10% off, repeating 2 invoices; 1 invoice left"
    )
    applied = AppliedCoupon.objects.get(customer=customer)
    assert (applied.remaining_periods, applied.status) == (0, "used")


def test_several_coupons_in_the_order_applied_each_on_what_the_earlier_left():
    version = _plan("100")
    customer = CustomerFactory()
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=D("20")))
    coupon_create(code="FIRST30", kind="fixed", amount=D("30.00"), currency="USD", duration="forever")
    coupon_create(code="THEN10PCT", kind="percentage", percentage=D("10"), duration="forever")
    _apply(customer, "FIRST30")
    _apply(customer, "THEN10PCT")
    sub = start(customer, version.plan, JAN1)
    [jan] = invoices_of(sub)
    # 30.00 first, then 10% of what is left (70.00) = 7.00: discount 37.00; tax 20% x 63.00 = 12.60; total 75.60.
    assert (jan.discount, jan.tax, jan.total) == (D("37.00"), D("12.60"), D("75.60"))
    assert [(r.applied_coupon.coupon.code, r.amount) for r in jan.coupon_discounts.all()] == [
        ("FIRST30", D("30.00")),
        ("THEN10PCT", D("7.00")),
    ]


def test_recalculating_a_draft_gives_the_fixed_coupon_back_and_takes_again():
    version = PlanVersionFactory(published=True, number=1)
    usage = _usage_price(version, "Calls", 0)
    customer = CustomerFactory(external_id="graced", invoice_grace_days=3)
    sub = start(customer, version.plan, JAN1)
    coupon_create(code="FIX100", kind="fixed", amount=D("100.00"), currency="USD")
    applied = _apply(customer, "FIX100")
    events_create(customer_external_id="graced", event_name=usage.meter.event_name, count=30, start=utc(2026, 1, 3))
    billing_run_execute(now=FEB1)
    draft = invoices_of(sub)[1]
    # The draft holds 30.00 of the coupon: 70.00 left.
    assert (draft.status, draft.discount, draft.total) == ("draft", D("30.00"), D("0.00"))
    applied.refresh_from_db()
    assert applied.remaining_amount == D("70.00")
    # 50 late January events: recalculation gives the 30.00 back (100.00) and takes 80.00: 20.00 left.
    events_create(
        customer_external_id="graced",
        event_name=usage.meter.event_name,
        count=50,
        start=utc(2026, 1, 20),
        prefix="late",
    )
    draft = invoice_recalculate(invoice=draft, now=utc(2026, 2, 2))
    assert (draft.subtotal, draft.discount, draft.total) == (D("80.00"), D("80.00"), D("0.00"))
    applied.refresh_from_db()
    assert (applied.remaining_amount, applied.status) == (D("20.00"), "active")
    assert draft.coupon_discounts.count() == 1 and draft.coupon_discounts.get().amount == D("80.00")
    # Recalculating again changes nothing (gives 80.00 back, takes 80.00).
    invoice_recalculate(invoice=draft, now=utc(2026, 2, 2))
    applied.refresh_from_db()
    assert applied.remaining_amount == D("20.00")


def test_a_draft_recalculated_after_a_coupon_was_applied_does_not_get_it():
    version = _plan("60")
    customer = CustomerFactory(invoice_grace_days=3)
    sub = start(customer, version.plan, JAN1)
    coupon_create(code="LATE", kind="fixed", amount=D("10.00"), currency="USD")
    applied = _apply(customer, "LATE")
    [draft] = invoices_of(sub)
    draft = invoice_recalculate(invoice=draft, now=utc(2026, 1, 2))
    # Created before the coupon was applied: the draft stays undiscounted, the coupon keeps its 10.00.
    assert draft.discount == 0
    applied.refresh_from_db()
    assert applied.remaining_amount == D("10.00")


def test_void_gives_a_fixed_coupon_back_its_amount_and_reactivates_it():
    version = _plan("60")
    customer = CustomerFactory()
    coupon_create(code="BACK", kind="fixed", amount=D("50.00"), currency="USD")
    applied = _apply(customer, "BACK")
    sub = start(customer, version.plan, JAN1)
    [jan] = invoices_of(sub)
    # 60.00 - 50.00 = 10.00 due; the coupon is used.
    assert (jan.discount, jan.total, jan.status) == (D("50.00"), D("10.00"), "finalized")
    applied.refresh_from_db()
    assert applied.status == "used"
    invoice_void(invoice=jan, now=utc(2026, 1, 2))
    applied.refresh_from_db()
    assert (applied.remaining_amount, applied.status) == (D("50.00"), "active")
    # The voided document still shows its discount; the row is marked given back (not given twice).
    jan.refresh_from_db()
    row = jan.coupon_discounts.get()
    assert jan.discount == D("50.00") and row.given_back_at is not None
    # The next invoice gets the coupon again: February 60.00 - 50.00.
    billing_run_execute(now=FEB1)
    assert invoices_of(sub)[1].discount == D("50.00")


def test_finance_ends_an_applied_coupon_for_future_invoices_only():
    version = _plan("40")
    customer = CustomerFactory(invoice_grace_days=5)
    coupon_create(code="FOREVER5", kind="fixed", amount=D("5.00"), currency="USD", duration="forever")
    applied = _apply(customer, "FOREVER5")
    sub = start(customer, version.plan, JAN1)
    applied_coupon_end(applied=applied, status="removed", now=utc(2026, 1, 10))
    # The January draft keeps its 5.00; February's invoice has none.
    [jan] = invoices_of(sub)
    assert jan.discount == D("5.00")
    # Recalculated after the removal, the draft keeps the coupon it had.
    jan = invoice_recalculate(invoice=jan, now=utc(2026, 1, 10))
    assert (jan.discount, jan.total) == (D("5.00"), D("35.00"))
    invoice_finalize(invoice=jan, now=utc(2026, 1, 11))
    billing_run_execute(now=FEB1)
    assert invoices_of(sub)[1].discount == 0
    with pytest.raises(Conflict):
        applied_coupon_end(applied=applied, status="expired", now=utc(2026, 2, 2))


def test_one_off_and_credit_purchase_invoices_never_get_coupons():
    from invoicing.services.one_off import OneOffLine, one_off_invoice_create

    customer = CustomerFactory()
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=D("20")))
    coupon_create(code="ALL10", kind="percentage", percentage=D("10"), duration="forever")
    applied = _apply(customer, "ALL10")
    invoice = one_off_invoice_create(
        customer=customer, lines=[OneOffLine(description="Onboarding package", amount=D("500.00"))], now=JAN1
    )
    # One line 500.00, VAT 20%: total 600.00, kind one_off, numbered; the coupon is untouched.
    assert (invoice.kind, invoice.subtotal, invoice.discount, invoice.tax, invoice.total) == (
        "one_off",
        D("500.00"),
        D("0.00"),
        D("100.00"),
        D("600.00"),
    )
    assert invoice.number and invoice.status == "finalized" and invoice.subscription is None
    assert not InvoiceCoupon.objects.exists()
    applied.refresh_from_db()
    assert applied.status == "active"


def test_bad_coupons_and_applications_are_400_naming_the_field():
    PlanFactory(key="eur-plan", currency="EUR")
    cases = [
        (dict(code="P0", kind="percentage", percentage=D("0")), "percentage"),
        (dict(code="P101", kind="percentage", percentage=D("100.01")), "percentage"),
        (dict(code="NOCUR", kind="fixed", amount=D("10")), "currency"),
        (dict(code="REP", kind="percentage", percentage=D("5"), duration="repeating"), "periods"),
        (dict(code="UNKNOWN", kind="percentage", percentage=D("5"), plans=["nope"]), "plans"),
        (dict(code="EURPLAN", kind="fixed", amount=D("5"), currency="USD", plans=["eur-plan"]), "plans"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationFailed) as exc:
            coupon_create(**kwargs)
        assert exc.value.field == field, kwargs
    customer = CustomerFactory(currency="USD")
    coupon_create(code="EUR5", kind="fixed", amount=D("5.00"), currency="EUR")
    coupon_create(code="OLD", kind="percentage", percentage=D("5"), expires_at=utc(2026, 1, 1))
    coupon_create(code="ONCE", kind="percentage", percentage=D("5"))
    _apply(customer, "ONCE", now=utc(2026, 2, 1))
    for code in ("EUR5", "OLD", "ONCE"):
        with pytest.raises(ValidationFailed) as exc:
            _apply(customer, code, now=utc(2026, 2, 1))
        assert exc.value.field == "coupon", code


def test_usage_only_wallet_pays_the_usage_lines_less_their_discount():
    from wallets.services import wallet_create, wallet_grant_create

    version = _plan("10")
    calls = _usage_price(version, "Calls", 1)
    customer = CustomerFactory(external_id="usage-wallet")
    wallet = wallet_create(customer=customer, currency="USD", name="Usage credits", applies_to="usage")
    wallet_grant_create(wallet=wallet, credits=D("1000"), kind="paid", now=JAN1, idempotency_key="usage-wallet-1")
    sub = start(customer, version.plan, JAN1)
    coupon_create(code="HALF", kind="percentage", percentage=D("50"), duration="forever")
    _apply(customer, "HALF")
    events_create(customer_external_id="usage-wallet", event_name=calls.meter.event_name, count=20, start=JAN1)
    billing_run_execute(now=FEB1)
    feb = invoices_of(sub)[1]
    # Usage 20.00 + fee 10.00 = 30.00; 50% = 15.00 (10.00 on usage, 5.00 on the fee). The usage-only wallet pays the
    # usage less its discount: 20.00 - 10.00 = 10.00 (1 credit = $1); 5.00 remains due.
    assert (feb.subtotal, feb.discount, feb.total) == (D("30.00"), D("15.00"), D("15.00"))
    assert (feb.credits_applied, feb.amount_due) == (D("10.00"), D("5.00"))
