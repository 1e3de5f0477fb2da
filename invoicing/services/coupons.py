"""Coupons: create them, apply them to customers, and take their discount on subscription invoices.

DESIGN.md "Coupons, one-off invoices"; the math is :mod:`invoicing.discounts` (pure), this module feeds it rows
and writes what it decided. Rules chosen where the design is silent (docs/billing-rules.md "Coupons"):

* A coupon applies to the customer's **subscription** invoices (``Invoice.Kind.SUBSCRIPTION``: start, period end,
  cancellation, plan change, trial end) **created after** it was applied, in processing order (the rows'
  creation times), whatever ``now`` a run was given. One-off, credit-purchase and progressive invoices never get
  one.
* The discount is taken **when the invoice is created** (a draft holds it, as it holds wallet credits): the
  applied coupon's balance or count moves in the same transaction. Recalculating a draft gives back what its old
  computation took and takes it again from the coupons that were applied before the draft was created
  (:func:`invoice_discounts_release` then :func:`invoice_discounts_plan`). Voiding an invoice gives back what it
  took (a ``once`` fixed coupon's amount; the invoice a ``repeating`` or ``once`` percentage coupon counted) and
  reactivates a ``used`` coupon; the voided document keeps showing its discount.
* Concurrency: every write of an applied coupon holds its customer's lock (the customer first, then the invoice,
  then wallets and lots; applied coupons are read and written right after the customer), so two invoices of one
  customer created or finalized at once queue on it and never spend more of a fixed coupon than it has.
* Finance may end an applied coupon (``expired`` or ``removed``): it applies to no invoice created afterwards;
  drafts keep their discount, recalculated or not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Q

from catalog.models import Plan
from catalog.pricing import quantize_minor
from core.errors import Conflict, ValidationFailed
from core.money import format_money
from customers.models import Customer

from ..discounts import CouponTake, CouponTerms, DiscountLine, discounts_compute
from ..models import AppliedCoupon, Coupon, Invoice, InvoiceCoupon

ZERO = Decimal("0")


# -- coupons and applied coupons ------------------------------------------------------------------------------------


def _plans_by_key(keys: Iterable[str]) -> list[Plan]:
    keys = list(dict.fromkeys(keys))
    plans = {p.key: p for p in Plan.objects.filter(key__in=keys)}
    unknown = [k for k in keys if k not in plans]
    if unknown:
        raise ValidationFailed(f"Unknown plan: {', '.join(unknown)}.", field="plans")
    return [plans[k] for k in keys]


def coupon_terms_check(
    *,
    code: str,
    kind: str,
    amount: Decimal | None = None,
    currency: str = "",
    percentage: Decimal | None = None,
    duration: str = Coupon.Duration.ONCE,
    periods: int | None = None,
    plans: Iterable[str] = (),
) -> list[Plan]:
    """Check a new coupon's terms (400 naming the field, see :func:`coupon_create`); returns its plans. Reads only."""
    if Coupon.objects.filter(code=code).exists():
        raise ValidationFailed(f"A coupon with code '{code}' already exists.", field="code")
    if kind not in Coupon.Kind.values:
        raise ValidationFailed(f"Unknown kind '{kind}'.", field="kind")
    if duration not in Coupon.Duration.values:
        raise ValidationFailed(f"Unknown duration '{duration}'.", field="duration")
    if kind == Coupon.Kind.FIXED:
        if not currency:
            raise ValidationFailed("A fixed coupon needs a currency.", field="currency")
        if amount is None or amount <= 0:
            raise ValidationFailed("A fixed coupon needs an amount greater than 0.", field="amount")
        if quantize_minor(amount, currency) != amount:
            raise ValidationFailed(f"Must be in whole minor units of {currency}.", field="amount")
        if percentage is not None:
            raise ValidationFailed("A fixed coupon has an amount, not a percentage.", field="percentage")
    else:
        if percentage is None or not ZERO < percentage <= 100:
            raise ValidationFailed(
                "A percentage coupon needs a percentage above 0 and at most 100.", field="percentage"
            )
        if amount is not None:
            raise ValidationFailed("A percentage coupon has a percentage, not an amount.", field="amount")
        if currency:
            raise ValidationFailed("A percentage coupon applies in any currency: leave currency out.", field="currency")
    if duration == Coupon.Duration.REPEATING:
        if periods is None or periods < 1:
            raise ValidationFailed(
                "A repeating coupon needs periods (the number of invoices, 1 or more).", field="periods"
            )
    elif periods is not None:
        raise ValidationFailed("Only a repeating coupon has periods.", field="periods")
    plan_rows = _plans_by_key(plans)
    if kind == Coupon.Kind.FIXED:
        other = [p.key for p in plan_rows if p.currency != currency]
        if other:
            raise ValidationFailed(f"Plans in another currency than {currency}: {', '.join(other)}.", field="plans")
    return plan_rows


@transaction.atomic
def coupon_create(
    *,
    code: str,
    kind: str,
    name: str = "",
    amount: Decimal | None = None,
    currency: str = "",
    percentage: Decimal | None = None,
    duration: str = Coupon.Duration.ONCE,
    periods: int | None = None,
    plans: Iterable[str] = (),
    expires_at: datetime | None = None,
) -> Coupon:
    """A new coupon; 400 naming the field for terms that do not fit its kind and duration: a duplicate ``code``, a
    fixed coupon without ``currency`` or ``amount``, a ``percentage`` outside (0, 100], a repeating coupon without
    ``periods`` (or ``periods`` on another), an unknown plan or one in another currency than a fixed coupon's
    (``plans``). Runs in its own transaction, or in a savepoint of the caller's (the admin's)."""
    plan_rows = coupon_terms_check(
        code=code,
        kind=kind,
        amount=amount,
        currency=currency,
        percentage=percentage,
        duration=duration,
        periods=periods,
        plans=plans,
    )
    coupon = Coupon.objects.create(
        code=code,
        name=name or code,
        kind=kind,
        amount=amount if kind == Coupon.Kind.FIXED else None,
        currency=currency if kind == Coupon.Kind.FIXED else "",
        percentage=percentage if kind == Coupon.Kind.PERCENTAGE else None,
        duration=duration,
        periods=periods,
        expires_at=expires_at,
    )
    coupon.plans.set(plan_rows)
    return coupon


def _lock_customer(customer_id: int) -> Customer:
    return Customer.objects.select_for_update().get(pk=customer_id)


def customer_coupon_apply_locked(*, customer: Customer, coupon: Coupon, now: datetime) -> AppliedCoupon:
    """Apply ``coupon`` to a customer whose row the caller locked. Call inside a transaction.

    400 ``coupon``: expired (``expires_at`` passed), a fixed coupon in another currency than the customer's, a
    ``once`` coupon the customer already had, or any coupon the customer has active now.
    """
    if coupon.expires_at is not None and coupon.expires_at <= now:
        raise ValidationFailed(f"Coupon {coupon.code} expired; it can no longer be applied.", field="coupon")
    if coupon.kind == Coupon.Kind.FIXED and coupon.currency != customer.currency:
        raise ValidationFailed(
            f"Coupon {coupon.code} is in {coupon.currency}; {customer.name} is billed in {customer.currency}.",
            field="coupon",
        )
    earlier = AppliedCoupon.objects.filter(customer=customer, coupon=coupon)
    if coupon.duration == Coupon.Duration.ONCE and earlier.exists():
        raise ValidationFailed(f"Coupon {coupon.code} (once) was already applied to {customer.name}.", field="coupon")
    if earlier.filter(status=AppliedCoupon.Status.ACTIVE).exists():
        raise ValidationFailed(f"Coupon {coupon.code} is already active for {customer.name}.", field="coupon")
    remaining_amount = None
    remaining_periods = None
    if coupon.kind == Coupon.Kind.FIXED and coupon.duration == Coupon.Duration.ONCE:
        remaining_amount = coupon.amount
    elif coupon.duration == Coupon.Duration.ONCE:
        remaining_periods = 1
    elif coupon.duration == Coupon.Duration.REPEATING:
        remaining_periods = coupon.periods
    return AppliedCoupon.objects.create(
        customer=customer,
        coupon=coupon,
        remaining_amount=remaining_amount,
        remaining_periods=remaining_periods,
        applied_at=now,
    )


@transaction.atomic(durable=True)
def customer_coupon_apply(*, customer: Customer, coupon: Coupon, now: datetime) -> AppliedCoupon:
    """Apply a coupon to a customer (the customer locked first); see :func:`customer_coupon_apply_locked`."""
    return customer_coupon_apply_locked(customer=_lock_customer(customer.pk), coupon=coupon, now=now)


@transaction.atomic(durable=True)
def applied_coupon_end(*, applied: AppliedCoupon, status: str, now: datetime) -> AppliedCoupon:
    """Finance ends an applied coupon: ``expired`` or ``removed``. Future invoices only (drafts keep their
    discount). 409 when it is not active any more."""
    if status not in (AppliedCoupon.Status.EXPIRED, AppliedCoupon.Status.REMOVED):
        raise ValidationFailed(f"Cannot end a coupon as '{status}'.", field="status")
    _lock_customer(applied.customer_id)
    locked = AppliedCoupon.objects.select_related("coupon", "customer").get(pk=applied.pk)
    if locked.status != AppliedCoupon.Status.ACTIVE:
        raise Conflict(f"Coupon {locked.coupon.code} for {locked.customer.name} is {locked.status}, not active.")
    locked.status = status
    locked.ended_at = now
    locked.save(update_fields=["status", "ended_at"])
    return locked


# -- the discount of one invoice -------------------------------------------------------------------------------------


@dataclass
class CouponDiscount:
    """What one applied coupon takes from one invoice (decided, not yet written)."""

    applied: AppliedCoupon
    take: CouponTake
    explanation: str


@dataclass
class DiscountPlan:
    """The discounts :func:`invoice_discounts_plan` decided for an invoice; :func:`invoice_discounts_record`
    writes them once the invoice exists."""

    discounts: list[CouponDiscount] = field(default_factory=list)


NO_DISCOUNTS = DiscountPlan()


def _terms(applied: AppliedCoupon, currency: str) -> CouponTerms | None:
    """The math's view of an applied coupon for an invoice in ``currency``; ``None`` when it cannot apply."""
    coupon = applied.coupon
    plans = frozenset(p.pk for p in coupon.plans.all())
    if coupon.kind == Coupon.Kind.PERCENTAGE:
        if applied.remaining_periods == 0:
            return None
        return CouponTerms(key=applied.pk, kind="percentage", value=coupon.percentage, plans=plans)
    if coupon.currency != currency:
        return None
    cap = applied.remaining_amount if applied.remaining_amount is not None else coupon.amount
    if cap <= 0 or applied.remaining_periods == 0:
        return None
    return CouponTerms(key=applied.pk, kind="fixed", value=cap, plans=plans)


def _after(applied: AppliedCoupon, take: CouponTake) -> tuple[Decimal | None, int | None]:
    """``(remaining_amount, remaining_periods)`` once the take is spent."""
    amount = applied.remaining_amount
    if amount is not None:
        amount = amount - take.amount
    periods = applied.remaining_periods
    if periods is not None and take.counted:
        periods -= 1
    return amount, periods


def _explanation(applied: AppliedCoupon, take: CouponTake, currency: str) -> str:
    """One "why" per coupon: ``LAUNCH10: $100.00 fixed, once; $40.00 left``."""
    coupon = applied.coupon
    amount, periods = _after(applied, take)
    text = f"{coupon.code}: {coupon.terms_text}"
    if amount is not None:
        return f"{text}; {format_money(amount, currency)} left" if amount > 0 else f"{text}; now used"
    if periods is not None:
        return f"{text}; {periods} invoice{'s' if periods != 1 else ''} left" if periods > 0 else f"{text}; now used"
    return text


def _active_coupons(invoice: Invoice, keep: Iterable[int] = ()) -> list[AppliedCoupon]:
    """The customer's active applied coupons in the order applied; for a stored invoice, those applied before it
    was created. ``keep``: applied coupons that discounted this draft before, kept even if finance ended them since
    (an ended coupon applies to no invoice created afterwards; the draft already had it)."""
    rows = AppliedCoupon.objects.filter(customer_id=invoice.customer_id).filter(
        Q(status=AppliedCoupon.Status.ACTIVE) | Q(pk__in=list(keep))
    )
    if invoice.pk is not None and invoice.created_at is not None:
        rows = rows.filter(created_at__lt=invoice.created_at)
    return list(rows.select_related("coupon").prefetch_related("coupon__plans").order_by("created_at", "id"))


def invoice_discounts_plan(
    *, invoice: Invoice, lines: list, has_coupons: bool = True, keep: Iterable[int] = ()
) -> DiscountPlan:
    """Decide the coupons' discount of a subscription invoice and set each line's ``discount`` (and its
    ``details["discounts"]``: whose share). Writes nothing. Call inside a transaction holding the customer lock.

    ``lines``: ``LineDraft`` objects in the invoice's order. ``has_coupons=False``: the caller, holding the customer
    lock, found no active applied coupon (nothing is read). ``keep``: the applied coupons a draft had before its
    recalculation (:func:`invoice_discounts_release` returns them). Any other kind of invoice gets no discount.
    """
    for line in lines:
        line.discount = ZERO
        if isinstance(line.details, dict):
            line.details.pop("discounts", None)
    if not has_coupons or invoice.kind != Invoice.Kind.SUBSCRIPTION or not lines:
        return NO_DISCOUNTS
    applied_rows = _active_coupons(invoice, keep)
    terms = [(a, t) for a in applied_rows if (t := _terms(a, invoice.currency)) is not None]
    if not terms:
        return NO_DISCOUNTS
    currency = invoice.currency
    discount_lines = [
        DiscountLine(
            key=i, amount=line.amount, plan=line.plan_version.plan_id if line.plan_version is not None else None
        )
        for i, line in enumerate(lines)
    ]
    takes = discounts_compute(discount_lines, [t for _a, t in terms], currency)
    plan = DiscountPlan()
    for (applied, _terms_of), take in zip(terms, takes, strict=True):
        if not take.counted:
            continue
        plan.discounts.append(
            CouponDiscount(applied=applied, take=take, explanation=_explanation(applied, take, currency))
        )
        for key, share in take.shares.items():
            if share <= 0:
                continue
            line = lines[key]
            line.discount += share
            line.details = {**(line.details or {})}
            line.details.setdefault("discounts", []).append({"coupon": applied.coupon.code, "amount": f"{share:f}"})
    return plan


def invoice_discounts_record(*, invoice: Invoice, plan: DiscountPlan) -> None:
    """Write what :func:`invoice_discounts_plan` decided for the (now stored) invoice: one ``InvoiceCoupon`` row
    per coupon and the coupons' new balances (``used`` when nothing remains). Call inside the same transaction."""
    if not plan.discounts:
        return
    InvoiceCoupon.objects.bulk_create(
        [
            InvoiceCoupon(
                invoice=invoice,
                applied_coupon=d.applied,
                position=i,
                amount=d.take.amount,
                counted=d.take.counted,
                explanation=d.explanation[:300],
            )
            for i, d in enumerate(plan.discounts)
        ]
    )
    for d in plan.discounts:
        applied = d.applied
        applied.remaining_amount, applied.remaining_periods = _after(applied, d.take)
        spent = applied.remaining_amount == 0 or applied.remaining_periods == 0
        if spent and applied.status == AppliedCoupon.Status.ACTIVE:
            applied.status = AppliedCoupon.Status.USED
        applied.save(update_fields=["remaining_amount", "remaining_periods", "status"])


def invoice_discounts_release(*, invoice: Invoice, now: datetime, voided: bool = False) -> list[int]:
    """Give the coupons back what the invoice took: a ``once`` fixed coupon its amount, a counted invoice to a
    coupon that counts them; a ``used`` coupon becomes ``active`` again (an ``expired`` or ``removed`` one stays
    ended). A draft's rows are deleted (its discount is about to be computed again); a voided invoice's rows stay,
    marked given back. Returns the applied coupons' ids. Call inside a transaction holding the customer lock."""
    rows = list(
        InvoiceCoupon.objects.filter(invoice=invoice, given_back_at__isnull=True).select_related(
            "applied_coupon__coupon"
        )
    )
    for row in rows:
        applied = row.applied_coupon
        if applied.remaining_amount is not None:
            applied.remaining_amount += row.amount
        if applied.remaining_periods is not None and row.counted:
            applied.remaining_periods += 1
        if applied.status == AppliedCoupon.Status.USED:
            applied.status = AppliedCoupon.Status.ACTIVE
        applied.save(update_fields=["remaining_amount", "remaining_periods", "status"])
    if rows:
        ids = [row.pk for row in rows]
        if voided:
            InvoiceCoupon.objects.filter(pk__in=ids).update(given_back_at=now)
        else:
            InvoiceCoupon.objects.filter(pk__in=ids).delete()
    return [row.applied_coupon_id for row in rows]
