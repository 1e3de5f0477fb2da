"""Backtest: what every subscription to a plan would have paid, in periods already billed, under another version.

``plan_version_backtest`` re-rates billed periods with ``version`` (a draft or any version of the plan) and the
same usage, through the very functions that build invoice lines (``lines.advance_lines`` and
``lines.arrears_lines``, with a :class:`~.context.UsageBatch` aggregated per period in SQL by
``metering.selectors.usage_for_customers``). It reads only: no invoice, line, usage or subscription is written.

Rules (API.md "Pricing operations"; where it is silent, chosen here and written in docs/pricing-operations.md):

* The window is ``[from, to)``: by default the last calendar month before ``now``; ``to`` may not be in the
  future and the window may span at most 12 months (``400`` naming the field).
* A **billed period** is a period of a subscription to the plan whose closing invoice exists, is not void, and
  starts in the window: reason ``boundary``; ``cancel`` for a subscription ended at once; ``change`` for a plan
  change at the period's end (on the old subscription), or for a change at once the successor's change invoice,
  which closes the old subscription's part period ``[period start, change)``. Periods still open are left out:
  their in-arrears part is not billed yet, so comparing them would compare half a period.
* ``actual`` = the sum of that subscription's invoiced lines (fixed, prorated, usage and commitment true-up
  lines, before discount and tax, from every invoice that is not void) whose own period starts in the period:
  the in-advance fee billed when the period began (or, after a free trial, at the trial's end for the rest of
  it) plus the in-arrears lines and the true-up billed when it ended. Across a plan change a line's version
  says which subscription it belongs to. For a part period closed by a change at once, what the change credited
  of its in-advance fees (before tax) is taken off.
* ``simulated`` = the same period's lines priced with ``version`` (:func:`simulated_lines`): in-advance fixed
  fees over the schedule's period after any trial days (prorated as invoicing prorates them), less the credit a
  change at once gives for the unused days, in-arrears lines over the closing invoice's period (its end is the
  cancellation or change instant for a subscription ended at once), usage from the same events, then the
  minimum commitment true-up of ``version`` over those charges (``commitments.commitment_true_up``).
* Not simulated: progressive billing (its invoices bill the same usage lines earlier; the comparison counts
  each usage line once, where the period closes), coupons and tax.
* One row per subscription (``customer`` is its customer's external id); ``delta = simulated - actual``;
  totals count rows going up, down and unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType

from django.db.models import F, Q, Sum

from catalog.models import PlanVersion
from catalog.pricing import quantize_minor
from catalog.quote import price_quote
from core.errors import ValidationFailed
from core.instants import OUT_OF_RANGE, instant_in_range
from customers import periods
from customers.models import Subscription
from customers.periods import Period
from metering.selectors import usage_for_customers

from ..models import BacktestRun, Invoice, InvoiceLine
from .changes import unused_days, unused_fee_credit, unused_fees_credit_total
from .commitments import CHARGE_KINDS, advance_fee_share, commitment_true_up
from .context import PriceSheets, UsageBatch, price_sheets_read
from .lines import LineDraft, advance_lines, after_trial, arrears_lines

#: The longest window a backtest accepts, in calendar months.
MAX_MONTHS = 12
#: Subscriptions priced per batch (one usage query per meter and period per batch); progress moves per batch.
BATCH = 2000
#: Line kinds a backtest compares: the ones a version's prices produce.
PRICED_KINDS = (InvoiceLine.Kind.FIXED, InvoiceLine.Kind.PRORATION, InvoiceLine.Kind.USAGE)
#: ... and the minimum commitment true-up, which a version's ``minimum_commitment`` produces.
COMPARED_KINDS = (*PRICED_KINDS, InvoiceLine.Kind.COMMITMENT)
#: Invoices that close a period (they carry its in-arrears lines), on the subscription whose period they close.
#: A plan change closes one too: at the period's end the change invoice is on the old subscription (its boundary
#: is the period's end); a change at once closes the old subscription's part period on its successor's invoice
#: (:func:`_change_closed_periods`).
CLOSING_REASONS = (Invoice.Reason.BOUNDARY, Invoice.Reason.CANCEL)

Progress = Callable[[int, int], None]


def instant_format(value: datetime) -> str:
    """``2026-01-01T00:00:00Z``: the API's form of an instant."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class BacktestRow:
    """One subscription's billed periods in the window: what was invoiced and what ``version`` would bill."""

    customer: str
    customer_name: str
    subscription: int
    periods: int
    actual: Decimal
    simulated: Decimal

    @property
    def delta(self) -> Decimal:
        return self.simulated - self.actual


@dataclass(frozen=True, slots=True)
class BacktestTotals:
    actual: Decimal
    simulated: Decimal
    delta: Decimal
    customers: int
    up: int
    down: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class Backtest:
    version: PlanVersion
    start: datetime
    end: datetime
    currency: str
    rows: tuple[BacktestRow, ...]
    totals: BacktestTotals

    def as_dict(self, *, names: bool = False) -> dict:
        """API.md's shape: amounts as strings rounded to the currency's minor unit, instants in ISO 8601.
        ``names``: each row adds ``customer_name`` (the admin's pages show it)."""

        def money(value: Decimal) -> str:
            return f"{quantize_minor(value, self.currency):f}"

        t = self.totals
        return {
            "version": self.version.number,
            "from": instant_format(self.start),
            "to": instant_format(self.end),
            "currency": self.currency,
            "customers": [
                {
                    "customer": r.customer,
                    "subscription": str(r.subscription),
                    "periods": r.periods,
                    "actual": money(r.actual),
                    "simulated": money(r.simulated),
                    "delta": money(r.delta),
                    **({"customer_name": r.customer_name} if names else {}),
                }
                for r in self.rows
            ],
            "totals": {
                "actual": money(t.actual),
                "simulated": money(t.simulated),
                "delta": money(t.delta),
                "customers": t.customers,
                "up": t.up,
                "down": t.down,
                "unchanged": t.unchanged,
            },
        }

    def movers(self, n: int = 20) -> tuple[list[BacktestRow], list[BacktestRow]]:
        """The ``n`` rows with the largest increase and the ``n`` with the largest decrease (changed rows only)."""
        up = sorted((r for r in self.rows if r.delta > 0), key=lambda r: (-r.delta, r.customer, r.subscription))
        down = sorted((r for r in self.rows if r.delta < 0), key=lambda r: (r.delta, r.customer, r.subscription))
        return up[:n], down[:n]


@dataclass(frozen=True, slots=True)
class _BilledPeriod:
    subscription_id: int
    arrears: Period  # the closing invoice's period (ends at the cancellation or change for one ended at once)
    #: For a part period closed by a plan change at once: the whole period it was cut from (the unused part of
    #: its in-advance fees was credited), else None.
    changed_from: Period | None = None


def backtest_window(*, start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """``[from, to)`` with the defaults applied, or ``ValidationFailed`` naming ``from`` or ``to``.

    Defaults: neither given, the last calendar month before ``now``; only ``from``, one month from it; only
    ``to``, the month before it.
    """
    for name, value in (("from", start), ("to", end)):
        if value is not None and not instant_in_range(value):
            raise ValidationFailed(OUT_OF_RANGE, field=name)
    if start is None and end is None:
        end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start is None:
        start = periods.add_months(end, -1)
    if end is None:
        end = periods.add_months(start, 1)
    if end > now:
        raise ValidationFailed(
            "The window may not end in the future: a backtest re-rates periods already billed.", field="to"
        )
    if start >= end:
        raise ValidationFailed("Must be before 'to'.", field="from")
    if end > periods.add_months(start, MAX_MONTHS):
        raise ValidationFailed(f"The window may span at most {MAX_MONTHS} months.", field="to")
    return start, end


def _billed_periods(plan_id: int, start: datetime, end: datetime) -> dict[int, list[_BilledPeriod]]:
    closing = Q(reason__in=CLOSING_REASONS) | Q(reason=Invoice.Reason.CHANGE, billing_boundary_at=F("period_end"))
    rows = (
        Invoice.objects.filter(closing, subscription__plan_id=plan_id, period_start__gte=start, period_start__lt=end)
        .exclude(status=Invoice.Status.VOID)
        .values_list("subscription_id", "period_start", "period_end")
    )
    found: dict[int, list[_BilledPeriod]] = defaultdict(list)
    for subscription_id, period_start, period_end in rows:
        found[subscription_id].append(_BilledPeriod(subscription_id, Period(period_start, period_end)))
    for billed in _change_closed_periods(plan_id, start, end):
        found[billed.subscription_id].append(billed)
    for periods_of in found.values():
        periods_of.sort(key=lambda b: b.arrears.start)
    return found


def _change_closed_periods(plan_id: int, start: datetime, end: datetime) -> list[_BilledPeriod]:
    """Part periods of the plan's subscriptions that a plan change at once closed: the change invoice is on the
    successor (its boundary is the change's instant, its period the successor's first) and carries the old
    plan's in-arrears lines for ``[period start, change)``. A change at the period's very start leaves no part."""
    rows = (
        Invoice.objects.filter(
            reason=Invoice.Reason.CHANGE,
            billing_boundary_at=F("period_start"),
            subscription__previous_subscription__plan_id=plan_id,
            subscription__previous_subscription__current_period_start__gte=start,
            subscription__previous_subscription__current_period_start__lt=end,
            billing_boundary_at__gt=F("subscription__previous_subscription__current_period_start"),
        )
        .exclude(status=Invoice.Status.VOID)
        .values_list(
            "subscription__previous_subscription_id",
            "subscription__previous_subscription__current_period_start",
            "subscription__previous_subscription__current_period_end",
            "billing_boundary_at",
        )
    )
    return [_BilledPeriod(sid, Period(s, t), changed_from=Period(s, e)) for sid, s, e, t in rows]


def _actual_amounts(
    plan_id: int, subscription_ids: Sequence[int], start: datetime, end: datetime
) -> dict[tuple[int, datetime], Decimal]:
    """``{(subscription_id, period_start): invoiced amount}`` of the compared lines of non-void invoices, for the
    lines of this plan starting in ``[start, end)``.

    A line belongs to the subscription of its invoice, except across a plan change, where an invoice carries the
    lines of two subscriptions (a line's version says which plan): a change at once bills the old plan's part
    period on the successor's invoice (lines starting before its boundary belong to the predecessor), a change
    at the period's end bills the new plan's first fees on the old subscription's invoice (lines starting at its
    boundary belong to the successor)."""
    ids = list(subscription_ids)
    neighbours = Subscription.objects.filter(pk__in=ids).values_list("previous_subscription_id", "next_subscription")
    owners = {*ids, *(n for pair in neighbours for n in pair if n is not None)}
    rows = (
        InvoiceLine.objects.filter(
            invoice__subscription_id__in=owners,
            plan_version__plan_id=plan_id,
            kind__in=COMPARED_KINDS,
            period_start__gte=start,
            period_start__lt=end,
        )
        .exclude(invoice__status=Invoice.Status.VOID)
        .values(
            "invoice__subscription_id",
            "invoice__subscription__plan_id",
            "invoice__subscription__previous_subscription_id",
            "invoice__subscription__next_subscription",
            "invoice__billing_boundary_at",
            "period_start",
        )
        .annotate(total=Sum("amount"))
        .values_list(
            "invoice__subscription_id",
            "invoice__subscription__plan_id",
            "invoice__subscription__previous_subscription_id",
            "invoice__subscription__next_subscription",
            "invoice__billing_boundary_at",
            "period_start",
            "total",
        )
    )
    found: dict[tuple[int, datetime], Decimal] = defaultdict(Decimal)
    for sid, sub_plan, previous, following, boundary, at, total in rows:
        owner = sid if sub_plan == plan_id else (previous if at < boundary else following)
        if owner is not None:
            found[(owner, at)] += total
    return found


def _actual_of(actual: dict[tuple[int, datetime], Decimal], sid: int, starts: Sequence[datetime], b: _BilledPeriod):
    """The invoiced amount of one billed period: the lines starting in it (at its start, and a trial end's fees
    for the rest of it), less what a change at once credited of its in-advance fees (before tax)."""
    invoiced = sum((actual[(sid, at)] for at in starts if b.arrears.start <= at < b.arrears.end), Decimal(0))
    if b.changed_from is not None:
        old = Subscription.objects.select_related("customer", "plan").get(pk=sid)
        invoiced -= unused_fees_credit_total(old=old, period=b.changed_from, at=b.arrears.end)
    return invoiced


def simulated_lines(
    *,
    subscription: Subscription,
    version: PlanVersion,
    advance: Period,
    arrears: Period,
    usage: UsageBatch,
    sheets: PriceSheets,
    changed_at: datetime | None = None,
) -> list[LineDraft]:
    """One billed period priced with ``version``: the calls its invoices make, then its commitment true-up.

    In-advance fees are those of the part of ``advance`` after a free trial (the start or boundary invoice bills
    them, or the trial end's invoice for the rest of the period: ``lines.after_trial``); ``changed_at``: the
    instant a plan change at once cut the period, whose unused part of those fees is credited as the change
    credits it (``changes.unused_fee_credit``; the credit is a negative line here). Then the in-arrears lines of
    ``arrears`` and the true-up of ``version``'s minimum commitment over the period's simulated charges, counted
    as invoicing counts them (``commitments``).

    This is the one place a backtest prices a subscription, so what invoicing applies per subscription (price
    overrides, for one) is applied here by passing it to the same line builders.
    """
    currency = subscription.customer.currency
    paid = after_trial(subscription, advance)
    fees = (
        advance_lines(subscription=subscription, version=version, period=paid, currency=currency, sheets=sheets)
        if paid is not None
        else []
    )
    credits = _change_credits(subscription, advance, changed_at, fees, currency) if changed_at is not None else []
    arrears_part = arrears_lines(
        subscription=subscription, version=version, period=arrears, currency=currency, usage=usage, sheets=sheets
    )
    charges = sum(
        (
            line.amount
            for line in arrears_part
            if line.kind in CHARGE_KINDS and (line.period_start, line.period_end) == (arrears.start, arrears.end)
        ),
        Decimal(0),
    ) + sum(
        (advance_fee_share(f.amount, Period(f.period_start, f.period_end), arrears, currency) for f in fees),
        Decimal(0),
    )
    true_up = commitment_true_up(
        subscription=subscription, period=arrears, version=version, charges=charges, currency=currency
    )
    return [*fees, *credits, *arrears_part, *([true_up] if true_up is not None else [])]


def _change_credits(
    subscription: Subscription, advance: Period, at: datetime, fees: list[LineDraft], currency: str
) -> list[LineDraft]:
    """The credit a change at ``at`` would give for the unused part of the simulated in-advance ``fees``."""
    unused = unused_days(subscription, advance, at)
    if unused <= 0:
        return []
    credits = []
    for fee in fees:
        credit, _ = unused_fee_credit(
            subscription=subscription,
            period=advance,
            unused=unused,
            fee=price_quote(fee.price, Decimal(1)).amount,
            charged=fee.amount,
            currency=currency,
        )
        if credit:
            credits.append(
                LineDraft(
                    kind="change_credit",
                    description=f"{fee.price.name}: {unused} unused days credited",
                    amount=-credit,
                    price=fee.price,
                    plan_version=fee.plan_version,
                    period_start=at,
                    period_end=advance.end,
                )
            )
    return credits


def _usage_batches(
    version: PlanVersion, sheets: PriceSheets, members: Iterable[tuple[str, _BilledPeriod]]
) -> dict[tuple[datetime, datetime], UsageBatch]:
    """The version's metered usage of ``(customer external id, billed period)`` pairs: one query per meter and
    distinct period, whatever the number of customers (each query reads the period's events once)."""
    meters = {p.meter_id: p.meter for p in sheets[version.pk].prices if p.meter_id is not None}
    by_period: dict[tuple[datetime, datetime], set[str]] = defaultdict(set)
    for external_id, billed in members:
        by_period[(billed.arrears.start, billed.arrears.end)].add(external_id)
    batches = {}
    for (start, end), ids in by_period.items():
        values = (
            usage_for_customers(meters=list(meters.values()), customer_external_ids=sorted(ids), start=start, end=end)
            if meters
            else {}
        )
        batches[(start, end)] = UsageBatch(
            period_start=start, period_end=end, plan_version_id=version.pk, values=MappingProxyType(values)
        )
    return batches


def plan_version_backtest(
    *,
    version: PlanVersion,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime,
    progress: Progress | None = None,
    plan_id: int | None = None,
    subscription_ids: Collection[int] | None = None,
) -> Backtest:
    """Re-rate every billed period starting in ``[start, end)`` of the plan's subscriptions with ``version``.

    Reads only. ``plan_id``: the plan the caller addressed, when it may differ from the version's (``400
    version``). ``progress(done, total)`` is called after each batch of subscriptions. ``subscription_ids``: only
    these subscriptions (a migration's dry run shows the delta of the ones it would move).
    """
    if plan_id is not None and plan_id != version.plan_id:
        raise ValidationFailed("This version belongs to another plan.", field="version")
    start, end = backtest_window(start=start, end=end, now=now)
    billed = _billed_periods(version.plan_id, start, end)
    ids = sorted(billed if subscription_ids is None else set(billed) & set(subscription_ids))
    total = len(ids)
    sheets = price_sheets_read([version.pk])
    rows: list[BacktestRow] = []
    if progress:
        progress(0, total)
    # Usage of every subscription at once (a query per meter reads a period's events once, so splitting the
    # customers into batches would read them once per batch); pricing then goes batch by batch.
    customer_ids = dict(Subscription.objects.filter(pk__in=ids).values_list("pk", "customer__external_id").order_by())
    batches = _usage_batches(version, sheets, ((customer_ids[sid], b) for sid in ids for b in billed[sid]))
    for offset in range(0, total, BATCH):
        chunk = ids[offset : offset + BATCH]
        subscriptions = Subscription.objects.select_related("customer", "plan").in_bulk(chunk)
        # Lines starting in a billed period (a trial end's fees start inside it): up to the last period's end.
        last_end = max(b.arrears.end for sid in chunk for b in billed[sid])
        actual = _actual_amounts(version.plan_id, chunk, start, last_end)
        starts_of: dict[int, list[datetime]] = defaultdict(list)
        for owner, at in actual:
            starts_of[owner].append(at)
        for sid in chunk:
            subscription = subscriptions[sid]
            plan = subscription.plan
            simulated = Decimal(0)
            invoiced = Decimal(0)
            for b in billed[sid]:
                advance = b.changed_from or periods.period_containing(
                    subscription.billing, subscription.start_at, plan.interval, b.arrears.start
                )
                lines = simulated_lines(
                    subscription=subscription,
                    version=version,
                    advance=advance,
                    arrears=b.arrears,
                    usage=batches[(b.arrears.start, b.arrears.end)],
                    sheets=sheets,
                    changed_at=b.arrears.end if b.changed_from is not None else None,
                )
                simulated += sum((line.amount for line in lines), Decimal(0))
                invoiced += _actual_of(actual, sid, starts_of[sid], b)
            rows.append(
                BacktestRow(
                    customer=subscription.customer.external_id,
                    customer_name=subscription.customer.name,
                    subscription=sid,
                    periods=len(billed[sid]),
                    actual=invoiced,
                    simulated=simulated,
                )
            )
        if progress:
            progress(min(offset + BATCH, total), total)
    rows.sort(key=lambda r: (r.customer, r.subscription))
    actual_total = sum((r.actual for r in rows), Decimal(0))
    simulated_total = sum((r.simulated for r in rows), Decimal(0))
    totals = BacktestTotals(
        actual=actual_total,
        simulated=simulated_total,
        delta=simulated_total - actual_total,
        customers=len(rows),
        up=sum(1 for r in rows if r.delta > 0),
        down=sum(1 for r in rows if r.delta < 0),
        unchanged=sum(1 for r in rows if r.delta == 0),
    )
    return Backtest(
        version=version, start=start, end=end, currency=version.plan.currency, rows=tuple(rows), totals=totals
    )


# --------------------------------------------------------------------------- runs in the background

#: A backtest of at most this many subscriptions runs in the admin's request; a larger one on a Celery worker.
INLINE_SUBSCRIPTIONS = 300


def backtest_run_create(
    *, version: PlanVersion, start: datetime | None, end: datetime | None, now: datetime, requested_by: str = ""
) -> BacktestRun:
    """A pending :class:`BacktestRun` for ``version`` over the window (checked as the API checks it), with the
    number of subscriptions it will price. :func:`backtest_run_execute` runs it (inline or in a Celery task)."""
    start, end = backtest_window(start=start, end=end, now=now)
    total = len(_billed_periods(version.plan_id, start, end))
    return BacktestRun.objects.create(
        plan_version=version, window_start=start, window_end=end, total=total, requested_by=requested_by[:150]
    )


def backtest_run_execute(*, run_id: int, now: datetime) -> BacktestRun:
    """Run a pending backtest: progress is written to its row after each batch (committed at once, so a page
    polling the row sees it move), then the result. A run already done is returned as it is."""
    run = BacktestRun.objects.select_related("plan_version__plan").get(pk=run_id)
    if run.status == BacktestRun.Status.DONE:
        return run
    BacktestRun.objects.filter(pk=run.pk).update(status=BacktestRun.Status.RUNNING, done=0)

    def progress(done: int, total: int) -> None:
        BacktestRun.objects.filter(pk=run.pk).update(done=done, total=total)

    try:
        result = plan_version_backtest(
            version=run.plan_version, start=run.window_start, end=run.window_end, now=now, progress=progress
        )
    except ValidationFailed as exc:
        BacktestRun.objects.filter(pk=run.pk).update(
            status=BacktestRun.Status.FAILED, error=exc.message, finished_at=now
        )
    else:
        BacktestRun.objects.filter(pk=run.pk).update(
            status=BacktestRun.Status.DONE,
            result=result.as_dict(names=True),
            done=result.totals.customers,
            total=result.totals.customers,
            finished_at=now,
        )
    run.refresh_from_db()
    return run
