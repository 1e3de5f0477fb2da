"""Plan changes: upgrades, downgrades and interval switches, now or at the period's end (DESIGN.md "Subscription
changes"; API.md "Subscription changes and trials"). Part of the lifecycle (``lifecycle.py``): one transaction
per change, locks in the usual order (the customer, then the subscription, then invoices, wallets and lots).

* **Upgrade or downgrade**: the versions' fixed fees per year (``flat_fee`` prices x periods per year) compared;
  new >= old is an upgrade. ``at: auto`` applies an upgrade now and a downgrade at the period's end.
* **Now, at t** (``effective_at``, default now; inside the current period ``[s, e)`` and not after now): the old
  subscription ends at t and its successor starts at t (same customer and billing mode, linked both ways). Its
  ``start_at`` is the anchor its schedule counts from: the old anchor under anniversary billing, t under calendar;
  its first period is ``[t, end of the new interval's period containing t)``. The day of the change belongs to the
  new plan. One change invoice, on the successor (boundary t, reason ``change``): the old plan's in-arrears lines
  for ``[s, t)`` and the new plan's in-advance fees for the rest of its period, each line with its period and a
  ``details["plan_change"]`` saying why. Unused in-advance fees of the old plan (days from t's date to e's date
  out of the period's days, per fee, half-up) plus the charging invoice's tax: credit notes on the invoice that
  charged them (a draft is finalized first).
* **At the period's end**: the change is stored on the subscription (``scheduled_plan``) and the boundary
  (``scheduled_change_bill_locked``, called by ``boundary.py``) ends the old subscription and starts the new one
  on the same boundary invoice: the old plan's in-arrears lines and the new plan's in-advance fees for its first
  period (prorated when that period is partial: monthly -> yearly under anniversary keeps the anchor).
* **Plan credits follow the money** (``credits.plan_credits_follow_change``).
* **Preview** runs the same code in a transaction that is rolled back; ``present`` renders the outcome inside it.

Rules chosen where the design is silent (docs/billing-rules.md "Plan changes"):

* **Where the credit note's money goes**: to the invoice for what it still owes, the rest to the wallet (what
  was received for it). So one note when one of them covers it, two when the invoice is partly paid. When money
  must go to a wallet and the customer has none in the currency, the wallet plan credits would use is created
  (rate 1, applies to all lines: one credit is one unit of the currency, so no conversion rate is chosen for
  finance) rather than refusing the change.
* A change invoice with no line (a plan without fixed fees changed before any usage) is not created.
* A change invoice, a draft during the customer's grace days, keeps its lines on recalculation (its two sides
  come from two subscriptions); only its credits are applied again.
* A subscription set to end at its period's end cannot be changed (409): resume it first (cancel, then start).
* Scheduling a change replaces the change already scheduled. A change now replaces any scheduled change.
* A change during a trial keeps the trial's end measured from the original start (the first subscription of the
  chain) with the new plan's trial days; a trial already over by t is not restarted.
* One-time plan credit grants are not given again on a change; per-period grants give their remaining share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from catalog.models import Plan, PlanVersion, Price
from catalog.pricing import prorate, quantize_minor
from catalog.quote import price_quote
from catalog.selectors import plan_version_in_effect
from core.errors import Conflict, ValidationFailed
from core.money import format_decimal
from core.outbox import record_event
from customers import periods
from customers.models import Subscription
from customers.periods import Period
from customers.schedule import subscription_prorate, subscription_timezone
from customers.services import (
    subscription_row_end_for_change,
    subscription_row_schedule_change,
    subscription_row_successor_create,
)
from wallets.services import wallet_for_plan_credits

from ..models import CreditNote, Invoice, InvoiceLine
from ..totals import LineAmount, totals_compute
from . import credits as credits_seam
from .context import NO_SHEETS, BoundaryContext, PriceSheets, UsageBatch, tax_rates_of
from .invoices import _lock as _lock_invoice
from .invoices import (
    credit_note_issue_locked,
    creditable_amount,
    invoice_create_for_period,
    invoice_finalize_locked,
    invoice_finalize_number,
    invoice_finalize_or_hold,
)
from .lifecycle import _lock_customer, _lock_subscription
from .lines import LineDraft, advance_lines, arrears_lines, period_label
from .period_close import period_close_terms_apply

AT_AUTO = "auto"
AT_NOW = "now"
AT_PERIOD_END = "period_end"
CHANGE_AT = (AT_AUTO, AT_NOW, AT_PERIOD_END)

#: Billing periods per year of each plan interval (the yearly-normalized fixed fees of the upgrade rule).
PERIODS_PER_YEAR = {"week": 52, "month": 12, "quarter": 4, "year": 1}


@dataclass
class ChangeOutcome:
    """What a change did (or, in a preview, would do). ``subscription`` is the successor for a change now, the
    current subscription with its ``scheduled_plan`` for a change at the period's end."""

    subscription: Subscription
    previous: Subscription | None
    invoice: Invoice | None
    credit_notes: list[CreditNote]
    applies: str  # "now" or "period_end"
    upgrade: bool
    effective_at: datetime
    old_version: PlanVersion
    new_version: PlanVersion
    old_yearly: Decimal
    new_yearly: Decimal
    credits_expired: Decimal = Decimal(0)
    credits_granted: Decimal = Decimal(0)
    credit_lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def credit_note(self) -> CreditNote | None:
        """The proration credit note (the first one when the money went two ways)."""
        return self.credit_notes[0] if self.credit_notes else None


def yearly_fixed_fees(version: PlanVersion) -> Decimal:
    """The version's ``flat_fee`` prices summed and multiplied by its plan's periods per year."""
    total = sum((Decimal(p.amount or 0) for p in version.prices.all() if p.model == Price.Model.FLAT_FEE), Decimal(0))
    return total * PERIODS_PER_YEAR.get(version.plan.interval, 12)


def _target_version(*, subscription: Subscription, plan: Plan, pinned: PlanVersion | None, at: datetime) -> PlanVersion:
    """Validate the plan asked for (400 naming the field) and return the version billing it from ``at``."""
    if plan.pk == subscription.plan_id:
        raise ValidationFailed("The subscription is already on this plan.", field="plan")
    if plan.currency != subscription.customer.currency:
        raise ValidationFailed(
            f"The plan bills in {plan.currency}; the customer pays in {subscription.customer.currency}.", field="plan"
        )
    if pinned is not None:
        if pinned.plan_id != plan.pk or not pinned.is_published:
            raise ValidationFailed(
                "The pinned version must be a published version of this plan.", field="pinned_version"
            )
        return pinned
    version = plan_version_in_effect(plan=plan, at=at)
    if version is None:
        raise ValidationFailed(f"Plan '{plan.key}' has no published version in effect.", field="plan")
    return version


def _chain_start(subscription: Subscription) -> datetime:
    """When the chain of plan changes began: the first subscription's start (a trial is measured from it)."""
    first = subscription
    while first.previous_subscription_id is not None:
        first = Subscription.objects.only("start_at", "previous_subscription_id").get(pk=first.previous_subscription_id)
    return first.start_at


def _successor_trial_end(old: Subscription, version: PlanVersion, at: datetime) -> datetime | None:
    """A change during a trial keeps its end measured from the original start, with the new plan's trial days."""
    if not old.in_trial_at(at):
        return None
    end = _chain_start(old) + timedelta(days=version.trial_days)
    return end if end > at else None


def _first_period(*, billing: str, anchor: datetime, interval: str, at: datetime, timezone: str = "UTC") -> Period:
    """The successor's first period: from ``at`` to the end of the new schedule's period containing ``at`` (in
    the customer's timezone)."""
    return Period(at, periods.period_containing(billing, anchor, interval, at, timezone=timezone).end)


def _local_date(at: datetime, subscription: Subscription):
    """``at``'s date in the customer's timezone (days are counted on local dates, docs/billing-rules.md)."""
    return at.astimezone(periods.zone(subscription_timezone(subscription))).date()


def _changed_events(old: Subscription, new: Subscription) -> None:
    """Webhook events of a plan change (docs/webhooks.md): ``subscription.changed`` for the replaced subscription
    (ended, its ``next_subscription`` set) and ``subscription.started`` for its successor, in the change's
    transaction (a preview rolls them back with everything else)."""
    old.refresh_from_db()
    record_event("subscription.changed", old)
    record_event("subscription.started", new)


def _mark(lines: list[LineDraft], *, side: str, old: Subscription, plan: Plan, at: datetime) -> list[LineDraft]:
    """Say on each line why it is on a change invoice (``details["plan_change"]``)."""
    for line in lines:
        name = line.price.plan_version.plan.name if line.price else ""
        days = (line.details.get("proration") or {}).get("text")
        why = f"{name}, {days}" if days else f"{name}, {period_label(line.period_start, line.period_end)}"
        line.details["plan_change"] = {
            "from": old.plan.key,
            "to": plan.key,
            "at": at.isoformat(),
            "side": side,
            "why": f"{why} ({'up to' if side == 'old' else 'from'} the change on {at:%b} {at.day} {at.year})",
        }
    return lines


def _successor_lines(new: Subscription, version: PlanVersion, period: Period, old: Subscription, at: datetime):
    if new.in_trial_at(period.start):
        return []  # no fixed fees for trial days: the trial's end bills the rest of the period
    lines = advance_lines(subscription=new, version=version, period=period, currency=new.customer.currency)
    return _mark(lines, side="new", old=old, plan=new.plan, at=at)


def _credit_share(old: Subscription, period: Period, at: datetime) -> tuple[int, int]:
    """``(days used up to at's date, days in the period)`` of the old subscription's current period."""
    full = subscription_prorate(old, period, Decimal(0)).days_in_period
    used = (_local_date(at, old) - _local_date(period.start, old)).days
    return min(max(used, 0), full), full


def _new_share(new: Subscription, period: Period) -> tuple[int, int]:
    proration = subscription_prorate(new, period, Decimal(0))
    return proration.days, proration.days_in_period


def _granted(new: Subscription, period: Period) -> Decimal:
    from wallets.models import CreditGrant

    return sum(
        (g.credits for g in CreditGrant.objects.filter(subscription=new, kind="plan", period_start=period.start)),
        Decimal(0),
    )


def _advance_charges(old: Subscription, period: Period) -> list[InvoiceLine]:
    """The lines that charged the old plan's in-advance fixed fees for the current period (on its own invoices or,
    after a change at a period end, on its predecessor's boundary invoice)."""
    owners = [old.pk] + ([old.previous_subscription_id] if old.previous_subscription_id else [])
    return list(
        InvoiceLine.objects.filter(
            invoice__subscription_id__in=owners,
            invoice__customer_id=old.customer_id,
            price__isnull=False,
            price__meter__isnull=True,
            price__timing=Price.Timing.IN_ADVANCE,
            price__plan_version__plan_id=old.plan_id,
            period_start__gte=period.start,
            period_end=period.end,
        )
        .exclude(invoice__status=Invoice.Status.VOID)
        .select_related("invoice", "price", "price__plan_version__plan")
        .order_by("invoice_id", "position")
    )


def unused_days(subscription: Subscription, period: Period, at: datetime) -> int:
    """Days of ``period`` a change at ``at`` leaves unused: from ``at``'s local date (the change's day belongs to
    the new plan) to the period end's."""
    return (_local_date(period.end, subscription) - _local_date(at, subscription)).days


def unused_fee_credit(
    *, subscription: Subscription, period: Period, unused: int, fee: Decimal, charged: Decimal, currency: str
) -> tuple[Decimal, int]:
    """``(credit, days in period)``: the credit, before tax, for ``unused`` days of an in-advance ``fee`` (the
    price's full amount) that charged ``charged`` for ``period``: ``fee x unused / period days``, half-up, at
    most what was charged. The change's credit notes and the backtest both use it."""
    days_in_period = subscription_prorate(subscription, period, fee).days_in_period
    return min(quantize_minor(prorate(fee, unused, days_in_period), currency), charged), days_in_period


def unused_fees_credit_total(*, old: Subscription, period: Period, at: datetime) -> Decimal:
    """What a change of ``old`` at ``at`` credited, before tax, for the unused part of the in-advance fees it was
    charged for ``period`` (its current period then): the sum of :func:`unused_fee_credit` over those fees."""
    unused = unused_days(old, period, at)
    if unused <= 0:
        return Decimal(0)
    return sum(
        (
            unused_fee_credit(
                subscription=old,
                period=period,
                unused=unused,
                fee=price_quote(line.price, Decimal(1)).amount,
                charged=line.amount,
                currency=line.invoice.currency,
            )[0]
            for line in _advance_charges(old, period)
        ),
        Decimal(0),
    )


def _credit_unused_fees(*, old: Subscription, period: Period, at: datetime, now: datetime, outcome: ChangeOutcome):
    """Credit the old plan's unused in-advance fees (DESIGN.md step 2): per fee ``fee x unused / period days``,
    half-up, plus the charging invoice's tax once per rate; to the invoice while it owes, the rest to the wallet."""
    unused = unused_days(old, period, at)
    if unused <= 0:
        return
    by_invoice: dict[int, list[tuple[InvoiceLine, Decimal, int]]] = {}
    for line in _advance_charges(old, period):
        fee = price_quote(line.price, Decimal(1)).amount
        credit, days_in_period = unused_fee_credit(
            subscription=old, period=period, unused=unused, fee=fee, charged=line.amount, currency=line.invoice.currency
        )
        if credit > 0:
            by_invoice.setdefault(line.invoice_id, []).append((line, credit, days_in_period))
            outcome.credit_lines.append(
                {
                    "price": line.price.name,
                    "fee": fee,
                    "unused_days": unused,
                    "days_in_period": days_in_period,
                    "amount": credit,
                    "text": f"{line.price.name}: {format_decimal(fee)} x {unused}/{days_in_period} days",
                }
            )
    for invoice_id, credits in by_invoice.items():
        invoice = _lock_invoice(invoice_id)
        if invoice.status == Invoice.Status.DRAFT:  # DESIGN.md: a draft that charged them is finalized first
            invoice_finalize_locked(invoice=invoice, now=now)
        if invoice.status not in (Invoice.Status.FINALIZED, Invoice.Status.PAID):
            continue  # uncollectible: nothing to credit against
        subtotal = sum((c for _, c, _ in credits), Decimal(0))
        rates = tuple((t["code"], Decimal(t["percentage"])) for t in invoice.tax_breakdown or [])
        amount = totals_compute([LineAmount(key=0, amount=subtotal, tax_rates=rates)], invoice.currency).total
        amount = min(amount, creditable_amount(invoice))
        if amount <= 0:
            continue
        reason = (
            f"Plan change from {old.plan.name} on {at:%Y-%m-%d}: {unused} unused of {credits[0][2]} days of "
            + ", ".join(line.price.name for line, _, _ in credits)
        )
        to_invoice = min(amount, invoice.amount_due)
        if to_invoice > 0:
            outcome.credit_notes.append(
                credit_note_issue_locked(
                    invoice=invoice, amount=to_invoice, reason=reason, refund_to=CreditNote.RefundTo.INVOICE, now=now
                )
            )
        rest = amount - to_invoice
        if rest > 0:
            wallet_for_plan_credits(customer=invoice.customer, currency=invoice.currency, create=True)
            outcome.credit_notes.append(
                credit_note_issue_locked(
                    invoice=invoice, amount=rest, reason=reason, refund_to=CreditNote.RefundTo.WALLET, now=now
                )
            )


@transaction.atomic(savepoint=False)
def subscription_change_locked(
    *,
    subscription: Subscription,
    plan: Plan,
    at: str = AT_AUTO,
    effective_at: datetime | None = None,
    pinned_version: PlanVersion | None = None,
    now: datetime,
) -> ChangeOutcome:
    """:func:`subscription_change` inside the caller's transaction (locks taken here: customer, subscription)."""
    if at not in CHANGE_AT:
        raise ValidationFailed(f"'at' must be one of {', '.join(CHANGE_AT)}.", field="at")
    _lock_customer(subscription.customer_id)
    old = _lock_subscription(subscription.pk)
    if old.status == Subscription.Status.ENDED:
        raise Conflict("This subscription has already ended.", code="subscription_ended")
    if old.cancel_at_period_end:
        raise Conflict(
            "This subscription is set to end at its period's end; it cannot change plan.", code="already_canceling"
        )
    s, e = old.current_period_start, old.current_period_end
    t = effective_at or now
    if t > now:
        raise ValidationFailed("Must not be in the future.", field="effective_at")
    old_version = old.plan_version
    # The upgrade rule compares with the version that would bill the change: at t, or at the period's end.
    probe_at = e if at == AT_PERIOD_END else min(max(t, s), e)  # a bad t is refused below, naming it
    probe = _target_version(subscription=old, plan=plan, pinned=pinned_version, at=probe_at)
    old_yearly, new_yearly = yearly_fixed_fees(old_version), yearly_fixed_fees(probe)
    upgrade = new_yearly >= old_yearly
    applies = at if at != AT_AUTO else (AT_NOW if upgrade else AT_PERIOD_END)
    if applies == AT_PERIOD_END:
        version = _target_version(subscription=old, plan=plan, pinned=pinned_version, at=e)
        subscription_row_schedule_change(locked=old, plan=plan, pinned_version=pinned_version)
        return ChangeOutcome(
            subscription=old,
            previous=None,
            invoice=None,
            credit_notes=[],
            applies=AT_PERIOD_END,
            upgrade=upgrade,
            effective_at=e,
            old_version=old_version,
            new_version=version,
            old_yearly=old_yearly,
            new_yearly=yearly_fixed_fees(version),
        )
    # Only a change now happens at t: it must fall inside the current period (a run may have billed it ahead).
    if not s <= t < e:
        raise ValidationFailed(
            f"Must be inside the current period ({s.isoformat()} to {e.isoformat()}).", field="effective_at"
        )
    version = probe
    customer = old.customer
    current = Period(s, e)
    lines: list[LineDraft] = []
    if t > s:
        part = Period(s, t)
        lines += _mark(
            # The part period's commitment true-up and progressive billing credit, as at a period's end.
            period_close_terms_apply(
                lines=arrears_lines(subscription=old, version=old_version, period=part, currency=customer.currency),
                subscription=old,
                period=part,
                version=old_version,
                currency=customer.currency,
            ),
            side="old",
            old=old,
            plan=plan,
            at=t,
        )
    anchor = old.start_at if old.billing == Subscription.Billing.ANNIVERSARY else t
    first = _first_period(
        billing=old.billing, anchor=anchor, interval=plan.interval, at=t, timezone=subscription_timezone(old)
    )
    try:
        with transaction.atomic():
            new = subscription_row_successor_create(
                previous=old,
                plan=plan,
                version=version,
                pinned_version=pinned_version,
                anchor=anchor,
                period=first,
                trial_end=_successor_trial_end(old, version, t),
            )
    except IntegrityError:  # the one-to-one link: another change replaced it first
        raise Conflict("This subscription was changed already.", code="subscription_ended") from None
    subscription_row_end_for_change(locked=old, at=t)
    _changed_events(old, new)
    lines += _successor_lines(new, version, first, old, t)
    outcome = ChangeOutcome(
        subscription=new,
        previous=old,
        invoice=None,
        credit_notes=[],
        applies=AT_NOW,
        upgrade=upgrade,
        effective_at=t,
        old_version=old_version,
        new_version=version,
        old_yearly=old_yearly,
        new_yearly=new_yearly,
    )
    _credit_unused_fees(old=old, period=current, at=t, now=now, outcome=outcome)
    invoice = None
    if lines:
        invoice = invoice_create_for_period(
            customer=customer,
            subscription=new,
            boundary_at=t,
            period=first,
            lines=lines,
            now=now,
            tax_rates=tax_rates_of(customer),
            reason=Invoice.Reason.CHANGE,
        )
    used, days = _credit_share(old, current, t)
    outcome.credits_expired = credits_seam.plan_credits_follow_change(
        previous=old, successor=new, period=current, at=t, used_days=used, days_in_period=days, now=now
    )
    credits_seam.plan_credits_grant(subscription=new, period=first, now=now, share=_new_share(new, first))
    outcome.credits_granted = _granted(new, first)
    if invoice is not None and invoice_finalize_or_hold(invoice=invoice, now=now):
        invoice_finalize_number(invoice=invoice, now=now)
    outcome.invoice = invoice
    return outcome


class _Rollback(Exception):
    """Carries a preview's presented result out of the transaction it rolls back."""

    def __init__(self, value: Any) -> None:
        super().__init__("preview")
        self.value = value


def subscription_change(
    *,
    subscription: Subscription,
    plan: Plan,
    at: str = AT_AUTO,
    effective_at: datetime | None = None,
    pinned_version: PlanVersion | None = None,
    preview: bool = False,
    now: datetime,
    present: Callable[[ChangeOutcome], Any] | None = None,
) -> Any:
    """Change a subscription's plan (the module docstring has the rules); returns ``present(outcome)``, or the
    :class:`ChangeOutcome` itself without ``present``.

    ``present`` runs inside the transaction, so what it reads (invoice lines, credit notes) is what the change
    wrote. ``preview=True`` runs exactly the same code and rolls the transaction back: nothing is saved, no
    number is used up. 400 naming the field for a bad plan, ``pinned_version``, ``at`` or ``effective_at``; 409
    for an ended subscription (or one a concurrent change ended first).
    """
    try:
        with transaction.atomic(durable=True):
            outcome = subscription_change_locked(
                subscription=subscription,
                plan=plan,
                at=at,
                effective_at=effective_at,
                pinned_version=pinned_version,
                now=now,
            )
            value = present(outcome) if present is not None else outcome
            if preview:
                raise _Rollback(value)
            return value
    except _Rollback as rollback:
        return rollback.value


@transaction.atomic(durable=True)
def subscription_change_cancel(*, subscription: Subscription, now: datetime) -> Subscription:
    """Remove the plan change scheduled for the period's end. 409 when none is scheduled or it has ended."""
    _lock_customer(subscription.customer_id)
    locked = _lock_subscription(subscription.pk)
    return subscription_row_schedule_change(locked=locked, plan=None)


@dataclass
class ScheduledChange:
    """What a scheduled change bills at its boundary, computed without writing (the boundary and the upcoming
    invoice preview both use it): the boundary invoice's lines and the successor to create."""

    lines: list[LineDraft]
    plan: Plan
    version: PlanVersion
    anchor: datetime
    first: Period
    trial_end: datetime | None


def scheduled_change_lines(
    *, subscription: Subscription, usage: UsageBatch | None = None, sheets: PriceSheets = NO_SHEETS
) -> ScheduledChange:
    """The lines of the boundary invoice of a subscription whose plan change is scheduled for its period's end:
    the ended period's in-arrears lines and the new plan's in-advance fees for its first period. Reads only.

    Conflict (409) when the scheduled plan has no published version in effect at the boundary."""
    old = subscription
    e = old.current_period_end
    plan = old.scheduled_plan
    version = old.scheduled_pinned_version or plan_version_in_effect(plan=plan, at=e)
    if version is None:
        raise Conflict(f"The scheduled plan '{plan.key}' has no published version in effect at {e.isoformat()}.")
    currency = old.customer.currency
    ended = Period(old.current_period_start, e)
    lines = _mark(
        period_close_terms_apply(
            lines=arrears_lines(
                subscription=old, version=old.plan_version, period=ended, currency=currency, usage=usage, sheets=sheets
            ),
            subscription=old,
            period=ended,
            version=old.plan_version,
            currency=currency,
        ),
        side="old",
        old=old,
        plan=plan,
        at=e,
    )
    anchor = old.start_at if old.billing == Subscription.Billing.ANNIVERSARY else e
    first = _first_period(
        billing=old.billing, anchor=anchor, interval=plan.interval, at=e, timezone=subscription_timezone(old)
    )
    trial_end = _successor_trial_end(old, version, e)
    # The successor as it will be created, unsaved: its fees are priced by its own schedule.
    successor = Subscription(
        customer=old.customer,
        plan=plan,
        plan_version=version,
        billing=old.billing,
        start_at=anchor,
        trial_end=trial_end,
    )
    lines += _successor_lines(successor, version, first, old, e)
    return ScheduledChange(lines=lines, plan=plan, version=version, anchor=anchor, first=first, trial_end=trial_end)


def scheduled_change_bill_locked(
    *, subscription: Subscription, now: datetime, context: BoundaryContext
) -> Invoice | None:
    """The boundary of a subscription with a change scheduled for its period's end (called by ``boundary.py``
    holding the customer and subscription locks; the boundary is due).

    One invoice at the boundary e, on the old subscription (reason ``change``): :func:`scheduled_change_lines`.
    The old subscription ends at e, its successor starts at e; the old plan's credits close as at any period end
    (nothing is cut: all of the period was used) and what carries moves to the successor, which is granted its
    first period's credits (its share when that period is partial).
    """
    old = subscription
    e = old.current_period_end
    ended = Period(old.current_period_start, e)
    change = scheduled_change_lines(subscription=old, usage=context.usage, sheets=context.sheets)
    pinned = old.scheduled_pinned_version
    subscription_row_end_for_change(locked=old, at=e)
    new = subscription_row_successor_create(
        previous=old,
        plan=change.plan,
        version=change.version,
        pinned_version=pinned,
        anchor=change.anchor,
        period=change.first,
        trial_end=change.trial_end,
    )
    _changed_events(old, new)
    invoice = invoice_create_for_period(
        customer=old.customer,
        subscription=old,
        boundary_at=e,
        period=ended,
        lines=change.lines,
        now=now,
        tax_rates=context.tax_rates,
        reason=Invoice.Reason.CHANGE,
    )
    needs_number = invoice is not None and invoice_finalize_or_hold(
        invoice=invoice, now=now, has_wallets=context.has_wallets
    )
    days = _credit_share(old, ended, e)[1]
    credits_seam.plan_credits_follow_change(
        previous=old, successor=new, period=ended, at=e, used_days=days, days_in_period=days, now=now
    )
    first = change.first
    credits_seam.plan_credits_grant(subscription=new, period=first, now=now, share=_new_share(new, first))
    if needs_number:
        invoice_finalize_number(invoice=invoice, now=now)
    return invoice
