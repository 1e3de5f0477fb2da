"""The scheduled work, as of an instant: the one service that run_billing and Celery beat both call.

``billing_run_execute(now)``:

1. every period boundary due at or before ``now`` for active subscriptions, oldest first, each subscription
   looped until it is caught up (one transaction per boundary; see ``boundary``);
2. drafts whose ``finalize_after <= now`` are finalized;
3. the wallets' scheduled work (expiry, low-balance alerts, top-ups) through the credits seam.

Between 1 and 2, the progressive billing watch (``progressive``) issues the progressive invoices due.

One subscription's failure is logged and recorded on the ``BillingRun`` (``failed_subscriptions``: which
subscription, its customer, the boundary and the error), named in the run's one-line summary and listed on the
finance dashboard; the run goes on. The failed boundary stays due, so the next run tries it again. Re-running with
the same or an earlier ``now`` bills nothing new. Parallel runs (several processes or Celery workers) are
safe: each boundary locks its customer and subscription and re-checks the state after locking, and the
database refuses a second invoice for one boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from django.db import DatabaseError, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog.models import PlanVersion
from core.instants import OUT_OF_RANGE, instant_check, instant_in_range
from core.outbox import ListenerSnapshot, outbox_listeners_snapshot
from customers.models import Subscription
from invoicing.models import BillingRun
from metering.selectors import usage_for_customers

from ..models import Invoice
from . import credits as credits_seam
from .boundary import CustomerBusy, subscription_bill_once
from .context import NO_SHEETS, PriceSheets, UsageBatch, price_sheets_read
from .invoices import _lock, credit_purchase_invoice_create, invoice_finalize_locked
from .progressive import progressive_watch
from .trials import subscription_trial_end_bill, trial_end_due_ids

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


#: How many failures the one-line summary spells out; the stored run keeps them all.
LINE_FAILURES = 5
ERROR_CHARS = 300


def error_text(exc: BaseException) -> str:
    """``"<ExceptionType>: message"`` on one line (database errors carry a DETAIL line), at most ERROR_CHARS."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


@dataclass(frozen=True)
class SubscriptionFailure:
    """A subscription whose due boundary could not be billed: it stays due, so every run tries it again until
    the cause is fixed, and every run names it (summary line, ``BillingRun.failed_subscriptions``, the
    dashboard's alert), so a pricing error never stops a subscription's billing silently."""

    subscription_id: int
    customer: str  # the customer's external id ("" when it could not be read)
    boundary: datetime | None  # the boundary that failed (the period end due)
    error: str

    def text(self) -> str:
        who = f" (customer {self.customer})" if self.customer else ""
        return f"subscription {self.subscription_id}{who}: {self.error}"

    def as_json(self) -> dict:
        return {
            "subscription": self.subscription_id,
            "customer": self.customer,
            "boundary": self.boundary.isoformat() if self.boundary else None,
            "error": self.error,
        }


@dataclass
class RunSummary:
    """What a run did. ``failures`` has one line per failure of any kind (subscription, invoice, wallets);
    ``failed_subscriptions`` details the subscription ones."""

    as_of: datetime
    boundaries: int = 0
    invoices_created: int = 0
    invoices_finalized: int = 0
    grants_expired: int = 0
    alerts: int = 0
    failures: list[str] = field(default_factory=list)
    failed_subscriptions: list[SubscriptionFailure] = field(default_factory=list)

    def line(self) -> str:
        """One line; when something failed it ends with the first failures named (``; ``-separated)."""
        text = (
            f"as of {self.as_of.isoformat()}: {self.boundaries} period boundaries, {self.invoices_created} invoices "
            f"created, {self.invoices_finalized} finalized, {self.grants_expired} grants expired, "
            f"{self.alerts} low-balance alerts, {len(self.failures)} failures"
        )
        if self.failures:
            named = "; ".join(self.failures[:LINE_FAILURES])
            more = len(self.failures) - LINE_FAILURES
            text += f": {named}" + (f"; and {more} more" if more > 0 else "")
        return text

    def subscription_failed(self, subscription_id: int, exc: BaseException) -> None:
        """Record that ``subscription_id`` failed with ``exc`` (after its transaction rolled back)."""
        customer, boundary = "", None
        try:
            row = (
                Subscription.objects.filter(pk=subscription_id)
                .values_list("customer__external_id", "current_period_end")
                .first()
            )
        except DatabaseError:  # the connection itself failed: name the subscription alone
            row = None
        if row is not None:
            customer, boundary = row
        failure = SubscriptionFailure(subscription_id, customer, boundary, error_text(exc))
        self.failed_subscriptions.append(failure)
        self.failures.append(failure.text())

    def counts(self) -> dict[str, int]:
        return {
            "boundaries": self.boundaries,
            "invoices_created": self.invoices_created,
            "invoices_finalized": self.invoices_finalized,
            "grants_expired": self.grants_expired,
            "alerts": self.alerts,
        }


def as_of_parse(value: str | None) -> datetime:
    """The instant a run works as of, from ISO 8601 (a naive value is UTC); the current time when empty.

    Shared by ``run_billing --now`` and the Celery tasks. Raises ``ValueError`` when the value is unreadable
    or outside the accepted range (``core.instants``: a run as of year 9999 would bill every
    period up to it).
    """
    if not value:
        return timezone.now()
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well formed but not a date (month 13)
        parsed = None
    if parsed is None:
        raise ValueError(f"cannot parse {value!r}; use ISO 8601, e.g. 2026-02-01T00:00:00Z")
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is past the calendar's end in UTC
        raise ValueError(f"{value!r}: {OUT_OF_RANGE}") from None
    if not instant_in_range(parsed):
        raise ValueError(f"{value!r}: {OUT_OF_RANGE}")
    return parsed


def due_subscription_ids(*, now: datetime, customer_external_id: str | None = None) -> list[int]:
    """Active subscriptions with a boundary due at or before ``now``, oldest boundary first."""
    qs = Subscription.objects.filter(status=Subscription.Status.ACTIVE, current_period_end__lte=now)
    if customer_external_id:
        qs = qs.filter(customer__external_id=customer_external_id)
    return list(qs.order_by("current_period_end", "id").values_list("id", flat=True))


def subscriptions_bill(
    *, subscription_ids: Iterable[int], now: datetime, summary: RunSummary, progress: Progress | None = None
) -> None:
    """Catch up each subscription (every boundary due, oldest first), recording failures on ``summary``.

    A subscription that fails keeps the boundaries it billed before the failure; the run goes on.

    Parallel runs share the work (rule chosen): a first pass skips, without waiting, each subscription whose
    customer another transaction has locked (``SKIP LOCKED``), so two runs walking the same list bill
    disjoint subscriptions instead of queueing behind each other; a second pass then takes the skipped ones
    with ordinary (waiting) locks, and finds them billed already or bills them itself. Every due boundary is
    billed by the run either way; ``progress`` counts each subscription once.

    The webhook endpoints are read once per batch of ``USAGE_BATCH`` subscriptions
    (``core.outbox.outbox_listeners_snapshot``): with none listening to ``invoice.created``/``invoice.finalized``
    an invoice asks nothing more, where it asked twice.
    """
    with outbox_listeners_snapshot() as listeners:  # whether webhook endpoints listen: read once per batch
        _subscriptions_bill(
            ids=list(subscription_ids), now=now, summary=summary, progress=progress, listeners=listeners
        )


def _subscriptions_bill(
    *, ids: list[int], now: datetime, summary: RunSummary, progress: Progress | None, listeners: ListenerSnapshot
) -> None:
    batch = RunBatch()
    busy: list[int] = []
    for done, subscription_id in enumerate(ids, start=1):
        if (done - 1) % USAGE_BATCH == 0:
            batch = batch_prefetch(subscription_ids=ids[done - 1 : done - 1 + USAGE_BATCH], now=now)
            listeners.forget()
        if not _subscription_bill(
            subscription_id,
            now=now,
            summary=summary,
            usage=batch.usage.get(subscription_id),
            sheets=batch.sheets,
            skip_locked=True,
        ):
            busy.append(subscription_id)
            continue
        if progress is not None:
            progress(done - len(busy), len(ids))
    for n, subscription_id in enumerate(busy, start=1):
        if (n - 1) % USAGE_BATCH == 0:
            listeners.forget()
        _subscription_bill(subscription_id, now=now, summary=summary, usage=None, sheets=NO_SHEETS, skip_locked=False)
        if progress is not None:
            progress(len(ids) - len(busy) + n, len(ids))


def _subscription_bill(
    subscription_id: int,
    *,
    now: datetime,
    summary: RunSummary,
    usage: UsageBatch | None,
    sheets: PriceSheets,
    skip_locked: bool,
) -> bool:
    """Catch one subscription up; False when ``skip_locked`` found its customer busy before any boundary."""
    first = usage
    billed_any = False
    try:
        while True:
            try:
                processed, invoice = subscription_bill_once(
                    subscription_id=subscription_id,
                    now=now,
                    usage=first,
                    sheets=sheets,
                    skip_locked=skip_locked and not billed_any,
                )
            except CustomerBusy:  # only the first boundary skips: later ones wait like any lock
                return False
            first = None
            if not processed:
                break
            billed_any = True
            summary.boundaries += 1
            if invoice is not None:
                summary.invoices_created += 1
                if invoice.status != Invoice.Status.DRAFT:
                    summary.invoices_finalized += 1
                advanced = invoice.subscription  # the locked instance, advanced in place
                if advanced.status != Subscription.Status.ACTIVE or advanced.current_period_end > now:
                    break  # caught up: no need for another transaction to find nothing due
    except Exception as exc:  # one subscription's failure must not stop the run, nor go unnoticed
        logger.exception("Billing subscription %s failed", subscription_id)
        summary.subscription_failed(subscription_id, exc)
    return True


USAGE_BATCH = 200


@dataclass(frozen=True, slots=True)
class RunBatch:
    """What a run reads once for a batch of subscriptions: each one's usage of its due period, and the price
    sheets of the versions they bill with (current, pinned, and in effect for the next period)."""

    usage: Mapping[int, UsageBatch] = field(default_factory=dict)
    sheets: PriceSheets = field(default_factory=lambda: NO_SHEETS)


def batch_prefetch(*, subscription_ids: list[int], now: datetime) -> RunBatch:
    """Read a batch once: price sheets in four queries, then usage aggregated in SQL with one query per meter
    and (version, period) group.

    The boundary uses a subscription's usage only when the locked row still has that period and version
    (``UsageBatch.for_period``); the ended period is in the past, so events stored later would be late for a
    per-subscription query too. The sheets serve this batch only: the next batch reads them again.
    """
    in_effect = (
        PlanVersion.objects.filter(
            plan_id=OuterRef("plan_id"),
            status=PlanVersion.Status.PUBLISHED,
            effective_from__lte=OuterRef("current_period_end"),
        )
        .order_by("-effective_from", "-number")
        .values("id")[:1]
    )
    rows = list(
        Subscription.objects.filter(
            pk__in=subscription_ids, status=Subscription.Status.ACTIVE, current_period_end__lte=now
        )
        .annotate(next_version_id=Subquery(in_effect))
        .values_list(
            "id",
            "customer__external_id",
            "plan_version_id",
            "current_period_start",
            "current_period_end",
            "pinned_version_id",
            "next_version_id",
        )
    )
    sheets = price_sheets_read({v for row in rows for v in (row[2], row[5], row[6]) if v is not None})
    groups: dict[tuple, list[tuple]] = {}
    for row in rows:
        if row[2] is not None:
            groups.setdefault((row[2], row[3], row[4]), []).append(row)
    usage: dict[int, UsageBatch] = {}
    for (version_id, start, end), members in groups.items():
        meters = {p.meter_id: p.meter for p in sheets[version_id].prices if p.meter_id is not None}
        values = (
            usage_for_customers(
                meters=list(meters.values()), customer_external_ids=[m[1] for m in members], start=start, end=end
            )
            if meters
            else {}
        )
        batch = UsageBatch(
            period_start=start, period_end=end, plan_version_id=version_id, values=MappingProxyType(values)
        )
        for member in members:
            usage[member[0]] = batch
    return RunBatch(usage=usage, sheets=MappingProxyType(sheets))


def changes_and_trials_bill(*, now: datetime, summary: RunSummary, customer_external_id: str | None = None) -> None:
    """Trial ends due (``trials.py``), then the successors of plan changes made at a boundary of this run whose own
    boundaries are due too (a run catching up past a scheduled change), until nothing more is due."""
    for subscription_id in trial_end_due_ids(now=now, customer_external_id=customer_external_id):
        try:
            invoice = subscription_trial_end_bill(subscription_id=subscription_id, now=now)
        except Exception as exc:  # recorded like a boundary's failure; the trial end stays due
            logger.exception("Billing the trial end of subscription %s failed", subscription_id)
            summary.subscription_failed(subscription_id, exc)
            continue
        if invoice is not None:
            summary.invoices_created += 1
            summary.invoices_finalized += invoice.status != Invoice.Status.DRAFT
    seen: set[int] = set()
    while True:
        successors = Subscription.objects.filter(
            status=Subscription.Status.ACTIVE, current_period_end__lte=now, previous_subscription__isnull=False
        ).exclude(pk__in=seen)
        if customer_external_id:
            successors = successors.filter(customer__external_id=customer_external_id)
        due = list(successors.order_by("current_period_end", "id").values_list("id", flat=True))
        if not due:
            return
        seen.update(due)
        subscriptions_bill(subscription_ids=due, now=now, summary=summary)


def drafts_finalize_due(*, now: datetime, summary: RunSummary, customer_external_id: str | None = None) -> None:
    """Finalize drafts whose grace period has run out (``finalize_after <= now``), one transaction each."""
    qs = Invoice.objects.filter(status=Invoice.Status.DRAFT, finalize_after__lte=now)
    if customer_external_id:
        qs = qs.filter(customer__external_id=customer_external_id)
    for invoice_id in qs.order_by("finalize_after", "id").values_list("id", flat=True):
        try:
            with transaction.atomic(durable=True):
                invoice = _lock(invoice_id, customer=True)
                if invoice.status != Invoice.Status.DRAFT:
                    continue  # finalized by a concurrent run
                invoice_finalize_locked(invoice=invoice, now=now)
                summary.invoices_finalized += 1
        except Exception as exc:
            logger.exception("Finalizing invoice %s failed", invoice_id)
            summary.failures.append(f"invoice {invoice_id}: {error_text(exc)}")


def billing_run_execute(
    *,
    now: datetime,
    customer_external_id: str | None = None,
    progress: Progress | None = None,
    trigger: str = "manual",
) -> RunSummary:
    """Do all scheduled work due at or before ``now`` (optionally for one customer), idempotently.

    ``progress(done, total)`` is called after each subscription. The outcome is recorded as a ``BillingRun``.
    ``now`` outside the accepted range (``core.instants``) is a ValidationFailed naming ``now``.
    """
    instant_check(now, field="now")
    run = BillingRun.objects.create(as_of=now, customer_external_id=customer_external_id or "", trigger=trigger)
    summary = RunSummary(as_of=now)
    subscriptions_bill(
        subscription_ids=due_subscription_ids(now=now, customer_external_id=customer_external_id),
        now=now,
        summary=summary,
        progress=progress,
    )
    changes_and_trials_bill(now=now, summary=summary, customer_external_id=customer_external_id)
    progressive_work(now=now, summary=summary, customer_external_id=customer_external_id)
    drafts_finalize_due(now=now, summary=summary, customer_external_id=customer_external_id)
    wallet_work(now=now, summary=summary, customer_external_id=customer_external_id)
    billing_run_record(run=run, summary=summary)
    return summary


def progressive_work(*, now: datetime, summary: RunSummary, customer_external_id: str | None = None) -> None:
    """The progressive billing watch (``progressive.progressive_watch``) after the boundaries, so a period that
    just ended is billed by its boundary first; its invoices and failures go on ``summary``."""
    try:
        outcome = progressive_watch(now=now, customer_external_id=customer_external_id)
    except Exception as exc:
        logger.exception("Progressive billing watch failed")
        summary.failures.append(f"progressive billing: {error_text(exc)}")
        return
    summary.invoices_created += len(outcome.invoices)
    summary.invoices_finalized += (
        Invoice.objects.filter(pk__in=outcome.invoices).exclude(status=Invoice.Status.DRAFT).count()
    )
    summary.failures += outcome.failures


def wallet_work(*, now: datetime, summary: RunSummary, customer_external_id: str | None = None) -> None:
    """Expiry, low-balance alerts and top-ups, through the credits seam; a failure is recorded, not raised."""
    try:
        counts = (
            credits_seam.credits_scheduled_work(
                now=now, top_up=credit_purchase_invoice_create, customer_external_id=customer_external_id
            )
            or {}
        )
    except Exception as exc:
        logger.exception("Wallet scheduled work failed")
        summary.failures.append(f"wallets: {error_text(exc)}")
        return
    summary.grants_expired += int(counts.get("grants_expired", 0))
    summary.alerts += int(counts.get("alerts", 0))


def billing_run_record(*, run: BillingRun, summary: RunSummary) -> None:
    run.status = BillingRun.Status.FAILED if summary.failures else BillingRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.counts = summary.counts()
    run.failures = summary.failures
    run.failed_subscriptions = [f.as_json() for f in summary.failed_subscriptions]
    run.summary = summary.line()
    run.save(update_fields=["status", "finished_at", "counts", "failures", "failed_subscriptions", "summary"])
