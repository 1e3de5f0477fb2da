"""The admin front page's figures: what a finance team checks first each morning.

Everything here is a read (aggregate queries, a bounded number of them); amounts are grouped by currency
and never added across currencies. Invoice figures (amounts due, invoices by status, revenue, drafts) are read
and shown only for users who may view invoices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.db.models.functions import TruncMonth

from core.money import format_money


@dataclass
class MonthRevenue:
    month: datetime
    amounts: dict[str, Decimal] = field(default_factory=dict)


def _month_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _add_months(at: datetime, n: int) -> datetime:
    month = at.month - 1 + n
    return at.replace(year=at.year + month // 12, month=month % 12 + 1)


def amounts_due(now: datetime) -> list[dict]:
    """Open receivables per currency: total due, and the overdue part (due date passed)."""
    from invoicing.models import Invoice

    open_invoices = Invoice.objects.filter(status=Invoice.Status.FINALIZED, amount_due__gt=0)
    rows = open_invoices.values("currency").annotate(
        due=Sum("amount_due"),
        overdue=Sum("amount_due", filter=Q(due_at__lt=now)),
        count=Count("id"),
        overdue_count=Count("id", filter=Q(due_at__lt=now)),
    )
    return [
        {
            "currency": r["currency"],
            "due": format_money(r["due"] or Decimal(0), r["currency"]),
            "overdue": format_money(r["overdue"] or Decimal(0), r["currency"]),
            "count": r["count"],
            "overdue_count": r["overdue_count"],
        }
        for r in rows.order_by("currency")
    ]


def invoices_by_status_this_month(now: datetime) -> list[dict]:
    from invoicing.models import Invoice

    start = _month_start(now)
    counts = dict(
        Invoice.objects.filter(created_at__gte=start).values_list("status").annotate(n=Count("id")).order_by()
    )
    return [{"status": label, "value": value, "count": counts.get(value, 0)} for value, label in Invoice.Status.choices]


def revenue_by_month(now: datetime, months: int = 12) -> tuple[list[MonthRevenue], list[str]]:
    """Invoiced revenue (finalized, paid and uncollectible invoices' totals by issue month), last ``months``."""
    from invoicing.models import Invoice

    first = _add_months(_month_start(now), -(months - 1))
    buckets = [MonthRevenue(month=_add_months(first, i)) for i in range(months)]
    index = {b.month: b for b in buckets}
    rows = (
        Invoice.objects.filter(
            issued_at__gte=first,
            status__in=[Invoice.Status.FINALIZED, Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE],
        )
        .annotate(month=TruncMonth("issued_at", tzinfo=UTC))
        .values("month", "currency")
        .annotate(total=Sum("total"))
        .order_by()
    )
    currencies: set[str] = set()
    for r in rows:
        bucket = index.get(r["month"])
        if bucket is not None:
            bucket.amounts[r["currency"]] = r["total"]
            currencies.add(r["currency"])
    return buckets, sorted(currencies)


def revenue_chart_svg(buckets: list[MonthRevenue], currency: str, width: int = 640, height: int = 200) -> str:
    """A server-rendered bar chart (SVG, no JavaScript, no CDN) of one currency's monthly revenue."""
    values = [b.amounts.get(currency, Decimal(0)) for b in buckets]
    top = max(values) if values and max(values) > 0 else Decimal(1)
    pad_left, pad_bottom, pad_top = 8, 28, 18
    n = max(len(values), 1)
    slot = (width - pad_left * 2) / n
    bar = slot * 0.7
    plot_h = height - pad_bottom - pad_top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="Revenue by month in {currency}">'
    ]
    for i, (b, v) in enumerate(zip(buckets, values, strict=True)):
        h = float(v / top) * plot_h if top else 0.0
        x = pad_left + i * slot + (slot - bar) / 2
        y = pad_top + plot_h - h
        label = format_money(v, currency)
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="#417690">'
            f"<title>{b.month:%b %Y}: {label}</title></rect>"
        )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height - 10}" font-size="10" text-anchor="middle">{b.month:%b}</text>'
        )
        if v:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" font-size="9" text-anchor="middle">{label}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def billing_runs() -> dict:
    """The last billing run's outcome and the next scheduled one (from django-celery-beat)."""
    from django_celery_beat.models import PeriodicTask

    from invoicing.models import BillingRun

    last = BillingRun.objects.order_by("-started_at").first()
    next_run = None
    task = (
        PeriodicTask.objects.filter(task="invoicing.billing_run_execute", enabled=True)
        .select_related("crontab")
        .first()
    )
    if task is not None and task.crontab is not None:
        now = datetime.now(UTC)
        remaining = task.crontab.schedule.remaining_estimate(task.last_run_at or now)
        next_run = {
            "name": task.name,
            "at": now + max(remaining, timedelta(0)),
            "schedule": str(task.crontab),
        }
    return {"last": last, "next": next_run}


def billing_failures(limit: int = 20) -> dict:
    """Subscriptions whose billing failed in the last run, for the dashboard's alert.

    The last run is the latest ``BillingRun`` other than a Celery chunk's, together with the chunk rows it fanned
    out (same ``as_of``, started after it): the beat records each chunk's failures on a row of its own.
    Rows: ``{"subscription_id", "subscription" (the row, or None), "customer" (external id), "boundary",
    "error"}``, one per subscription, at most ``limit`` (``count`` has them all).
    """
    from customers.models import Subscription
    from invoicing.models import BillingRun

    last = BillingRun.objects.exclude(trigger=BillingRun.CHUNK_TRIGGER).order_by("-started_at", "-id").first()
    if last is None:
        return {"run": None, "count": 0, "rows": []}
    chunks = BillingRun.objects.filter(
        trigger=BillingRun.CHUNK_TRIGGER, as_of=last.as_of, started_at__gte=last.started_at
    ).order_by("started_at", "id")
    entries: dict[int, dict] = {}
    for run in [last, *chunks]:
        for entry in run.failed_subscriptions or []:
            entries.setdefault(int(entry["subscription"]), entry)
    shown = list(entries.items())[:limit]
    subscriptions = Subscription.objects.select_related("customer", "plan").in_bulk([pk for pk, _ in shown])
    rows = [
        {
            "subscription_id": pk,
            "subscription": subscriptions.get(pk),
            "customer": entry.get("customer", ""),
            "boundary": datetime.fromisoformat(entry["boundary"]) if entry.get("boundary") else None,
            "error": entry.get("error", ""),
        }
        for pk, entry in shown
    ]
    return {"run": last, "count": len(entries), "rows": rows}


def wallets_below_threshold(limit: int = 10):
    from wallets.models import Wallet

    qs = (
        Wallet.objects.filter(status=Wallet.Status.ACTIVE, low_balance_threshold__isnull=False)
        .filter(balance__lt=F("low_balance_threshold"))
        .select_related("customer")
        .order_by("balance")
    )
    return qs.count(), list(qs[:limit])


def unknown_customer_events() -> tuple[int, list[dict]]:
    """Events whose customer external id matches no customer (stored, waiting for the customer)."""
    from customers.models import Customer
    from metering.models import Event
    from metering.selectors import unknown_customer_event_count

    count = unknown_customer_event_count()
    top = []
    if count:
        qs = Event.objects.filter(~Exists(Customer.objects.filter(external_id=OuterRef("customer_external_id"))))
        top = list(qs.values("customer_external_id").annotate(n=Count("id")).order_by("-n", "customer_external_id")[:5])
    return count, top


def drafts_waiting(limit: int = 10):
    from invoicing.models import Invoice

    qs = Invoice.objects.filter(status=Invoice.Status.DRAFT).select_related("customer").order_by("finalize_after", "id")
    return qs.count(), list(qs[:limit])


def dashboard_context(now: datetime, *, invoicing: bool = True) -> dict:
    wallets_count, wallets = wallets_below_threshold()
    unknown_count, unknown_top = unknown_customer_events()
    context = {
        "now": now,
        "invoicing": invoicing,
        "runs": billing_runs(),
        "billing_failures": billing_failures(),
        "low_wallets_count": wallets_count,
        "low_wallets": wallets,
        "unknown_events_count": unknown_count,
        "unknown_events_top": unknown_top,
    }
    if not invoicing:
        return context
    buckets, currencies = revenue_by_month(now)
    drafts_count, drafts = drafts_waiting()
    return {
        **context,
        "amounts_due": amounts_due(now),
        "status_counts": invoices_by_status_this_month(now),
        "revenue_charts": [
            {
                "currency": c,
                "svg": revenue_chart_svg(buckets, c),
                "total": format_money(sum((b.amounts.get(c, Decimal(0)) for b in buckets), Decimal(0)), c),
            }
            for c in currencies
        ],
        "drafts_count": drafts_count,
        "drafts": drafts,
    }
