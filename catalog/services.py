"""Catalog writes: features, plans, plan versions (prices with tiers, entitlements, credit grants), publishing.

Rules (DESIGN.md "Catalog", API.md "Catalog"):

* A plan version is edited while it is a ``draft``; :func:`plan_version_publish` makes it ``published``
  (``published_at`` set) and read-only forever: every write here that would touch a published version
  or one of its prices, tiers, entitlements or grants raises :class:`~catalog.errors.VersionPublished`
  (409). A new price is a new version (:func:`plan_version_draft_from`).
* Input errors raise :class:`~catalog.errors.CatalogInvalid` (400) naming every bad field by its path,
  e.g. ``prices[1].tiers`` or ``entitlements[0].feature``; list indexes are 0-based.
* Defaults (API.md "Omitted optional fields"): tier ``flat_amount`` 0, grant ``priority`` 10,
  entitlement ``soft`` false, ``reset`` billing_period, ``limit`` null, version ``publish`` false,
  ``effective_from`` now. Timing defaults to in advance for flat fees and in arrears for usage prices.

Rules chosen where the design is silent (also listed in the project docs):

* Decimal inputs are ASCII decimal strings or JSON integers (``Decimal`` from Python callers), as every API
  decimal (``billing_project.numbers``): a JSON float is refused (a decimal with a fraction travels as a
  string), and so are ``"1e3"``, whitespace and non-ASCII digits. Amounts fit the columns exactly: at most
  16 digits before the point and 12 after, or a 400 naming the field (never rounded, never a 500).
* Whole numbers (``priority``, ``expire_after_periods``) are JSON integers.
* A field that does not apply to a price's model (e.g. ``unit_amount`` on a flat fee) must be absent
  or null; a value there is a 400 rather than a silently stored, unused number.
* ``limit``/``reset``/``soft`` apply only to metered features and ``value`` only to static ones; an
  enabled static entitlement needs a value. A feature appears at most once per version.
* Plan credit grants give more than 0 credits; ``expire_after_periods`` is at least 1.
* Omitted names default: a price to its meter's name (or "Flat fee"), a grant to "Plan credits".
* Version numbers are 1, 2, ... per plan, assigned under a lock on the plan row.

Meters belong to ``metering``; catalog sits below it in the dependency order, so it never imports
metering and reaches the Meter model through its own foreign keys (:func:`_meter_model`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import Max
from django.utils import timezone

from billing_project.money import currency_allowed
from billing_project.numbers import NumberInvalid, decimal_parse, integer_parse

from . import pricing
from .errors import CatalogInvalid, VersionPublished
from .models import Entitlement, Feature, Plan, PlanCreditGrant, PlanVersion, Price, Tier
from .quote import price_quote, price_tiers

__all__ = [
    "feature_create",
    "plan_create",
    "plan_version_assert_draft",
    "plan_version_check",
    "plan_version_create",
    "plan_version_draft_from",
    "plan_version_draft_from_in_transaction",
    "plan_version_next_number",
    "plan_version_publish",
    "plan_version_publish_in_transaction",
    "price_quote",
    "price_tiers",
    "price_validate",
]

MAX_DIGITS = 28
MAX_DECIMAL_PLACES = 12
INTEGER_COLUMN_MAX = 2**31 - 1
USAGE_MODELS = (Price.Model.PER_UNIT, Price.Model.PACKAGE, Price.Model.TIERED)
# The value fields each price model uses; the others must be absent or null.
MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    Price.Model.FLAT_FEE: ("amount",),
    Price.Model.PER_UNIT: ("unit_amount",),
    Price.Model.PACKAGE: ("package_size", "package_amount"),
    Price.Model.TIERED: ("tier_mode", "tiers"),
}
ALL_MODEL_FIELDS = ("amount", "unit_amount", "package_size", "package_amount", "tier_mode", "tiers")


def _meter_model() -> type[models.Model]:
    """``metering.Meter``, reached through ``Price.meter`` so catalog never imports a higher app."""
    return Price._meta.get_field("meter").related_model  # type: ignore[return-value]


# --------------------------------------------------------------------------- input parsing


@dataclass
class _Errors:
    """Collects ``path -> [messages]`` so one 400 names every bad field."""

    items: dict[str, list[str]] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        self.items.setdefault(path, []).append(message)

    def raise_if_any(self) -> None:
        if self.items:
            raise CatalogInvalid(self.items)


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _decimal(value: Any, path: str, errors: _Errors, *, required: bool = False, positive: bool = False) -> Decimal | None:
    """Parse a non-negative decimal (``positive``: > 0) that fits the 28/12 columns. ``None`` when absent/null
    and not required. The grammar is the API's one (``billing_project.numbers``): ASCII decimal text or a
    JSON integer; a JSON float, ``"1e3"``, ``" 5"`` or other digits are refused, never reinterpreted."""
    if value is None:
        if required:
            errors.add(path, "This field is required.")
        return None
    try:
        return decimal_parse(value, max_digits=MAX_DIGITS, decimal_places=MAX_DECIMAL_PLACES, positive=positive)
    except NumberInvalid as exc:
        errors.add(path, exc.message)
        return None


def _choice(value: Any, path: str, errors: _Errors, choices: Sequence[str], *, default: str | None = None) -> str | None:
    if value is None or value == "":
        if default is None:
            errors.add(path, "This field is required.")
        return default
    if not isinstance(value, str) or value not in choices:
        errors.add(path, f"'{value}' is not one of: {', '.join(choices)}.")
        return None
    return value


def _bool(value: Any, path: str, errors: _Errors, *, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.add(path, "Must be true or false.")
        return default
    return value


def _int(value: Any, path: str, errors: _Errors, *, default: int | None, minimum: int) -> int | None:
    """A JSON integer from ``minimum`` to what an integer column holds; ``default`` when absent/null."""
    if value is None:
        return default
    try:
        return integer_parse(value, minimum=minimum, maximum=INTEGER_COLUMN_MAX)
    except NumberInvalid as exc:
        errors.add(path, exc.message)
        return default


def _text(value: Any, path: str, errors: _Errors, *, required: bool, max_length: int, default: str = "") -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.add(path, "This field is required.")
        return default
    if not isinstance(value, str):
        errors.add(path, "A string is required.")
        return default
    if len(value) > max_length:
        errors.add(path, f"At most {max_length} characters.")
        return default
    return value.strip()


def _items(value: Any, path: str, errors: _Errors) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        errors.add(path, "A list is required.")
        return []
    result: list[Mapping[str, Any]] = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            errors.add(f"{path}[{index}]", "An object is required.")
        else:
            result.append(item)
    return result if len(result) == len(value) else []


def _key(value: Any, path: str, errors: _Errors) -> str:
    key = _text(value, path, errors, required=True, max_length=100)
    if key and not models.SlugField.default_validators[0].regex.match(key):
        errors.add(path, "Letters, digits, hyphens and underscores only.")
    return key


def _meter(key: Any, path: str, errors: _Errors) -> models.Model | None:
    if key is None or key == "":
        return None
    if not isinstance(key, str):
        errors.add(path, "A meter key is required.")
        return None
    meter = _meter_model().objects.filter(key=key).first()
    if meter is None:
        errors.add(path, f"Unknown meter '{key}'.")
    return meter


@dataclass
class PriceSpec:
    """A validated price with its tiers, ready to store."""

    name: str
    model: str
    meter: models.Model | None
    timing: str
    amount: Decimal | None = None
    unit_amount: Decimal | None = None
    package_size: Decimal | None = None
    package_amount: Decimal | None = None
    tier_mode: str = ""
    tiers: list[pricing.Tier] = field(default_factory=list)


def _tiers(value: Any, path: str, errors: _Errors) -> list[pricing.Tier]:
    rows = _items(value, path, errors)
    if path in errors.items:
        return []
    tiers: list[pricing.Tier] = []
    ok = True
    for index, row in enumerate(rows):
        here = f"{path}[{index}]"
        up_to = _decimal(row.get("up_to"), f"{here}.up_to", errors)
        unit = _decimal(row.get("unit_amount"), f"{here}.unit_amount", errors, required=True)
        flat = _decimal(row.get("flat_amount"), f"{here}.flat_amount", errors)
        if unit is None or (row.get("up_to") not in (None, "") and up_to is None) or (
            row.get("flat_amount") not in (None, "") and flat is None
        ):
            ok = False
            continue
        tiers.append(pricing.Tier(up_to=up_to, unit_amount=unit, flat_amount=flat or Decimal(0)))
    if ok:
        try:
            pricing.validate_tiers(tiers)
        except pricing.PricingError as exc:
            errors.add(path, exc.message[:1].upper() + exc.message[1:] + ".")
    return tiers


def price_validate(data: Mapping[str, Any], *, prefix: str = "", errors: _Errors | None = None) -> PriceSpec | None:
    """Validate one PRICE (API.md shape, meter given by key or as a Meter row).

    With ``errors`` given, problems are added there under ``prefix`` and ``None`` is returned for an
    invalid price; without it, :class:`CatalogInvalid` is raised. The admin's price form uses it too.
    """
    own = errors is None
    errs = errors if errors is not None else _Errors()
    before = sum(len(v) for v in errs.items.values())
    model = _choice(data.get("model"), _path(prefix, "model"), errs, Price.Model.values)
    meter_value = data.get("meter")
    meter = meter_value if isinstance(meter_value, models.Model) else _meter(meter_value, _path(prefix, "meter"), errs)
    spec = PriceSpec(name="", model=model or "", meter=meter, timing="")
    if model is not None:
        is_usage = model in USAGE_MODELS
        if is_usage and meter_value in (None, ""):
            errs.add(_path(prefix, "meter"), f"A {model} price needs a meter.")
        if not is_usage and meter_value not in (None, ""):
            errs.add(_path(prefix, "meter"), "A flat fee has no meter.")
        default_timing = Price.Timing.IN_ARREARS if is_usage else Price.Timing.IN_ADVANCE
        spec.timing = _choice(data.get("timing"), _path(prefix, "timing"), errs, Price.Timing.values, default=default_timing) or ""
        for name in ALL_MODEL_FIELDS:
            if name not in MODEL_FIELDS[model] and data.get(name) not in (None, [], ()):
                errs.add(_path(prefix, name), f"Does not apply to {model} prices.")
        if model == Price.Model.FLAT_FEE:
            spec.amount = _decimal(data.get("amount"), _path(prefix, "amount"), errs, required=True)
        elif model == Price.Model.PER_UNIT:
            spec.unit_amount = _decimal(data.get("unit_amount"), _path(prefix, "unit_amount"), errs, required=True)
        elif model == Price.Model.PACKAGE:
            spec.package_size = _decimal(data.get("package_size"), _path(prefix, "package_size"), errs, required=True, positive=True)
            spec.package_amount = _decimal(data.get("package_amount"), _path(prefix, "package_amount"), errs, required=True)
        else:
            spec.tier_mode = _choice(data.get("tier_mode"), _path(prefix, "tier_mode"), errs, Price.TierMode.values) or ""
            if data.get("tiers") in (None, [], ()):
                errs.add(_path(prefix, "tiers"), "A tiered price needs at least one tier.")
            else:
                spec.tiers = _tiers(data.get("tiers"), _path(prefix, "tiers"), errs)
    default_name = getattr(meter, "name", "") if meter is not None else "Flat fee"
    spec.name = _text(data.get("name"), _path(prefix, "name"), errs, required=False, max_length=200, default=default_name)
    if own:
        errs.raise_if_any()
    after = sum(len(v) for v in errs.items.values())
    return spec if after == before else None


def _entitlements(rows: list[Mapping[str, Any]], errors: _Errors) -> list[dict[str, Any]]:
    keys = [row.get("feature") for row in rows if isinstance(row.get("feature"), str)]
    features = {f.key: f for f in Feature.objects.filter(key__in=keys)}
    seen: set[str] = set()
    result: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        here = f"entitlements[{index}]"
        key = row.get("feature")
        feature = features.get(key) if isinstance(key, str) else None
        if key in (None, ""):
            errors.add(f"{here}.feature", "This field is required.")
        elif feature is None:
            errors.add(f"{here}.feature", f"Unknown feature '{key}'.")
        elif key in seen:
            errors.add(f"{here}.feature", f"Feature '{key}' appears twice in this version.")
        if isinstance(key, str):
            seen.add(key)
        enabled = _bool(row.get("enabled"), f"{here}.enabled", errors, default=True)
        limit = _decimal(row.get("limit"), f"{here}.limit", errors)
        reset = _choice(row.get("reset"), f"{here}.reset", errors, Entitlement.Reset.values, default=Entitlement.Reset.BILLING_PERIOD)
        soft = _bool(row.get("soft"), f"{here}.soft", errors, default=False)
        value = row.get("value")
        text = _text("" if value is None else value, f"{here}.value", errors, required=False, max_length=200)
        if feature is not None:
            if feature.type != Feature.Type.METERED:
                if limit is not None:
                    errors.add(f"{here}.limit", f"A limit applies to metered features only; '{key}' is {feature.type}.")
                if soft:
                    errors.add(f"{here}.soft", f"A soft limit applies to metered features only; '{key}' is {feature.type}.")
            if feature.type != Feature.Type.STATIC and text:
                errors.add(f"{here}.value", f"A value applies to static features only; '{key}' is {feature.type}.")
            if feature.type == Feature.Type.STATIC and enabled and not text:
                errors.add(f"{here}.value", f"Static feature '{key}' needs a value.")
        result.append(
            {"feature": feature, "enabled": enabled, "limit": limit, "reset": reset, "soft": soft, "value": text}
        )
    return result


def _grants(rows: list[Mapping[str, Any]], errors: _Errors) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        here = f"credit_grants[{index}]"
        result.append(
            {
                "name": _text(row.get("name"), f"{here}.name", errors, required=False, max_length=200, default="Plan credits"),
                "credits": _decimal(row.get("credits"), f"{here}.credits", errors, required=True, positive=True),
                "cadence": _choice(row.get("cadence"), f"{here}.cadence", errors, PlanCreditGrant.Cadence.values,
                                   default=PlanCreditGrant.Cadence.PER_PERIOD),
                "rollover_cap": _decimal(row.get("rollover_cap"), f"{here}.rollover_cap", errors),
                "expire_after_periods": _int(row.get("expire_after_periods"), f"{here}.expire_after_periods", errors,
                                             default=None, minimum=1),
                "forfeit_on_end": _bool(row.get("forfeit_on_end"), f"{here}.forfeit_on_end", errors, default=True),
                "priority": _int(row.get("priority"), f"{here}.priority", errors, default=10, minimum=0),
            }
        )
    return result


def _datetime(value: Any, path: str, errors: _Errors, *, default: datetime) -> datetime:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        from django.utils.dateparse import parse_datetime

        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            errors.add(path, "An ISO 8601 date-time is required, e.g. 2026-01-15T00:00:00Z.")
            return default
        value = parsed
    if not isinstance(value, datetime):
        errors.add(path, "An ISO 8601 date-time is required.")
        return default
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


# --------------------------------------------------------------------------- features and plans


@transaction.atomic(durable=True)
def feature_create(
    *, key: str, name: str, type: str, meter: str | None = None, unit_name: str = "", description: str = ""
) -> Feature:
    """Create a feature. ``meter`` is a meter key, required for metered features and refused otherwise."""
    errors = _Errors()
    key = _key(key, "key", errors)
    name = _text(name, "name", errors, required=True, max_length=200)
    kind = _choice(type, "type", errors, Feature.Type.values)
    meter_row = _meter(meter, "meter", errors)
    if kind == Feature.Type.METERED and meter in (None, ""):
        errors.add("meter", "A metered feature needs a meter.")
    if kind in (Feature.Type.BOOLEAN, Feature.Type.STATIC) and meter not in (None, ""):
        errors.add("meter", f"Only metered features have a meter; this one is {kind}.")
    unit_name = _text(unit_name, "unit_name", errors, required=False, max_length=50)
    description = _text(description, "description", errors, required=False, max_length=10_000)
    errors.raise_if_any()
    try:
        with transaction.atomic():
            return Feature.objects.create(
                key=key, name=name, type=kind, meter=meter_row, unit_name=unit_name, description=description
            )
    except IntegrityError:
        raise CatalogInvalid({"key": [f"A feature with key '{key}' already exists."]}) from None


@transaction.atomic(durable=True)
def plan_create(*, key: str, name: str, currency: str, interval: str | None = None, description: str = "") -> Plan:
    """Create a plan (no versions yet). ``currency`` must be one of ``settings.CURRENCIES``."""
    errors = _Errors()
    key = _key(key, "key", errors)
    name = _text(name, "name", errors, required=True, max_length=200)
    if not isinstance(currency, str) or not currency:
        errors.add("currency", "This field is required.")
    elif not currency_allowed(currency):
        errors.add("currency", f"'{currency}' is not an accepted currency.")
    interval = _choice(interval, "interval", errors, Plan.Interval.values, default=Plan.Interval.MONTH)
    description = _text(description, "description", errors, required=False, max_length=10_000)
    errors.raise_if_any()
    try:
        with transaction.atomic():
            return Plan.objects.create(key=key, name=name, currency=currency, interval=interval, description=description)
    except IntegrityError:
        raise CatalogInvalid({"key": [f"A plan with key '{key}' already exists."]}) from None


# --------------------------------------------------------------------------- plan versions


def plan_version_assert_draft(version: PlanVersion) -> None:
    """Raise :class:`VersionPublished` (409) unless ``version`` is still a draft (as stored)."""
    status = PlanVersion.objects.filter(pk=version.pk).values_list("status", flat=True).first() if version.pk else version.status
    if status == PlanVersion.Status.PUBLISHED or version.is_published:
        raise VersionPublished(
            f"{version.plan.key} v{version.number} is published and can never change; create a new draft from it instead."
        )


def plan_version_next_number(*, plan: Plan) -> int:
    """The next version number of ``plan``, with the plan row locked. Call inside a transaction."""
    Plan.objects.select_for_update().filter(pk=plan.pk).first()
    top = PlanVersion.objects.filter(plan=plan).aggregate(top=Max("number"))["top"]
    return (top or 0) + 1


def _store_children(
    version: PlanVersion, prices: list[PriceSpec], entitlements: list[dict[str, Any]], grants: list[dict[str, Any]]
) -> None:
    for position, spec in enumerate(prices):
        price = Price.objects.create(
            plan_version=version, name=spec.name, model=spec.model, meter=spec.meter, timing=spec.timing,
            amount=spec.amount, unit_amount=spec.unit_amount, package_size=spec.package_size,
            package_amount=spec.package_amount, tier_mode=spec.tier_mode, position=position,
        )
        Tier.objects.bulk_create(
            [
                Tier(price=price, position=index, up_to=t.up_to, unit_amount=t.unit_amount, flat_amount=t.flat_amount)
                for index, t in enumerate(spec.tiers)
            ]
        )
    for row in entitlements:
        Entitlement.objects.create(plan_version=version, **row)
    for row in grants:
        PlanCreditGrant.objects.create(plan_version=version, **row)


@transaction.atomic(durable=True)
def plan_version_create(
    *,
    plan: Plan,
    prices: Sequence[Mapping[str, Any]] | None = None,
    entitlements: Sequence[Mapping[str, Any]] | None = None,
    credit_grants: Sequence[Mapping[str, Any]] | None = None,
    publish: bool = False,
    effective_from: datetime | str | None = None,
    now: datetime | None = None,
) -> PlanVersion:
    """Create the plan's next version with its prices (and tiers), entitlements and credit grants, at once.

    Inputs are API.md's PRICE / ENTITLEMENT / GRANT shapes (meters and features by key). With ``publish``
    the version is published in the same transaction (``published_at = now``). ``effective_from``
    defaults to ``now`` and may be in the past.
    """
    now = now or timezone.now()
    errors = _Errors()
    if not isinstance(publish, bool):
        errors.add("publish", "Must be true or false.")
    start = _datetime(effective_from, "effective_from", errors, default=now)
    price_specs = [
        price_validate(row, prefix=f"prices[{index}]", errors=errors)
        for index, row in enumerate(_items(prices, "prices", errors))
    ]
    entitlement_rows = _entitlements(_items(entitlements, "entitlements", errors), errors)
    grant_rows = _grants(_items(credit_grants, "credit_grants", errors), errors)
    errors.raise_if_any()
    version = PlanVersion.objects.create(
        plan=plan,
        number=plan_version_next_number(plan=plan),
        status=PlanVersion.Status.PUBLISHED if publish else PlanVersion.Status.DRAFT,
        effective_from=start,
        published_at=now if publish else None,
    )
    _store_children(version, [s for s in price_specs if s is not None], entitlement_rows, grant_rows)
    return version


def price_as_input(price: Price) -> dict[str, Any]:
    """A stored price as a PRICE input (meter as its row, tiers in order) for re-validation."""
    data: dict[str, Any] = {
        "name": price.name, "model": price.model, "meter": price.meter, "timing": price.timing,
        "amount": price.amount, "unit_amount": price.unit_amount, "package_size": price.package_size,
        "package_amount": price.package_amount, "tier_mode": price.tier_mode or None,
    }
    tiers = sorted(price.tiers.all(), key=lambda t: (t.position, t.id))
    data["tiers"] = [{"up_to": t.up_to, "unit_amount": t.unit_amount, "flat_amount": t.flat_amount} for t in tiers]
    return data


def plan_version_check(*, version: PlanVersion) -> None:
    """Raise :class:`CatalogInvalid` unless every price of the version is complete and valid.

    Drafts edited row by row in the admin may be incomplete (a tiered price before its tiers are
    entered); a version is checked as a whole before it is published.
    """
    errors = _Errors()
    prices = Price.objects.filter(plan_version=version).select_related("meter").prefetch_related("tiers")
    for index, price in enumerate(prices):
        price_validate(price_as_input(price), prefix=f"prices[{index}]", errors=errors)
    errors.raise_if_any()


@transaction.atomic(savepoint=False)
def plan_version_publish_in_transaction(*, version: PlanVersion, now: datetime | None = None) -> PlanVersion:
    """Publish a draft (lock, re-check, transition). Call inside a transaction (the admin's is one).

    Publishing a published version is a :class:`VersionPublished` conflict (409); a draft with an
    incomplete price (e.g. a tiered price without valid tiers) is a :class:`CatalogInvalid` (400).
    """
    locked = PlanVersion.objects.select_for_update().select_related("plan").get(pk=version.pk)
    if locked.is_published:
        raise VersionPublished(f"{locked.plan.key} v{locked.number} is already published.")
    plan_version_check(version=locked)
    locked.status = PlanVersion.Status.PUBLISHED
    locked.published_at = now or timezone.now()
    locked.save(update_fields=["status", "published_at"])
    return locked


@transaction.atomic(durable=True)
def plan_version_publish(*, version: PlanVersion, now: datetime | None = None) -> PlanVersion:
    """Publish a draft version: it becomes effective from its ``effective_from`` and read-only forever."""
    return plan_version_publish_in_transaction(version=version, now=now)


@transaction.atomic(savepoint=False)
def plan_version_draft_from_in_transaction(
    *, version: PlanVersion, effective_from: datetime | None = None, now: datetime | None = None
) -> PlanVersion:
    """A new draft (the plan's next number) copying ``version``'s prices, tiers, entitlements and grants.

    ``effective_from`` defaults to ``now``. Call inside a transaction.
    """
    now = now or timezone.now()
    source = (
        PlanVersion.objects.select_related("plan")
        .prefetch_related("prices__tiers", "entitlements", "credit_grants")
        .get(pk=version.pk)
    )
    draft = PlanVersion.objects.create(
        plan=source.plan,
        number=plan_version_next_number(plan=source.plan),
        status=PlanVersion.Status.DRAFT,
        effective_from=effective_from or now,
        notes=f"Copied from v{source.number}.",
    )
    for price in source.prices.all():
        tiers = list(price.tiers.all())
        price.pk = None
        price.id = None
        price.plan_version = draft
        price._state.adding = True
        price.save()
        Tier.objects.bulk_create(
            [
                Tier(price=price, position=t.position, up_to=t.up_to, unit_amount=t.unit_amount, flat_amount=t.flat_amount)
                for t in tiers
            ]
        )
    Entitlement.objects.bulk_create(
        [
            Entitlement(plan_version=draft, feature_id=e.feature_id, enabled=e.enabled, limit=e.limit, reset=e.reset,
                        soft=e.soft, value=e.value)
            for e in source.entitlements.all()
        ]
    )
    PlanCreditGrant.objects.bulk_create(
        [
            PlanCreditGrant(plan_version=draft, name=g.name, credits=g.credits, cadence=g.cadence,
                            rollover_cap=g.rollover_cap, expire_after_periods=g.expire_after_periods,
                            forfeit_on_end=g.forfeit_on_end, priority=g.priority)
            for g in source.credit_grants.all()
        ]
    )
    return draft


@transaction.atomic(durable=True)
def plan_version_draft_from(
    *, version: PlanVersion, effective_from: datetime | None = None, now: datetime | None = None
) -> PlanVersion:
    """Start a new draft from any version (published or not): the way to change a published price."""
    return plan_version_draft_from_in_transaction(version=version, effective_from=effective_from, now=now)


@transaction.atomic(durable=True)
def plan_version_update(
    *,
    version: PlanVersion,
    prices: Sequence[Mapping[str, Any]] | None = None,
    entitlements: Sequence[Mapping[str, Any]] | None = None,
    credit_grants: Sequence[Mapping[str, Any]] | None = None,
    effective_from: datetime | str | None = None,
) -> PlanVersion:
    """Edit a draft: each list given replaces that list; ``effective_from`` moves its start.

    A published version raises :class:`VersionPublished` (409), before any input is looked at.
    """
    locked = PlanVersion.objects.select_for_update().select_related("plan").get(pk=version.pk)
    plan_version_assert_draft(locked)
    errors = _Errors()
    start = _datetime(effective_from, "effective_from", errors, default=locked.effective_from)
    price_specs = (
        None if prices is None else [
            price_validate(row, prefix=f"prices[{index}]", errors=errors)
            for index, row in enumerate(_items(prices, "prices", errors))
        ]
    )
    entitlement_rows = None if entitlements is None else _entitlements(_items(entitlements, "entitlements", errors), errors)
    grant_rows = None if credit_grants is None else _grants(_items(credit_grants, "credit_grants", errors), errors)
    errors.raise_if_any()
    if start != locked.effective_from:
        locked.effective_from = start
        locked.save(update_fields=["effective_from"])
    if price_specs is not None:
        for price in locked.prices.all():
            price.tiers.all().delete()
            price.delete()
    if entitlement_rows is not None:
        for row in locked.entitlements.all():
            row.delete()
    if grant_rows is not None:
        for row in locked.credit_grants.all():
            row.delete()
    _store_children(
        locked,
        [s for s in (price_specs or []) if s is not None],
        entitlement_rows or [],
        grant_rows or [],
    )
    return locked


__all__ += ["plan_version_update"]
