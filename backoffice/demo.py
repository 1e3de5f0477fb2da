"""The demo loader: the demo catalog, customers on every plan family, three months of usage, billed month by month.

``demo_load(stdout=..., scale=1.0, now=None, seed=7)``:

1. the catalog (``backoffice.demo_catalog``), through the catalog and metering services, with API Pro's second
   version (effective from the 1st of last month);
2. customers, ``max(1, round(2 * scale))`` per plan family (the first of each family is the one
   docs/pricing-cookbook.md works through by hand) and API Pro's second one at any scale (on v2 beside the first,
   pinned on v1), with wallets and a promotional grant where the plan needs them, the launch coupon where the spec
   names it (``DEMO_COUPONS``, applied before the subscription starts, so its first invoice shows the discount), then
   their subscriptions
   through ``invoicing.services.subscription_start``, as of their start: calendar ones on the 1st of the month
   three months before ``now``, one anniversary one on the 10th of that month at 09:30 UTC. From the default
   scale on, Podcast Lab is in America/Los_Angeles (its subscription starts at its local midnight on the 1st and
   its periods run from local midnight to local midnight; the runs at 00:00 UTC on the 1st bill its boundary of
   08:00 UTC at the next run) and Byte Works has a negotiated price (standard-model requests at $0.03 instead of
   the plan's $0.04). At any scale, Parcel Track signs up on API Pro later, on the 5th of last month, on v2 with
   its 14-day free trial (no fee until the 19th; the rest of that month is billed prorated at the trial's end);
3. usage events per billing period, built by formula (the hand-checked customers) or from a
   ``random.Random`` seeded by ``seed`` and the customer's id (the others), so every run with the same ``now``
   produces the same events; they go through the ingestion code the events API uses
   (``metering.ingest.event_clean`` then ``metering.services.events_store``, batches of up to 1,000);
4. billing month by month: ``invoicing.services.billing_run_execute(now=T)`` at each 1st of the month after the
   start, then at ``now``, each run preceded by the events that happened before it, with a text progress bar;
5. an offline payment on the API Pro customer's first usage invoice. The support customer has
   ``invoice_grace_days`` so that its latest invoice stays a draft for review.

Safe to run twice: rows are looked up by their keys (plan, meter and feature keys, customer external ids,
grant idempotency keys) and kept when they exist; event ids are stable, so a re-sent event is a duplicate;
billing runs are idempotent by the database's one-invoice-per-boundary constraint; the payment is recorded
only when the invoice has none.

Events whose timestamp is after ``now`` are never sent (the current period is partly used).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import F
from django.utils import timezone

from backoffice.demo_catalog import CURRENCY, FAMILIES, catalog_load, month_start

ANNIVERSARY_DAY = 10
ANNIVERSARY_TIME = (9, 30)
MONTHS_BACK = 3

# One usage spec: (period index, rng) -> [(event_name, properties), ...]; spread evenly over the period.
Usage = Callable[[int, random.Random], list[tuple[str, dict[str, Any]]]]


def pick(values: list[Any], index: int) -> Any:
    return values[min(index, len(values) - 1)]


# --------------------------------------------------------------------------- usage by formula


def voice_usage(chars: list[int], events: int = 20) -> Usage:
    """``events`` generations a period of ``chars[i] // events`` characters each."""

    def build(i: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
        per = pick(chars, i) // events
        return [("tts_generation", {"characters": per, "voice": "rachel", "model": "multilingual_v2"})] * events

    return build


def enrichment_usage(credits: list[int], events: int = 10) -> Usage:
    def build(i: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
        total = pick(credits, i)
        if not total:
            return []
        return [("enrichment", {"credits": total // events, "action": "enrich_row"})] * events

    return build


def video_usage(credits: int, minutes: int, seconds: int) -> Usage:
    def build(i: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
        return (
            [("video_ai_action", {"credits": 1, "action": "script"})] * credits
            + [("video_export", {"minutes": minutes // 4})] * 4
            + [("genai_clip", {"seconds": seconds // 3})] * 3
        )

    return build


def coding_usage(standard: list[int], thinking: list[int]) -> Usage:
    """One ``generate_code`` event per request; the model property decides which meter counts it."""

    def build(i: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
        return [("generate_code", {"model": "cursor-small", "requests": 1})] * pick(standard, i) + [
            ("generate_code", {"model": "claude-thinking", "requests": 1})
        ] * pick(thinking, i)

    return build


def support_usage(conversations: list[int], messages: int = 5) -> Usage:
    """``conversations`` chats of ``messages`` messages each; chat ids are unique per period."""

    def build(i: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
        return [
            ("support_message", {"chat_id": f"p{i}-chat-{c}", "author": "visitor" if m % 2 == 0 else "agent"})
            for c in range(pick(conversations, i))
            for m in range(messages)
        ]

    return build


def analytics_usage(last: list[int], snapshots: int = 10) -> Usage:
    """``snapshots`` growing MTU snapshots a period; the last one is ``last[i]``."""

    def build(i: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
        top = pick(last, i)
        return [("mtus", {"value": top * (k + 1) // snapshots}) for k in range(snapshots)]

    return build


def api_usage(calls: list[int]) -> Usage:
    def build(i: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
        return [("api_call", {"endpoint": "/v1/score"})] * pick(calls, i)

    return build


def random_usage(family: str) -> Usage:
    """Believable seeded usage for the extra customers of a family (not hand-checked)."""

    def build(i: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
        if family == "voice":
            return voice_usage([rng.randrange(300_000, 700_000, 1000)])(i, rng)
        if family == "enrichment":
            return enrichment_usage([rng.randrange(100, 600, 10)])(i, rng)
        if family == "video":
            return video_usage(rng.randrange(10, 30), rng.randrange(40, 160, 4), rng.randrange(30, 90, 3))(i, rng)
        if family == "coding":
            return coding_usage([rng.randrange(50, 200)], [rng.randrange(20, 120)])(i, rng)
        if family == "support":
            return support_usage([rng.randrange(5, 30)])(i, rng)
        if family == "analytics":
            return analytics_usage([rng.randrange(4_000, 60_000)])(i, rng)
        return api_usage([rng.randrange(3_000, 6_500)])(i, rng)

    return build


# --------------------------------------------------------------------------- customers


@dataclass(frozen=True)
class CustomerSpec:
    family: str
    external_id: str
    name: str
    plan: str
    usage: Usage
    billing: str = "calendar"
    tax_rates: tuple[str, ...] = ()
    invoice_grace_days: int = 0
    net_payment_terms: int = 0
    wallet: dict[str, Any] | None = None  # wallet_create arguments, created before the subscription
    promotional_credits: Decimal | None = None  # a promotional grant into that wallet at the start
    pinned_version: int | None = None  # the plan version the subscription keeps (grandfathered), by number
    coupon: str | None = None  # a DEMO_COUPONS code applied at signup, before the subscription starts
    always: bool = False  # loaded at every scale (it shows something the family's first customer does not)
    timezone: str = "UTC"  # the customer's IANA zone: its periods start at its local midnight
    price_overrides: tuple[dict[str, Any], ...] = ()  # negotiated prices of its subscription (catalog.overrides)
    # When it signs up: the ``start_day`` of the month ``start_months_back`` months before ``now`` (default: the
    # demo's start, the 1st of the month three months back).
    start_months_back: int = MONTHS_BACK
    start_day: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


# The first customer of each family is the one the test and the cookbook work out by hand.
CUSTOMERS: list[CustomerSpec] = [
    CustomerSpec(
        "voice",
        "narrator-studio",
        "Narrator Studio",
        "voice-creator",
        voice_usage([120_000, 90_000, 110_000, 60_000]),
        wallet={"name": "Promotions", "conversion_rate": Decimal(1), "applies_to": "all"},
        promotional_credits=Decimal("5.50"),
    ),
    # In Los Angeles: its months run from local midnight on the 1st (08:00 UTC in winter, 07:00 in summer).
    CustomerSpec(
        "voice", "podcast-lab", "Podcast Lab", "voice-pro", random_usage("voice"), timezone="America/Los_Angeles"
    ),
    CustomerSpec("voice", "audiobook-house", "Audiobook House", "voice-scale", random_usage("voice")),
    CustomerSpec(
        "enrichment",
        "growth-gurus",
        "Growth Gurus",
        "enrichment-starter",
        enrichment_usage([1000, 500, 0, 100]),
        wallet={"name": "Enrichment credits", "conversion_rate": Decimal("0.05"), "applies_to": "usage"},
    ),
    CustomerSpec(
        "enrichment",
        "lead-forge",
        "Lead Forge",
        "enrichment-payg",
        random_usage("enrichment"),
        wallet={"name": "Prepaid credits", "conversion_rate": Decimal("0.05"), "applies_to": "usage"},
        promotional_credits=Decimal("5000"),
    ),
    CustomerSpec(
        "enrichment",
        "pipeline-co",
        "Pipeline Co",
        "enrichment-starter",
        random_usage("enrichment"),
        wallet={"name": "Enrichment credits", "conversion_rate": Decimal("0.05"), "applies_to": "usage"},
    ),
    CustomerSpec("video", "clipwise", "Clipwise", "video-plus", video_usage(6, 40, 24)),
    CustomerSpec("video", "reel-factory", "Reel Factory", "video-max", random_usage("video")),
    CustomerSpec("video", "motion-team", "Motion Team", "video-team", random_usage("video")),
    CustomerSpec(
        "coding",
        "devshop",
        "Devshop",
        "coding-pro",
        coding_usage([60, 45, 70, 20], [40, 55, 30, 10]),
        billing="anniversary",
    ),
    # A negotiated price: standard-model requests at $0.03 instead of the plan's $0.04, for this customer only.
    CustomerSpec(
        "coding",
        "byte-works",
        "Byte Works",
        "coding-pro",
        random_usage("coding"),
        price_overrides=({"price": "Standard-model requests", "unit_amount": "0.03"},),
    ),
    CustomerSpec("coding", "stack-makers", "Stack Makers", "coding-pro", random_usage("coding")),
    CustomerSpec(
        "support",
        "helpdesk-hq",
        "Helpdesk HQ",
        "support-essential",
        support_usage([12, 15, 12, 4]),
        tax_rates=("vat-20",),
        invoice_grace_days=30,
    ),
    CustomerSpec(
        "support",
        "care-cloud",
        "Care Cloud",
        "support-essential",
        random_usage("support"),
        tax_rates=("vat-20",),
    ),
    CustomerSpec("support", "ticket-tide", "Ticket Tide", "support-essential", random_usage("support")),
    CustomerSpec(
        "analytics",
        "metricly",
        "Metricly",
        "analytics-growth",
        analytics_usage([26_730, 28_100, 9_800, 30_000]),
        coupon="LAUNCH50",
    ),
    CustomerSpec("analytics", "funnel-labs", "Funnel Labs", "analytics-growth", random_usage("analytics")),
    CustomerSpec("analytics", "cohort-io", "Cohort IO", "analytics-growth", random_usage("analytics")),
    # API Pro has two versions (demo_catalog.LATER_VERSIONS): ScoreAPI signed up on v1 and keeps it (pinned);
    # Geo Lookup is not pinned, so its periods from v2's first day on bill with v2.
    CustomerSpec(
        "api",
        "scoreapi",
        "ScoreAPI",
        "api-pro",
        api_usage([5_250, 4_800, 5_600, 1_000]),
        tax_rates=("vat-20",),
        net_payment_terms=14,
        pinned_version=1,
    ),
    CustomerSpec("api", "geo-lookup", "Geo Lookup", "api-pro", api_usage([5_100, 4_000, 6_500, 1_200]), always=True),
    CustomerSpec("api", "fraud-signal", "Fraud Signal", "api-pro", random_usage("api"), tax_rates=("vat-20",)),
    # A newer customer: signs up on the 5th of last month, on v2, which gives new subscriptions a 14-day free trial
    # (demo_catalog.LATER_VERSIONS): no fee until the trial ends on the 19th, then the rest of that month prorated.
    CustomerSpec(
        "api",
        "parcel-track",
        "Parcel Track",
        "api-pro",
        api_usage([6_800, 2_000]),
        always=True,
        start_months_back=1,
        start_day=5,
    ),
]

# Coupons the demo creates (``invoicing.services.coupons.coupon_create`` arguments), applied by the specs naming them.
# The launch coupon: 50% off the first invoice of the analytics plan (docs/pricing-cookbook.md, "A launch coupon").
DEMO_COUPONS: dict[str, dict[str, Any]] = {
    "LAUNCH50": {
        "name": "Analytics launch: 50% off the first invoice",
        "kind": "percentage",
        "percentage": Decimal("50"),
        "duration": "once",
        "plans": ["analytics-growth"],
    },
}

PAYMENT_CUSTOMER = "scoreapi"
# Customers settle invoices a few days after they fall due, except this one, kept overdue to show collections.
LATE_PAYER = "clipwise"
SETTLE_AFTER = timedelta(days=20)


def customers_for(scale: float) -> list[CustomerSpec]:
    """``max(1, round(2 * scale))`` customers per family, and those marked ``always`` at any scale; past the listed
    ones, numbered copies of the last one not marked ``always``."""
    per_family = max(1, round(2 * scale))
    chosen: list[CustomerSpec] = []
    for family in FAMILIES:
        listed = [c for c in CUSTOMERS if c.family == family]
        for n in range(max(per_family, len(listed))):
            if n < len(listed):
                if n < per_family or listed[n].always:
                    chosen.append(listed[n])
            else:
                base = [c for c in listed if not c.always][-1]
                chosen.append(
                    CustomerSpec(
                        family,
                        f"{base.external_id}-{n}",
                        f"{base.name} #{n}",
                        base.plan,
                        random_usage(family),
                        billing=base.billing,
                        tax_rates=base.tax_rates,
                        wallet=base.wallet,
                    )
                )
    return chosen


# --------------------------------------------------------------------------- loading steps


class Progress:
    """A plain text progress bar: ``[#####-----] 2/4 billing runs``, one line per step (works in any log)."""

    def __init__(self, stdout, total: int, label: str, width: int = 20) -> None:
        self.stdout, self.total, self.label, self.width = stdout, total, label, width

    def __call__(self, done: int, note: str = "") -> None:
        filled = self.width * done // max(self.total, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stdout.write(f"  [{bar}] {done}/{self.total} {self.label}{'  ' + note if note else ''}")


def _customer_ensure(spec: CustomerSpec, created: dict[str, int]):
    from customers.models import Customer
    from customers.services import customer_create

    customer = Customer.objects.filter(external_id=spec.external_id).first()
    if customer is None:
        customer = customer_create(
            external_id=spec.external_id,
            name=spec.name,
            currency=CURRENCY,
            email=f"billing@{spec.external_id}.example",
            tax_rates=spec.tax_rates,
            net_payment_terms=spec.net_payment_terms,
            invoice_grace_days=spec.invoice_grace_days,
            timezone=spec.timezone,
        )
        created["customers"] += 1
    return customer


def _wallet_ensure(spec: CustomerSpec, customer, start: datetime, created: dict[str, int]) -> None:
    from wallets.models import Wallet
    from wallets.services import wallet_create, wallet_grant_create

    if spec.wallet is None:
        return
    wallet = Wallet.objects.filter(customer=customer, name=spec.wallet["name"]).order_by("id").first()
    if wallet is None:
        wallet = wallet_create(customer=customer, currency=CURRENCY, **spec.wallet)
        created["wallets"] += 1
    if spec.promotional_credits:
        _, new = wallet_grant_create(
            wallet=wallet,
            credits=spec.promotional_credits,
            kind="promotional",
            now=start,
            priority=0,
            idempotency_key=f"demo-promotional-{spec.external_id}",
            name="Welcome offer",
        )
        created["grants"] += int(new)


def _coupon_ensure(spec: CustomerSpec, customer, start: datetime, created: dict[str, int]) -> None:
    """The spec's coupon, created once and applied once (as of the subscription's start), before it starts."""
    from invoicing.models import AppliedCoupon, Coupon
    from invoicing.services.coupons import coupon_create, customer_coupon_apply

    if spec.coupon is None:
        return
    coupon = Coupon.objects.filter(code=spec.coupon).first() or coupon_create(
        code=spec.coupon, **DEMO_COUPONS[spec.coupon]
    )
    if not AppliedCoupon.objects.filter(customer=customer, coupon=coupon).exists():
        customer_coupon_apply(customer=customer, coupon=coupon, now=start)
        created["coupons"] = created.get("coupons", 0) + 1


def _subscription_ensure(spec: CustomerSpec, customer, start: datetime, created: dict[str, int]):
    from catalog.models import Plan
    from customers.models import Subscription
    from invoicing.services import subscription_start

    plan = Plan.objects.get(key=spec.plan)
    existing = Subscription.objects.filter(customer=customer, plan=plan).order_by("id").first()
    if existing is not None:
        return existing
    pinned = plan.versions.get(number=spec.pinned_version) if spec.pinned_version else None
    created["subscriptions"] += 1
    return subscription_start(
        customer=customer,
        plan=plan,
        start_at=start,
        billing=spec.billing,
        pinned_version=pinned,
        now=start,
        price_overrides=[dict(o) for o in spec.price_overrides] or None,
    )


def subscription_start_at(spec: CustomerSpec, start: datetime) -> datetime:
    if spec.billing == "anniversary":
        return start.replace(day=ANNIVERSARY_DAY, hour=ANNIVERSARY_TIME[0], minute=ANNIVERSARY_TIME[1])
    if spec.timezone != "UTC":  # the same calendar day, at the customer's local midnight
        return datetime.combine(start.date(), time(0, 0), tzinfo=ZoneInfo(spec.timezone)).astimezone(UTC)
    return start


def events_for(spec: CustomerSpec, subscription, *, now: datetime, seed: int) -> list[dict[str, Any]]:
    """The customer's events for every period from its start to ``now`` (API.md EVENT shape), deterministic.

    Period ``i``'s events are spread evenly over the period (event ``k`` of ``n`` at ``start + (k + 0.5) /
    n`` of its length); those at or after ``now`` are left out. Event ids name the customer, the period's
    start and the position, so a second run sends the same ids.
    """
    from customers import periods

    rng = random.Random(seed * 1_000_003 + zlib.crc32(spec.external_id.encode()))
    interval = subscription.plan.interval
    zone = subscription.customer.timezone
    period = periods.first_period(spec.billing, subscription.start_at, interval, timezone=zone)
    events: list[dict[str, Any]] = []
    index = 0
    while period.start < now:
        items = spec.usage(index, rng)
        length = period.end - period.start
        for k, (name, properties) in enumerate(items):
            at = period.start + length * (2 * k + 1) / (2 * len(items))
            at = at.replace(microsecond=0)
            if at >= now:
                break
            events.append(
                {
                    "event_id": f"{spec.external_id}-{period.start:%Y%m%d}-{k}",
                    "customer": spec.external_id,
                    "event_name": name,
                    "timestamp": at.isoformat().replace("+00:00", "Z"),
                    "properties": properties,
                }
            )
        period = periods.next_period(spec.billing, subscription.start_at, interval, period, timezone=zone)
        index += 1
    return events


def events_ingest(events: list[dict[str, Any]], *, now: datetime) -> tuple[int, int]:
    """Send events through the ingestion path of ``POST /events/batch`` (validation, one insert per batch).

    Returns ``(accepted, duplicates)``. A rejected event is a bug in the demo: it raises.
    """
    from metering.ingest import MAX_BATCH, event_clean
    from metering.selectors import numeric_fields_by_event_name, numeric_fields_forget
    from metering.services import events_store

    numeric_fields_forget()  # meters may have been created a moment ago in this process
    numeric = numeric_fields_by_event_name()
    accepted = duplicates = 0
    for offset in range(0, len(events), MAX_BATCH):
        valid = {}
        for raw in events[offset : offset + MAX_BATCH]:
            event, errors = event_clean(raw, numeric_fields=numeric, now=now)
            if event is None:
                raise ValueError(f"demo event {raw.get('event_id')} rejected: {errors}")
            valid[(event.customer, event.event_id)] = event
        stored = events_store(events=list(valid.values()))
        accepted += stored
        duplicates += len(valid) - stored
    return accepted, duplicates


def billing_instants(start: datetime, now: datetime) -> list[datetime]:
    """Each 1st of the month after ``start`` up to ``now``, then ``now`` itself (unless it is one of them)."""
    instants = []
    month = 1
    while (at := month_start(start, -month)) <= now:
        instants.append(at)
        month += 1
    if not instants or instants[-1] != now:
        instants.append(now)
    return instants


def _payment_ensure(now: datetime, created: dict[str, int]) -> None:
    """An offline payment settling the API Pro customer's first usage invoice (once)."""
    from invoicing.models import Invoice
    from invoicing.services import payment_record

    invoice = (
        Invoice.objects.filter(customer__external_id=PAYMENT_CUSTOMER, subscription__isnull=False)
        .exclude(billing_boundary_at=F("period_start"))
        .order_by("billing_boundary_at")
        .first()
    )
    if invoice is None or invoice.status != Invoice.Status.FINALIZED or invoice.payments.exists():
        return  # not billed yet, or already settled by an earlier run
    if invoice.amount_due <= 0:
        return
    paid_at = min(invoice.billing_boundary_at + timedelta(days=9), now)
    payment_record(invoice=invoice, amount=invoice.amount_due, reference="Wire transfer WT-2210", now=paid_at)
    created["payments"] += 1


def _settle_older_invoices(now: datetime, created: dict[str, int]) -> None:
    """Customers pay: every finalized invoice due more than 20 days ago is paid in full 5 days after it fell
    due (offline), except the late payer's, which stay overdue. Re-runs find nothing left to pay."""
    from invoicing.models import Invoice
    from invoicing.services import payment_record

    due = (
        Invoice.objects.filter(status=Invoice.Status.FINALIZED, amount_due__gt=0, due_at__lt=now - SETTLE_AFTER)
        .exclude(customer__external_id=LATE_PAYER)
        .order_by("due_at", "id")
    )
    for invoice in due:
        paid_at = min(invoice.due_at + timedelta(days=5), now)
        payment_record(
            invoice=invoice, amount=invoice.amount_due, reference=f"Bank transfer {invoice.number}", now=paid_at
        )
        created["payments"] += 1


# --------------------------------------------------------------------------- entry point


@dataclass
class DemoSummary:
    created: dict[str, int]
    events_accepted: int = 0
    events_duplicates: int = 0
    runs: int = 0


def demo_load(*, stdout, scale: float = 1.0, now: datetime | None = None, seed: int = 7) -> DemoSummary:
    """Load the demo (see the module docstring). ``stdout`` takes ``write(str)`` (a command's stdout)."""
    now = now or timezone.now().replace(microsecond=0)
    start = month_start(now, MONTHS_BACK)
    created = {"customers": 0, "wallets": 0, "grants": 0, "subscriptions": 0, "payments": 0}
    stdout.write(f"  catalog: {len(FAMILIES)} plan families")
    created.update(catalog_load(effective_from=start - timedelta(days=30), now=now))

    specs = customers_for(scale)
    stdout.write(f"  customers: {len(specs)}, subscriptions from {start:%Y-%m-%d}")
    subscribed = []
    for spec in specs:
        customer = _customer_ensure(spec, created)
        signup = month_start(now, spec.start_months_back) + timedelta(days=spec.start_day - 1)
        at = subscription_start_at(spec, signup)
        _wallet_ensure(spec, customer, at, created)
        _coupon_ensure(spec, customer, at, created)
        subscribed.append((spec, _subscription_ensure(spec, customer, at, created)))

    events = [e for spec, sub in subscribed for e in events_for(spec, sub, now=now, seed=seed)]
    events.sort(key=lambda e: e["timestamp"])
    instants = billing_instants(start, now)
    summary = DemoSummary(created=created)
    from invoicing.services import billing_run_execute

    progress = Progress(stdout, len(instants), "billing runs")
    progress(0, f"{len(events):,} usage events to send")
    sent = 0
    for done, at in enumerate(instants, start=1):
        due = [e for e in events[sent:] if e["timestamp"] < at.isoformat().replace("+00:00", "Z")]
        accepted, duplicates = events_ingest(due, now=now)
        sent += len(due)
        summary.events_accepted += accepted
        summary.events_duplicates += duplicates
        run = billing_run_execute(now=at, trigger="demo")
        summary.runs += 1
        progress(done, f"as of {at:%Y-%m-%d %H:%M}: {run.invoices_created} invoices, {len(due):,} events")
        if run.failures:
            stdout.write("    failures: " + "; ".join(run.failures))
    _payment_ensure(now, created)
    _settle_older_invoices(now, created)
    stdout.write(
        f"  created {created['customers']} customers, {created['subscriptions']} subscriptions, "
        f"{summary.events_accepted:,} events ({summary.events_duplicates:,} already stored), "
        f"{created['payments']} payments"
    )
    return summary
