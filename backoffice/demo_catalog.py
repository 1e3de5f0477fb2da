"""The demo catalog: public pricing pages of AI and SaaS products, each modeled as a plan family.

Everything here is data in the shapes the API takes (API.md: meters, features, PRICE, ENTITLEMENT, GRANT),
loaded through the same services the API calls (``metering.services.meter_create``,
``catalog.services.feature_create`` / ``plan_create`` / ``plan_version_create``,
``customers.services.tax_rate_create``). Nothing is inserted as a raw fixture.

Loading is an upsert by key: a meter, feature, tax rate or plan that already exists is left as it is (a
published version never changes, so re-running the demo never touches it). docs/pricing-cookbook.md explains
each family and the invoices the demo produces from it.

All plans bill monthly in USD. Prices that the pricing pages quote per 1,000 units are stored per unit
(``$0.30 / 1k characters`` = ``0.0003`` per character); tier bounds are inclusive (``up_to``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction

CURRENCY = "USD"


def month_start(value: datetime, months_back: int = 0) -> datetime:
    """The 1st of the month ``months_back`` months before ``value``'s month, 00:00 UTC."""
    index = value.year * 12 + (value.month - 1) - months_back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- meters

METERS: list[dict[str, Any]] = [
    # AI voice platform: characters turned into speech.
    {
        "key": "voice-characters",
        "name": "Characters (text to speech)",
        "event_name": "tts_generation",
        "aggregation": "sum",
        "field": "characters",
    },
    # Data enrichment: credits a table action costs (a row enrichment, a premium model call...).
    {
        "key": "enrichment-credits",
        "name": "Enrichment credits",
        "event_name": "enrichment",
        "aggregation": "sum",
        "field": "credits",
    },
    # Video tool: three resources, three event streams.
    {
        "key": "video-credits",
        "name": "Video AI credits",
        "event_name": "video_ai_action",
        "aggregation": "sum",
        "field": "credits",
    },
    {
        "key": "video-minutes",
        "name": "Video minutes exported",
        "event_name": "video_export",
        "aggregation": "sum",
        "field": "minutes",
    },
    {
        "key": "genai-seconds",
        "name": "Generative video seconds",
        "event_name": "genai_clip",
        "aggregation": "sum",
        "field": "seconds",
    },
    # Coding assistant: ONE event stream (generate_code), split by model; the thinking models count twice.
    {
        "key": "code-requests-thinking",
        "name": "Code requests, thinking models (x2)",
        "event_name": "generate_code",
        "aggregation": "sum_with_multiplier",
        "field": "requests",
        "multiplier": "2",
        "filters": [{"property": "model", "values": ["claude-thinking", "o3"]}],
    },
    {
        "key": "code-requests-standard",
        "name": "Code requests, standard models",
        "event_name": "generate_code",
        "aggregation": "sum_with_multiplier",
        "field": "requests",
        "multiplier": "1",
        "filters": [{"property": "model", "values": ["cursor-small", "gpt-4o-mini"]}],
    },
    # Support tool: one event per message, billed per conversation.
    {
        "key": "support-conversations",
        "name": "Support conversations",
        "event_name": "support_message",
        "aggregation": "count_unique",
        "field": "chat_id",
    },
    # Analytics: the product reports its monthly tracked users as snapshots; the last one counts.
    {
        "key": "analytics-mtus",
        "name": "Monthly tracked users",
        "event_name": "mtus",
        "aggregation": "latest",
        "field": "value",
    },
    # Hybrid API plan: one event per call.
    {"key": "api-calls", "name": "API calls", "event_name": "api_call", "aggregation": "count"},
]

# --------------------------------------------------------------------------- features

FEATURES: list[dict[str, Any]] = [
    {
        "key": "voice-characters",
        "name": "Text-to-speech characters",
        "type": "metered",
        "meter": "voice-characters",
        "unit_name": "characters",
    },
    {"key": "audio-quality", "name": "Audio quality", "type": "static", "unit_name": "kbps"},
    {"key": "voice-clones", "name": "Professional voice clones", "type": "static", "unit_name": "clones"},
    {"key": "seats", "name": "Seats", "type": "static", "unit_name": "seats"},
    {"key": "concurrency", "name": "Concurrent requests", "type": "static", "unit_name": "requests"},
    {"key": "commercial-license", "name": "Commercial license", "type": "boolean"},
    {
        "key": "enrichment-credits",
        "name": "Enrichment credits",
        "type": "metered",
        "meter": "enrichment-credits",
        "unit_name": "credits",
    },
    {
        "key": "video-credits",
        "name": "Video AI credits",
        "type": "metered",
        "meter": "video-credits",
        "unit_name": "credits",
    },
    {
        "key": "video-minutes",
        "name": "Video minutes",
        "type": "metered",
        "meter": "video-minutes",
        "unit_name": "minutes",
    },
    {
        "key": "genai-seconds",
        "name": "Generative video",
        "type": "metered",
        "meter": "genai-seconds",
        "unit_name": "seconds",
    },
    {
        "key": "thinking-requests",
        "name": "Thinking-model requests (weighted)",
        "type": "metered",
        "meter": "code-requests-thinking",
        "unit_name": "requests",
    },
    {
        "key": "support-conversations",
        "name": "Support conversations",
        "type": "metered",
        "meter": "support-conversations",
        "unit_name": "conversations",
    },
    {
        "key": "tracked-users",
        "name": "Monthly tracked users",
        "type": "metered",
        "meter": "analytics-mtus",
        "unit_name": "users",
    },
    {"key": "api-calls", "name": "API calls", "type": "metered", "meter": "api-calls", "unit_name": "calls"},
]

TAX_RATES: list[dict[str, Any]] = [
    {"code": "vat-20", "name": "VAT 20%", "percentage": "20"},
]

# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class PlanSpec:
    """One plan of a family, with its first (published) version in API.md's shapes."""

    family: str
    key: str
    name: str
    description: str
    prices: list[dict[str, Any]] = field(default_factory=list)
    entitlements: list[dict[str, Any]] = field(default_factory=list)
    credit_grants: list[dict[str, Any]] = field(default_factory=list)


def flat(amount: str, name: str = "Monthly fee") -> dict[str, Any]:
    return {"name": name, "model": "flat_fee", "amount": amount}


def included_then(meter: str, included: int, unit_amount: str, name: str) -> dict[str, Any]:
    """Graduated tiers: the first ``included`` units at 0, every unit after at ``unit_amount``."""
    return {
        "name": name,
        "model": "tiered",
        "meter": meter,
        "tier_mode": "graduated",
        "tiers": [{"up_to": included, "unit_amount": "0"}, {"up_to": None, "unit_amount": unit_amount}],
    }


def static(feature: str, value: str) -> dict[str, Any]:
    return {"feature": feature, "value": value}


# AI voice platform (ElevenLabs-style): fee, included characters, overage per 1k characters falling with the tier.
# (plan, fee, included multilingual characters, overage per 1k or None = hard limit, seats, concurrency, kbps, clones)
VOICE_TIERS = [
    ("free", "Free", "0", 10_000, None, 1, 2, "128", "0"),
    ("starter", "Starter", "5", 30_000, None, 1, 3, "128", "0"),
    ("creator", "Creator", "11", 100_000, "0.30", 1, 5, "192", "1"),
    ("pro", "Pro", "99", 500_000, "0.24", 1, 10, "192", "1"),
    ("scale", "Scale", "330", 2_000_000, "0.18", 3, 15, "192", "3"),
    ("business", "Business", "1320", 11_000_000, "0.12", 15, 15, "192", "3"),
]


def _per_unit_from_per_1k(per_1k: str) -> str:
    from decimal import Decimal

    return format(Decimal(per_1k) / 1000, "f")  # $0.30 per 1k -> 0.0003 per character


def _voice_plans() -> list[PlanSpec]:
    plans = []
    for slug, label, fee, included, per_1k, seats, concurrency, kbps, clones in VOICE_TIERS:
        prices = [flat(fee)] if fee != "0" else []
        entitlements = [
            static("audio-quality", kbps),
            static("voice-clones", clones),
            static("seats", str(seats)),
            static("concurrency", str(concurrency)),
            {"feature": "commercial-license", "enabled": fee != "0"},
        ]
        if per_1k is None:
            # Free and Starter: the included characters are a hard limit; nothing is billed past it.
            entitlements.append({"feature": "voice-characters", "limit": str(included), "soft": False})
            rule = f"{included:,} characters a month, hard limit"
        else:
            prices.append(
                included_then(
                    "voice-characters",
                    included,
                    _per_unit_from_per_1k(per_1k),
                    f"Characters ({included:,} included, then ${per_1k} per 1k)",
                )
            )
            entitlements.append({"feature": "voice-characters", "limit": str(included), "soft": True})
            rule = f"{included:,} characters included, then ${per_1k} per 1,000"
        plans.append(
            PlanSpec(
                "voice",
                f"voice-{slug}",
                f"Voice {label}",
                f"AI voice platform, {label}: ${fee}/month; {rule}.",
                prices=prices,
                entitlements=entitlements,
            )
        )
    return plans


def _enrichment_plans() -> list[PlanSpec]:
    credit_price = {
        "name": "Enrichment credits used ($0.05 per credit)",
        "model": "per_unit",
        "meter": "enrichment-credits",
        "unit_amount": "0.05",
    }
    return [
        PlanSpec(
            "enrichment",
            "enrichment-starter",
            "Enrichment Starter",
            "Data enrichment (Clay-style) Starter: $149/month with 2,000 credits a month; unused credits roll over "
            "up to 2x the monthly allocation (cap 2,000 carried). Credits pay the enrichment lines at $0.05 each.",
            prices=[flat("149"), credit_price],
            entitlements=[{"feature": "enrichment-credits", "limit": None}],
            credit_grants=[
                {
                    "name": "Monthly credits",
                    "credits": "2000",
                    "cadence": "per_period",
                    "rollover_cap": "2000",
                    "forfeit_on_end": True,
                    "priority": 10,
                }
            ],
        ),
        PlanSpec(
            "enrichment",
            "enrichment-payg",
            "Enrichment Pay as you go",
            "Data enrichment, no subscription fee: 1 credit = $0.05; a table = 50 credits, a row enrichment = 100, "
            "a premium model call = 200. Paid from prepaid credits in a $0.05-per-credit wallet.",
            prices=[credit_price],
            entitlements=[{"feature": "enrichment-credits", "limit": None}],
        ),
    ]


# Video tool (InVideo-style): each plan = several hard limits. (slug, label, fee, credits, minutes or None, genai s)
VIDEO_TIERS = [
    ("plus", "Plus", "35", 10, 50, 30),
    ("max", "Max", "60", 40, 200, 120),
    ("generative", "Generative", "120", 100, None, 300),
    ("team", "Team", "999", 1000, None, 3000),
]


def _video_plans() -> list[PlanSpec]:
    plans = []
    for slug, label, fee, credits, minutes, seconds in VIDEO_TIERS:
        entitlements = [
            {"feature": "video-credits", "limit": str(credits), "soft": False},
            {"feature": "genai-seconds", "limit": str(seconds), "soft": False},
            {"feature": "video-minutes", "limit": str(minutes), "soft": False}
            if minutes is not None
            else {"feature": "video-minutes", "enabled": False},
        ]
        minutes_text = f"{minutes} video minutes" if minutes is not None else "no stock-video minutes"
        plans.append(
            PlanSpec(
                "video",
                f"video-{slug}",
                f"Video {label}",
                f"Video tool {label}: ${fee}/month; {credits} AI credits, {minutes_text}, {seconds} s of "
                "generative video "
                "a month (hard limits).",
                prices=[flat(fee)],
                entitlements=entitlements,
            )
        )
    return plans


def _coding_plans() -> list[PlanSpec]:
    return [
        PlanSpec(
            "coding",
            "coding-pro",
            "Coding Pro",
            "Coding assistant (Cursor-style) Pro: $20/month plus $0.04 per request; every generate_code event is one "
            "request, and requests to thinking models count twice (two meters on one event stream, split by model).",
            prices=[
                flat("20"),
                {
                    "name": "Standard-model requests",
                    "model": "per_unit",
                    "meter": "code-requests-standard",
                    "unit_amount": "0.04",
                },
                {
                    "name": "Thinking-model requests (count x2)",
                    "model": "per_unit",
                    "meter": "code-requests-thinking",
                    "unit_amount": "0.04",
                },
            ],
            entitlements=[
                {"feature": "thinking-requests", "limit": "500", "soft": True},
                static("seats", "1"),
            ],
        )
    ]


def _support_plans() -> list[PlanSpec]:
    return [
        PlanSpec(
            "support",
            "support-essential",
            "Support Essential",
            "Support tool (Intercom-style): $39/month per workspace plus $0.99 per conversation; every message is an "
            "event carrying its chat_id and a conversation bills once however many messages it has.",
            prices=[
                flat("39"),
                {
                    "name": "Conversations",
                    "model": "per_unit",
                    "meter": "support-conversations",
                    "unit_amount": "0.99",
                },
            ],
            entitlements=[{"feature": "support-conversations", "limit": None}, static("seats", "3")],
        )
    ]


def _analytics_plans() -> list[PlanSpec]:
    return [
        PlanSpec(
            "analytics",
            "analytics-growth",
            "Analytics Growth",
            "Analytics (Amplitude-style): $49/month plus monthly tracked users, the last snapshot of the period, "
            "priced "
            "in volume tiers: up to 10,000 at $0.005 each, up to 50,000 at $0.004, beyond at $0.003 (all users at the "
            "rate of the tier the total falls in).",
            prices=[
                flat("49"),
                {
                    "name": "Monthly tracked users",
                    "model": "tiered",
                    "meter": "analytics-mtus",
                    "tier_mode": "volume",
                    "tiers": [
                        {"up_to": 10_000, "unit_amount": "0.005"},
                        {"up_to": 50_000, "unit_amount": "0.004"},
                        {"up_to": None, "unit_amount": "0.003"},
                    ],
                },
            ],
            entitlements=[{"feature": "tracked-users", "limit": None}],
        )
    ]


def _api_plans() -> list[PlanSpec]:
    return [
        PlanSpec(
            "api",
            "api-pro",
            "API Pro",
            "Hybrid API plan: $99/month including 5,000 API calls, then $0.01 per extra call (v1); from v2, $119/month "
            "including 6,000 calls. Customers who signed up on v1 keep it (pinned).",
            prices=[
                flat("99"),
                included_then("api-calls", 5000, "0.01", "API calls (5,000 included, then $0.01 each)"),
            ],
            entitlements=[{"feature": "api-calls", "limit": "5000", "soft": True}],
        )
    ]


@dataclass(frozen=True)
class LaterVersionSpec:
    """A plan's next version, published some days before it takes effect on the 1st of a month of the demo.

    ``months_back``: it takes effect on the 1st of the month this many months before the demo's ``now``;
    ``notice_days``: it is published that many days earlier. Subscriptions pinned to an earlier version keep it.
    """

    plan: str
    number: int
    months_back: int
    notice_days: int
    notes: str
    prices: list[dict[str, Any]] = field(default_factory=list)
    entitlements: list[dict[str, Any]] = field(default_factory=list)
    credit_grants: list[dict[str, Any]] = field(default_factory=list)
    trial_days: int = 0  # the free trial of subscriptions started on this version (0 = none)


# API Pro v2: the fee goes from $99 to $119 and the included calls from 5,000 to 6,000, from the 1st of last month;
# new customers get a 14-day free trial (subscriptions started on v1 have none).
LATER_VERSIONS: list[LaterVersionSpec] = [
    LaterVersionSpec(
        plan="api-pro",
        number=2,
        months_back=1,
        notice_days=14,
        notes=(
            "2026 prices: $119/month including 6,000 calls, a 14-day free trial for new customers. "
            "v1 customers stay on v1 (pinned)."
        ),
        prices=[
            flat("119"),
            included_then("api-calls", 6000, "0.01", "API calls (6,000 included, then $0.01 each)"),
        ],
        entitlements=[{"feature": "api-calls", "limit": "6000", "soft": True}],
        trial_days=14,
    ),
]


PLANS: list[PlanSpec] = [
    *_voice_plans(),
    *_enrichment_plans(),
    *_video_plans(),
    *_coding_plans(),
    *_support_plans(),
    *_analytics_plans(),
    *_api_plans(),
]

FAMILIES = {
    "voice": "AI voice platform (ElevenLabs-style)",
    "enrichment": "Data enrichment (Clay-style)",
    "video": "Video tool (InVideo-style)",
    "coding": "Coding assistant (Cursor-style)",
    "support": "Support tool (Intercom-style)",
    "analytics": "Analytics (Amplitude-style)",
    "api": "Hybrid API plan",
}


# --------------------------------------------------------------------------- loading


def catalog_load(
    *, effective_from: datetime, now: datetime, log: Callable[[str], None] = lambda _: None
) -> dict[str, int]:
    """Create what is missing of the demo catalog through the services; returns how many rows were created.

    Each plan gets a first published version effective from ``effective_from`` (in the past, so that the demo's
    subscriptions, which start three months ago, bill with it); the plans of :data:`LATER_VERSIONS` get their
    next version too (:func:`later_versions_load`). Existing rows are kept unchanged.
    """
    from catalog.models import Feature, Plan
    from catalog.services import feature_create, plan_create, plan_version_create
    from customers.models import TaxRate
    from customers.services import tax_rate_create
    from metering.models import Meter
    from metering.services import meter_create

    created = {"meters": 0, "features": 0, "tax_rates": 0, "plans": 0}
    existing = set(Meter.objects.values_list("key", flat=True))
    for spec in METERS:
        if spec["key"] not in existing:
            meter_create(**spec)
            created["meters"] += 1
    existing = set(Feature.objects.values_list("key", flat=True))
    for spec in FEATURES:
        if spec["key"] not in existing:
            feature_create(**spec)
            created["features"] += 1
    existing = set(TaxRate.objects.values_list("code", flat=True))
    for spec in TAX_RATES:
        if spec["code"] not in existing:
            from decimal import Decimal

            tax_rate_create(code=spec["code"], name=spec["name"], percentage=Decimal(spec["percentage"]))
            created["tax_rates"] += 1
    existing = set(Plan.objects.values_list("key", flat=True))
    for spec in PLANS:
        if spec.key in existing:
            continue
        plan = plan_create(
            key=spec.key, name=spec.name, currency=CURRENCY, interval="month", description=spec.description
        )
        plan_version_create(
            plan=plan,
            prices=spec.prices,
            entitlements=spec.entitlements,
            credit_grants=spec.credit_grants,
            publish=True,
            effective_from=effective_from,
            now=effective_from,  # published when it took effect: before any later version
        )
        created["plans"] += 1
        log(f"  plan {spec.key}")
    created["versions"] = later_versions_load(now=now)
    return created


def later_versions_load(*, now: datetime) -> int:
    """Publish each of :data:`LATER_VERSIONS` whose plan has no version of that number yet.

    ``published_at`` is ``notice_days`` before the version takes effect: history that the demo's billing runs then
    meet (periods starting before it keep the earlier version). Returns how many were published.
    """
    from catalog.models import Plan
    from catalog.services import plan_version_create_in_transaction

    published = 0
    for spec in LATER_VERSIONS:
        plan = Plan.objects.get(key=spec.plan)
        if plan.versions.filter(number__gte=spec.number).exists():
            continue
        takes_effect = month_start(now, spec.months_back)
        with transaction.atomic(durable=True):
            plan_version_create_in_transaction(
                plan=plan,
                prices=spec.prices,
                entitlements=spec.entitlements,
                credit_grants=spec.credit_grants,
                publish=True,
                effective_from=takes_effect,
                notes=spec.notes,
                trial_days=spec.trial_days,
                now=takes_effect - timedelta(days=spec.notice_days),
            )
        published += 1
    return published
