"""The scheduled work, as of an instant: the one service that run_billing and Celery beat both call.

``billing_run_execute(now)``:

1. every period boundary due at or before ``now`` for active subscriptions, oldest first, each subscription
   looped until it is caught up (one transaction per boundary; see ``boundary``);
2. drafts whose ``finalize_after <= now`` are finalized;
3. the wallets' scheduled work (expiry, low-balance alerts, top-ups) through the credits seam.

One subscription's failure is logged and recorded on the ``BillingRun``; the run goes on. Re-running with
the same or an earlier ``now`` bills nothing new. Parallel runs (several processes or Celery workers) are
safe: each boundary locks its customer and subscription and re-checks the state after locking, and the
database refuses a second invoice for one boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog.models import Price
from customers.models import Subscription
from invoicing.models import BillingRun
from metering.selectors import usage_for_customers

from ..models import Invoice
from . import credits as credits_seam
from .boundary import CustomerBusy, subscription_bill_once
from .invoices import _lock, invoice_finalize_locked

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class RunSummary:
    as_of: datetime
    boundaries: int = 0
    invoices_created: int = 0
    invoices_finalized: int = 0
    grants_expired: int = 0
    alerts: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"as of {self.as_of.isoformat()}: {self.boundaries} period boundaries, {self.invoices_created} invoices "
            f"created, {self.invoices_finalized} finalized, {self.grants_expired} grants expired, "
            f"{self.alerts} low-balance alerts, {len(self.failures)} failures"
        )

    def counts(self) -> dict[str, int]:
        return {
            "boundaries": self.boundaries, "invoices_created": self.invoices_created,
            "invoices_finalized": self.invoices_finalized, "grants_expired": self.grants_expired, "alerts": self.alerts,
        }


def as_of_parse(value: str | None) -> datetime:
    """The instant a run works as of, from ISO 8601 (a naive value is UTC); the current time when empty.

    Shared by ``run_billing --now`` and the Celery tasks. Raises ``ValueError`` when the value is unreadable.
    """
    if not value:
        return timezone.now()
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError(f"cannot parse {value!r}; use ISO 8601, e.g. 2026-02-01T00:00:00Z")
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


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
    """
    ids = list(subscription_ids)
    usage: dict[int, tuple] = {}
    busy: list[int] = []
    for done, subscription_id in enumerate(ids, start=1):
        if (done - 1) % USAGE_BATCH == 0:
            usage = usage_prefetch(subscription_ids=ids[done - 1 : done - 1 + USAGE_BATCH], now=now)
        if not _subscription_bill(subscription_id, now=now, summary=summary, usage=usage.pop(subscription_id, None),
                                  skip_locked=True):
            busy.append(subscription_id)
            continue
        if progress is not None:
            progress(done - len(busy), len(ids))
    for n, subscription_id in enumerate(busy, start=1):
        _subscription_bill(subscription_id, now=now, summary=summary, usage=None, skip_locked=False)
        if progress is not None:
            progress(len(ids) - len(busy) + n, len(ids))


def _subscription_bill(subscription_id: int, *, now: datetime, summary: RunSummary, usage, skip_locked: bool) -> bool:
    """Catch one subscription up; False when ``skip_locked`` found its customer busy before any boundary."""
    first = usage
    billed_any = False
    try:
        while True:
            try:
                processed, invoice = subscription_bill_once(
                    subscription_id=subscription_id, now=now, usage=first, skip_locked=skip_locked and not billed_any
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
    except Exception as exc:  # one subscription's failure must not stop the run
        logger.exception("Billing subscription %s failed", subscription_id)
        summary.failures.append(f"subscription {subscription_id}: {type(exc).__name__}: {exc}")
    return True


USAGE_BATCH = 200


def usage_prefetch(*, subscription_ids: list[int], now: datetime) -> dict[int, tuple]:
    """Usage of the due period of many subscriptions, aggregated in SQL with one query per meter and period.

    Returns ``{subscription_id: (period_start, period_end, plan_version_id, {(external_id, meter_id): value})}``.
    The boundary uses it only when the locked subscription still has that period and version; the ended
    period is in the past, so events stored later would be late for a per-subscription query too.
    """
    rows = list(
        Subscription.objects.filter(pk__in=subscription_ids, status=Subscription.Status.ACTIVE, current_period_end__lte=now)
        .values_list("id", "customer__external_id", "plan_version_id", "current_period_start", "current_period_end")
    )
    groups: dict[tuple, list[tuple]] = {}
    for row in rows:
        groups.setdefault((row[2], row[3], row[4]), []).append(row)
    out: dict[int, tuple] = {}
    for (version_id, start, end), members in groups.items():
        meters = {
            p.meter_id: p.meter
            for p in Price.objects.filter(plan_version_id=version_id, meter__isnull=False)
            .select_related("meter").prefetch_related("meter__filters")
        }
        values = usage_for_customers(
            meters=list(meters.values()), customer_external_ids=[m[1] for m in members], start=start, end=end
        ) if meters else {}
        for member in members:
            out[member[0]] = (start, end, version_id, values)
    return out


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
            summary.failures.append(f"invoice {invoice_id}: {type(exc).__name__}: {exc}")


def billing_run_execute(
    *,
    now: datetime,
    customer_external_id: str | None = None,
    progress: Progress | None = None,
    trigger: str = "manual",
) -> RunSummary:
    """Do all scheduled work due at or before ``now`` (optionally for one customer), idempotently.

    ``progress(done, total)`` is called after each subscription. The outcome is recorded as a ``BillingRun``.
    """
    run = BillingRun.objects.create(as_of=now, customer_external_id=customer_external_id or "", trigger=trigger)
    summary = RunSummary(as_of=now)
    subscriptions_bill(
        subscription_ids=due_subscription_ids(now=now, customer_external_id=customer_external_id),
        now=now, summary=summary, progress=progress,
    )
    drafts_finalize_due(now=now, summary=summary, customer_external_id=customer_external_id)
    wallet_work(now=now, summary=summary, customer_external_id=customer_external_id)
    billing_run_record(run=run, summary=summary)
    return summary


def wallet_work(*, now: datetime, summary: RunSummary, customer_external_id: str | None = None) -> None:
    """Expiry, low-balance alerts and top-ups, through the credits seam; a failure is recorded, not raised."""
    try:
        counts = credits_seam.credits_scheduled_work(now=now, customer_external_id=customer_external_id) or {}
    except Exception as exc:
        logger.exception("Wallet scheduled work failed")
        summary.failures.append(f"wallets: {type(exc).__name__}: {exc}")
        return
    summary.grants_expired += int(counts.get("grants_expired", 0))
    summary.alerts += int(counts.get("alerts", 0))


def billing_run_record(*, run: BillingRun, summary: RunSummary) -> None:
    run.status = BillingRun.Status.FAILED if summary.failures else BillingRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.counts = summary.counts()
    run.failures = summary.failures
    run.summary = summary.line()
    run.save(update_fields=["status", "finished_at", "counts", "failures", "summary"])
