"""Backtest: what every subscription to a plan would have paid, in periods already billed, under another version.

``plan_version_backtest`` re-rates billed periods with ``version`` (a draft or any version of the plan) and the
same usage, through the very functions that build invoice lines (``lines.advance_lines`` and
``lines.arrears_lines``, with a :class:`~.context.UsageBatch` aggregated per period in SQL by
``metering.selectors.usage_for_customers``). It reads only: no invoice, line, usage or subscription is written.

Rules (API.md "Pricing operations"; where it is silent, chosen here and written in docs/pricing-operations.md):

* The window is ``[from, to)``: by default the last calendar month before ``now``; ``to`` may not be in the
  future and the window may span at most 12 months (``400`` naming the field).
* A **billed period** is a period of a subscription to the plan whose closing invoice (reason ``boundary``, or
  ``cancel`` for a subscription ended at once) exists, is not void, and starts in the window. Periods still
  open are left out: their in-arrears part is not billed yet, so comparing them would compare half a period.
* ``actual`` = the sum of that subscription's invoiced lines (fixed, prorated and usage lines, before discount
  and tax, from every invoice that is not void) whose own period starts at the period's start: the in-advance
  fee billed when the period began plus the in-arrears lines billed when it ended.
* ``simulated`` = the same period's lines priced with ``version``: in-advance fixed fees over the schedule's
  period (prorated as invoicing prorates them), in-arrears lines over the closing invoice's period (its end is
  the cancellation instant for a subscription ended at once), usage from the same events.
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

from django.db.models import Sum

from catalog.models import PlanVersion
from catalog.pricing import quantize_minor
from core.errors import ValidationFailed
from core.instants import OUT_OF_RANGE, instant_in_range
from customers import periods
from customers.models import Subscription
from customers.periods import Period
from metering.selectors import usage_for_customers

from ..models import BacktestRun, Invoice, InvoiceLine
from .context import PriceSheets, UsageBatch, price_sheets_read
from .lines import LineDraft, advance_lines, arrears_lines

#: The longest window a backtest accepts, in calendar months.
MAX_MONTHS = 12
#: Subscriptions priced per batch (one usage query per meter and period per batch); progress moves per batch.
BATCH = 2000
#: Line kinds a backtest compares: the ones a version's prices produce.
PRICED_KINDS = (InvoiceLine.Kind.FIXED, InvoiceLine.Kind.PRORATION, InvoiceLine.Kind.USAGE)
#: Invoices that close a period (they carry its in-arrears lines).
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
    arrears: Period  # the closing invoice's period (ends at the cancellation for a subscription ended at once)


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
    rows = (
        Invoice.objects.filter(
            subscription__plan_id=plan_id,
            reason__in=CLOSING_REASONS,
            period_start__gte=start,
            period_start__lt=end,
        )
        .exclude(status=Invoice.Status.VOID)
        .order_by("subscription_id", "period_start")
        .values_list("subscription_id", "period_start", "period_end")
    )
    found: dict[int, list[_BilledPeriod]] = defaultdict(list)
    for subscription_id, period_start, period_end in rows:
        found[subscription_id].append(_BilledPeriod(subscription_id, Period(period_start, period_end)))
    return found


def _actual_amounts(
    subscription_ids: Sequence[int], start: datetime, end: datetime
) -> dict[tuple[int, datetime], Decimal]:
    """``{(subscription_id, period_start): invoiced amount}`` of the priced lines of non-void invoices."""
    rows = (
        InvoiceLine.objects.filter(
            invoice__subscription_id__in=list(subscription_ids),
            kind__in=PRICED_KINDS,
            period_start__gte=start,
            period_start__lt=end,
        )
        .exclude(invoice__status=Invoice.Status.VOID)
        .values("invoice__subscription_id", "period_start")
        .annotate(total=Sum("amount"))
        .values_list("invoice__subscription_id", "period_start", "total")
    )
    return {(sid, at): total for sid, at, total in rows}


def simulated_lines(
    *,
    subscription: Subscription,
    version: PlanVersion,
    advance: Period,
    arrears: Period,
    usage: UsageBatch,
    sheets: PriceSheets,
) -> list[LineDraft]:
    """One billed period priced with ``version``: the same two calls a start or boundary invoice makes.

    This is the one place a backtest prices a subscription, so what invoicing applies per subscription (price
    overrides, for one) is applied here by passing it to the same line builders.
    """
    currency = subscription.customer.currency
    return [
        *advance_lines(subscription=subscription, version=version, period=advance, currency=currency, sheets=sheets),
        *arrears_lines(
            subscription=subscription, version=version, period=arrears, currency=currency, usage=usage, sheets=sheets
        ),
    ]


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
        actual = _actual_amounts(chunk, start, end)
        for sid in chunk:
            subscription = subscriptions[sid]
            plan = subscription.plan
            simulated = Decimal(0)
            invoiced = Decimal(0)
            for b in billed[sid]:
                advance = periods.period_containing(
                    subscription.billing, subscription.start_at, plan.interval, b.arrears.start
                )
                lines = simulated_lines(
                    subscription=subscription,
                    version=version,
                    advance=advance,
                    arrears=b.arrears,
                    usage=batches[(b.arrears.start, b.arrears.end)],
                    sheets=sheets,
                )
                simulated += sum((line.amount for line in lines), Decimal(0))
                invoiced += actual.get((sid, b.arrears.start), Decimal(0))
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
