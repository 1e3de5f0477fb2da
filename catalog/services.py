"""Catalog writes: features, plans, plan versions (prices with tiers, entitlements, credit grants), publishing.

The API and the admin write through these functions, and check input with the same rules (the admin's forms
call the ``*_validate`` functions so each error shows next to its field). Entry points the API calls are
durable transactions; the ``*_in_transaction`` variants and the row editors below run inside the caller's
transaction (the admin's change form is one: CONVENTIONS.md section 4).

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
  decimal (``core.numbers``): a JSON float is refused (a decimal with a fraction travels as a
  string), and so are ``"1e3"``, whitespace and non-ASCII digits. Amounts fit the columns exactly: at most
  16 digits before the point and 12 after, or a 400 naming the field (never rounded, never a 500).
* Whole numbers (``priority``, ``expire_after_periods``) are JSON integers.
* What each price model keeps, checks and charges is its row in :mod:`catalog.price_models`; a field
  that does not apply to a price's model (e.g. ``unit_amount`` on a flat fee) must be absent or null;
  a value there is a 400 rather than a silently stored, unused number.
* ``limit``/``reset``/``soft`` apply only to metered features and ``value`` only to static ones; an
  enabled static entitlement needs a value. A feature appears at most once per version.
* Plan credit grants give more than 0 credits; ``expire_after_periods`` is 1 to ``EXPIRE_AFTER_PERIODS_MAX``
  (a hundred years of monthly periods: the expiry is computed period by period from the grant's period, and a
  larger count ran past the calendar's end, a 500 when the subscription started).
* Publishing checks the whole version by these same rules (prices, entitlements and credit grants), so a
  row stored some other way (an older admin form, a data fix) is named in a 400 instead of becoming a
  published row that can never be corrected.
* Omitted names default: a price to its meter's name (or "Flat fee"), a grant to "Plan credits".
* Version numbers are 1, 2, ... per plan, assigned under a lock on the plan row.
* A version holds at most ``MAX_PRICES`` prices, ``MAX_ENTITLEMENTS`` entitlements and ``MAX_CREDIT_GRANTS``
  credit grants, and a price at most ``MAX_TIERS`` tiers (a longer list is a 400 naming it): a price sheet
  is read by people, and every page and billing run that reads a version stays bounded.
* A price whose model takes no tiers keeps none: changing a tiered price to another model removes its tiers.

Meters belong to ``metering``; catalog sits below it in the dependency order, so it never imports
metering and reaches the Meter model through its own foreign keys (:func:`_meter_model`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import Max
from django.utils import timezone

from core.money import currency_allowed

from . import pricing
from .commitments import version_terms_validate
from .errors import CatalogInvalid, VersionPublished
from .models import Entitlement, Feature, Plan, PlanCreditGrant, PlanVersion, Price, Tier
from .price_models import MAX_TIERS, PRICE_COLUMNS, PRICE_FIELDS, PRICE_MODELS, price_model, tiers_parse
from .quote import price_quote, price_tiers
from .validation import (
    FieldErrors,
    bool_parse,
    choice_parse,
    datetime_parse,
    decimal_parse,
    int_parse,
    items_parse,
    key_parse,
    path_join,
    text_parse,
)

__all__ = [
    "MAX_TIERS",
    "RowEdit",
    "VersionRows",
    "feature_create",
    "feature_create_in_transaction",
    "feature_update",
    "feature_validate",
    "plan_create",
    "plan_create_in_transaction",
    "plan_update",
    "plan_validate",
    "plan_version_assert_draft",
    "plan_version_check",
    "plan_version_children_validate",
    "plan_version_create",
    "plan_version_create_in_transaction",
    "plan_version_draft_from",
    "plan_version_draft_from_in_transaction",
    "plan_version_next_number",
    "plan_version_publish",
    "plan_version_publish_in_transaction",
    "plan_version_rows_save_in_transaction",
    "plan_version_update",
    "plan_version_update_in_transaction",
    "price_as_input",
    "price_quote",
    "price_tiers",
    "price_tiers_save_in_transaction",
    "price_tiers_validate",
    "price_validate",
]

MAX_PRICES = 200
MAX_ENTITLEMENTS = 200
MAX_CREDIT_GRANTS = 50
#: ``plan_version_update``'s default for the version's own fields: keep what is stored.
UNCHANGED: Any = object()


def _meter_model() -> type[models.Model]:
    """``metering.Meter``, reached through ``Price.meter`` so catalog never imports a higher app."""
    return Price._meta.get_field("meter").related_model  # type: ignore[return-value]


def _create_unique(model: type[models.Model], values: Mapping[str, Any], what: str) -> Any:
    """Insert a keyed row; a duplicate key (the database's unique constraint decides) is a 400 naming ``key``."""
    try:
        with transaction.atomic():
            return model.objects.create(**values)
    except IntegrityError:
        raise CatalogInvalid({"key": [f"A {what} with key '{values['key']}' already exists."]}) from None


def _save_unique(row: models.Model, what: str, fields: Sequence[str]) -> None:
    try:
        with transaction.atomic():
            row.save(update_fields=list(fields))
    except IntegrityError:
        raise CatalogInvalid({"key": [f"A {what} with key '{row.key}' already exists."]}) from None  # type: ignore[attr-defined]


def _only(data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise CatalogInvalid({name: ["This field cannot be changed."] for name in unknown})


# --------------------------------------------------------------------------- input parsing


def _meter(key: Any, path: str, errors: FieldErrors) -> models.Model | None:
    """A meter given by key (API) or as its row (admin forms)."""
    if key is None or key == "":
        return None
    if isinstance(key, _meter_model()):
        return key
    if not isinstance(key, str):
        errors.add(path, "A meter key is required.")
        return None
    meter = _meter_model().objects.filter(key=key).first()
    if meter is None:
        errors.add(path, f"Unknown meter '{key}'.")
    return meter


@dataclass
class PriceSpec:
    """A validated price, ready to store. ``terms`` holds its model's values (catalog.price_models); their
    ``tiers`` is ``None`` when not given (a draft edited in the admin: stored tiers are kept)."""

    name: str
    model: str
    meter: models.Model | None
    timing: str
    terms: dict[str, Any] = field(default_factory=dict)


def price_validate(
    data: Mapping[str, Any], *, prefix: str = "", errors: FieldErrors | None = None, partial: bool = False
) -> PriceSpec | None:
    """Validate one PRICE (API.md shape, meter given by key or as a Meter row).

    With ``errors`` given, problems are added there under ``prefix`` and ``None`` is returned for an
    invalid price; without it, :class:`CatalogInvalid` is raised. ``partial``: a draft's price edited on
    its own in the admin, whose tiers (entered on the price's page) may be missing; publishing checks them.
    """
    own = errors is None
    errs = errors if errors is not None else FieldErrors()
    before = sum(len(v) for v in errs.items.values())
    model = choice_parse(data.get("model"), path_join(prefix, "model"), errs, list(PRICE_MODELS))
    meter_value = data.get("meter")
    meter = (
        meter_value if isinstance(meter_value, models.Model) else _meter(meter_value, path_join(prefix, "meter"), errs)
    )
    spec = PriceSpec(name="", model=model or "", meter=meter, timing="")
    if model is not None:
        row = PRICE_MODELS[model]
        if row.usage and meter_value in (None, ""):
            errs.add(path_join(prefix, "meter"), f"A {model} price needs a meter.")
        if not row.usage and meter_value not in (None, ""):
            errs.add(path_join(prefix, "meter"), f"A {model.replace('_', ' ')} has no meter.")
        default_timing = Price.Timing.IN_ARREARS if row.usage else Price.Timing.IN_ADVANCE
        spec.timing = (
            choice_parse(
                data.get("timing"), path_join(prefix, "timing"), errs, Price.Timing.values, default=default_timing
            )
            or ""
        )
        for name in PRICE_FIELDS:
            if name not in row.fields and data.get(name) not in (None, "", [], ()):
                errs.add(path_join(prefix, name), f"Does not apply to {model} prices.")
        spec.terms = row.parse(data, prefix, errs, partial)
    default_name = getattr(meter, "name", "") if meter is not None else "Flat fee"
    spec.name = text_parse(
        data.get("name"), path_join(prefix, "name"), errs, required=False, max_length=200, default=default_name
    )
    if own:
        errs.raise_if_any()
    after = sum(len(v) for v in errs.items.values())
    return spec if after == before else None


def _entitlements(rows: list[Mapping[str, Any]], errors: FieldErrors) -> list[dict[str, Any]]:
    keys = [row.get("feature") for row in rows if isinstance(row.get("feature"), str)]
    features = {f.key: f for f in Feature.objects.filter(key__in=keys)}
    # the admin's forms give the feature as its row
    features.update({row["feature"].key: row["feature"] for row in rows if isinstance(row.get("feature"), Feature)})
    seen: set[str] = set()
    result: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        here = f"entitlements[{index}]"
        key = row.get("feature")
        key = key.key if isinstance(key, Feature) else key
        feature = features.get(key) if isinstance(key, str) else None
        if key in (None, ""):
            errors.add(f"{here}.feature", "This field is required.")
        elif feature is None:
            errors.add(f"{here}.feature", f"Unknown feature '{key}'.")
        elif key in seen:
            errors.add(f"{here}.feature", f"Feature '{key}' appears twice in this version.")
        if isinstance(key, str):
            seen.add(key)
        enabled = bool_parse(row.get("enabled"), f"{here}.enabled", errors, default=True)
        limit = decimal_parse(row.get("limit"), f"{here}.limit", errors)
        reset = choice_parse(
            row.get("reset"),
            f"{here}.reset",
            errors,
            Entitlement.Reset.values,
            default=Entitlement.Reset.BILLING_PERIOD,
        )
        soft = bool_parse(row.get("soft"), f"{here}.soft", errors, default=False)
        value = row.get("value")
        text = text_parse("" if value is None else value, f"{here}.value", errors, required=False, max_length=200)
        if feature is not None:
            if feature.type != Feature.Type.METERED:
                if limit is not None:
                    errors.add(f"{here}.limit", f"A limit applies to metered features only; '{key}' is {feature.type}.")
                if soft:
                    errors.add(
                        f"{here}.soft", f"A soft limit applies to metered features only; '{key}' is {feature.type}."
                    )
            if feature.type != Feature.Type.STATIC and text:
                errors.add(f"{here}.value", f"A value applies to static features only; '{key}' is {feature.type}.")
            if feature.type == Feature.Type.STATIC and enabled and not text:
                errors.add(f"{here}.value", f"Static feature '{key}' needs a value.")
        result.append(
            {"feature": feature, "enabled": enabled, "limit": limit, "reset": reset, "soft": soft, "value": text}
        )
    return result


EXPIRE_AFTER_PERIODS_MAX = 1200


def _expire_after_periods_check(value: int | None, path: str, errors: FieldErrors) -> int | None:
    if value is not None and value > EXPIRE_AFTER_PERIODS_MAX:
        errors.add(path, f"Must be at most {EXPIRE_AFTER_PERIODS_MAX}.")
        return None
    return value


def _grants(rows: list[Mapping[str, Any]], errors: FieldErrors) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        here = f"credit_grants[{index}]"
        result.append(
            {
                "name": text_parse(
                    row.get("name"), f"{here}.name", errors, required=False, max_length=200, default="Plan credits"
                ),
                "credits": decimal_parse(row.get("credits"), f"{here}.credits", errors, required=True, positive=True),
                "cadence": choice_parse(
                    row.get("cadence"),
                    f"{here}.cadence",
                    errors,
                    PlanCreditGrant.Cadence.values,
                    default=PlanCreditGrant.Cadence.PER_PERIOD,
                ),
                "rollover_cap": decimal_parse(row.get("rollover_cap"), f"{here}.rollover_cap", errors),
                "expire_after_periods": _expire_after_periods_check(
                    int_parse(
                        row.get("expire_after_periods"), f"{here}.expire_after_periods", errors, default=None, minimum=1
                    ),
                    f"{here}.expire_after_periods",
                    errors,
                ),
                "forfeit_on_end": bool_parse(row.get("forfeit_on_end"), f"{here}.forfeit_on_end", errors, default=True),
                "priority": int_parse(row.get("priority"), f"{here}.priority", errors, default=10, minimum=0),
            }
        )
    return result


def _grant_as_input(row: PlanCreditGrant) -> dict[str, Any]:
    return {
        "name": row.name,
        "credits": row.credits,
        "cadence": row.cadence,
        "rollover_cap": row.rollover_cap,
        "expire_after_periods": row.expire_after_periods,
        "forfeit_on_end": row.forfeit_on_end,
        "priority": row.priority,
    }


def _entitlement_as_input(row: Entitlement) -> dict[str, Any]:
    return {
        "feature": row.feature,
        "enabled": row.enabled,
        "limit": row.limit,
        "reset": row.reset,
        "soft": row.soft,
        "value": row.value,
    }


@dataclass
class VersionRows:
    """A version's lists, checked: ``None`` for a list not given. An invalid price is ``None`` in ``prices``."""

    prices: list[PriceSpec | None] | None = None
    entitlements: list[dict[str, Any]] | None = None
    credit_grants: list[dict[str, Any]] | None = None


def plan_version_children_validate(
    *,
    prices: Any = None,
    entitlements: Any = None,
    credit_grants: Any = None,
    partial: bool = False,
    errors: FieldErrors | None = None,
) -> VersionRows:
    """Check a version's prices, entitlements and credit grants by the one set of rules that the API, the admin
    and publishing share. Lists not given (``None``) are not checked.

    Items are API.md's PRICE / ENTITLEMENT / GRANT shapes (meters and features by key or as rows). Errors name
    each field by its path in the lists (``entitlements[2].limit``). With ``errors`` given they are added there;
    otherwise :class:`CatalogInvalid` is raised. ``partial``: a draft edited row by row in the admin, where a
    price's tiers are entered on the price's own page and may still be missing.
    """
    own = errors is None
    errs = errors if errors is not None else FieldErrors()
    rows = VersionRows()
    if prices is not None:
        rows.prices = [
            price_validate(row, prefix=f"prices[{index}]", errors=errs, partial=partial)
            for index, row in enumerate(items_parse(prices, "prices", errs, limit=MAX_PRICES))
        ]
    if entitlements is not None:
        rows.entitlements = _entitlements(items_parse(entitlements, "entitlements", errs, limit=MAX_ENTITLEMENTS), errs)
    if credit_grants is not None:
        rows.credit_grants = _grants(items_parse(credit_grants, "credit_grants", errs, limit=MAX_CREDIT_GRANTS), errs)
    if own:
        errs.raise_if_any()
    return rows


# --------------------------------------------------------------------------- features and plans

FEATURE_FIELDS = ("key", "name", "type", "meter", "unit_name", "description")
PLAN_FIELDS = ("key", "name", "currency", "interval", "description")


def feature_validate(data: Mapping[str, Any], *, errors: FieldErrors | None = None) -> dict[str, Any]:
    """Check a whole feature (``key``, ``name``, ``type``, ``meter`` as a key or a row, ``unit_name``,
    ``description``) and return its values ready to store. A metered feature needs a meter; the others have none.

    With ``errors`` given, problems are added there; otherwise :class:`CatalogInvalid` is raised.
    """
    own = errors is None
    errs = errors if errors is not None else FieldErrors()
    meter = data.get("meter")
    values = {
        "key": key_parse(data.get("key"), "key", errs),
        "name": text_parse(data.get("name"), "name", errs, required=True, max_length=200),
        "type": choice_parse(data.get("type"), "type", errs, Feature.Type.values),
        "meter": _meter(meter, "meter", errs),
        "unit_name": text_parse(data.get("unit_name"), "unit_name", errs, required=False, max_length=50),
        "description": text_parse(data.get("description"), "description", errs, required=False, max_length=10_000),
    }
    kind = values["type"]
    if kind == Feature.Type.METERED and meter in (None, ""):
        errs.add("meter", "A metered feature needs a meter.")
    if kind in (Feature.Type.BOOLEAN, Feature.Type.STATIC) and meter not in (None, ""):
        errs.add("meter", f"Only metered features have a meter; this one is {kind}.")
    if own:
        errs.raise_if_any()
    return values


@transaction.atomic(savepoint=False)
def feature_create_in_transaction(
    *, key: str, name: str, type: str, meter: Any = None, unit_name: str = "", description: str = ""
) -> Feature:
    """:func:`feature_create` inside the caller's transaction (the admin's)."""
    values = feature_validate(
        {"key": key, "name": name, "type": type, "meter": meter, "unit_name": unit_name, "description": description}
    )
    return _create_unique(Feature, values, "feature")


@transaction.atomic(durable=True)
def feature_create(
    *, key: str, name: str, type: str, meter: str | None = None, unit_name: str = "", description: str = ""
) -> Feature:
    """Create a feature. ``meter`` is a meter key, required for metered features and refused otherwise."""
    return feature_create_in_transaction(
        key=key, name=name, type=type, meter=meter, unit_name=unit_name, description=description
    )


@transaction.atomic(savepoint=False)
def feature_update(*, feature: Feature, data: Mapping[str, Any]) -> Feature:
    """Change the fields of ``feature`` present in ``data`` (PATCH); the result obeys :func:`feature_validate`.

    Call inside a transaction (the admin's change form is one). Returns the stored row.
    """
    _only(data, FEATURE_FIELDS)
    locked = Feature.objects.select_for_update(of=("self",)).select_related("meter").get(pk=feature.pk)
    stored = {
        "key": locked.key,
        "name": locked.name,
        "type": locked.type,
        "meter": locked.meter,
        "unit_name": locked.unit_name,
        "description": locked.description,
    }
    errors = FieldErrors()
    feature_fixed_fields_check(feature=locked, data=data, errors=errors)
    errors.raise_if_any()
    values = feature_validate({**stored, **data})
    for name, value in values.items():
        setattr(locked, name, value)
    _save_unique(locked, "feature", FEATURE_FIELDS)
    return locked


def plan_validate(data: Mapping[str, Any], *, errors: FieldErrors | None = None) -> dict[str, Any]:
    """Check a whole plan (``key``, ``name``, ``currency`` one of ``settings.CURRENCIES``, ``interval``,
    ``description``) and return its values ready to store; :class:`CatalogInvalid` unless ``errors`` is given."""
    own = errors is None
    errs = errors if errors is not None else FieldErrors()
    currency = data.get("currency")
    if not isinstance(currency, str) or not currency:
        errs.add("currency", "This field is required.")
    elif not currency_allowed(currency):
        errs.add("currency", f"'{currency}' is not one of this installation's currencies.")
    values = {
        "key": key_parse(data.get("key"), "key", errs),
        "name": text_parse(data.get("name"), "name", errs, required=True, max_length=200),
        "currency": currency,
        "interval": choice_parse(
            data.get("interval"), "interval", errs, Plan.Interval.values, default=Plan.Interval.MONTH
        ),
        "description": text_parse(data.get("description"), "description", errs, required=False, max_length=10_000),
    }
    if own:
        errs.raise_if_any()
    return values


@transaction.atomic(savepoint=False)
def plan_create_in_transaction(
    *, key: str, name: str, currency: str, interval: str | None = None, description: str = ""
) -> Plan:
    """:func:`plan_create` inside the caller's transaction (the admin's)."""
    values = plan_validate(
        {"key": key, "name": name, "currency": currency, "interval": interval, "description": description}
    )
    return _create_unique(Plan, values, "plan")


@transaction.atomic(durable=True)
def plan_create(*, key: str, name: str, currency: str, interval: str | None = None, description: str = "") -> Plan:
    """Create a plan (no versions yet). ``currency`` must be one of ``settings.CURRENCIES``."""
    return plan_create_in_transaction(key=key, name=name, currency=currency, interval=interval, description=description)


# What subscriptions and invoices already depend on (rule chosen, docs/billing-rules.md "Catalog edits"): a plan's
# currency and interval once one of its versions is published (subscriptions bill in that currency, at that
# period length, and their invoices show it); a feature's type and meter once a published version entitles it
# (entitlement checks and usage windows read through them). Renaming and describing stay free.
PLAN_FIXED_ONCE_PUBLISHED = ("currency", "interval")
FEATURE_FIXED_ONCE_PUBLISHED = ("type", "meter")


def _published_numbers(versions) -> str:
    published = versions.filter(status=PlanVersion.Status.PUBLISHED).order_by("number")
    numbers = list(published.values_list("number", flat=True))
    return ", ".join(f"v{n}" for n in numbers[:5]) + (" and more" if len(numbers) > 5 else "")


def plan_fixed_fields_check(*, plan: Plan, data: Mapping[str, Any], errors: FieldErrors) -> None:
    """Add an error per field of :data:`PLAN_FIXED_ONCE_PUBLISHED` that ``data`` changes while ``plan`` has a
    published version."""
    changed = [name for name in PLAN_FIXED_ONCE_PUBLISHED if name in data and data[name] != getattr(plan, name)]
    if not changed or plan.pk is None:
        return
    published = _published_numbers(PlanVersion.objects.filter(plan_id=plan.pk))
    for name in changed if published else []:
        errors.add(
            name,
            f"The {name} of plan '{plan.key}' cannot change: it has published versions ({published}) that "
            f"subscriptions bill with. Create a new plan with the new {name} and move subscriptions to it.",
        )


def feature_fixed_fields_check(*, feature: Feature, data: Mapping[str, Any], errors: FieldErrors) -> None:
    """Add an error per field of :data:`FEATURE_FIXED_ONCE_PUBLISHED` that ``data`` changes while a published
    version entitles ``feature``."""
    current = {"type": feature.type, "meter": feature.meter_id}
    given = {name: getattr(data[name], "pk", data[name]) for name in FEATURE_FIXED_ONCE_PUBLISHED if name in data}
    changed = [name for name, value in given.items() if value != current[name]]
    if not changed or feature.pk is None:
        return
    published = PlanVersion.objects.filter(entitlements__feature_id=feature.pk, status=PlanVersion.Status.PUBLISHED)
    plans = sorted(set(published.values_list("plan__key", flat=True)))
    if not plans:
        return
    for name in changed:
        errors.add(
            name,
            f"The {name} of feature '{feature.key}' cannot change: published versions of {', '.join(plans[:5])} "
            f"entitle it. Create a new feature and entitle it from a new version instead.",
        )


@transaction.atomic(savepoint=False)
def plan_update(*, plan: Plan, data: Mapping[str, Any]) -> Plan:
    """Change the fields of ``plan`` present in ``data`` (PATCH); the result obeys :func:`plan_validate`.

    Call inside a transaction (the admin's change form is one). Returns the stored row.
    """
    _only(data, PLAN_FIELDS)
    locked = Plan.objects.select_for_update().get(pk=plan.pk)
    stored = {name: getattr(locked, name) for name in PLAN_FIELDS}
    errors = FieldErrors()
    plan_fixed_fields_check(plan=locked, data=data, errors=errors)
    errors.raise_if_any()
    values = plan_validate({**stored, **data})
    for name, value in values.items():
        setattr(locked, name, value)
    _save_unique(locked, "plan", PLAN_FIELDS)
    return locked


# --------------------------------------------------------------------------- plan versions


def plan_version_assert_draft(version: PlanVersion) -> None:
    """Raise :class:`VersionPublished` (409) unless ``version`` is still a draft (as stored)."""
    status = (
        PlanVersion.objects.filter(pk=version.pk).values_list("status", flat=True).first()
        if version.pk
        else version.status
    )
    if status == PlanVersion.Status.PUBLISHED or version.is_published:
        raise VersionPublished(
            f"{version.plan.key} v{version.number} is published and can never change; create a new draft from it "
            "instead."
        )


def _draft_locked(version: PlanVersion) -> PlanVersion:
    """The version's row locked ``FOR UPDATE``, re-checked to be a draft (409 otherwise)."""
    locked = PlanVersion.objects.select_for_update().select_related("plan").get(pk=version.pk)
    plan_version_assert_draft(locked)
    return locked


def plan_version_next_number(*, plan: Plan) -> int:
    """The next version number of ``plan``, with the plan row locked. Call inside a transaction."""
    Plan.objects.select_for_update().filter(pk=plan.pk).first()
    top = PlanVersion.objects.filter(plan=plan).aggregate(top=Max("number"))["top"]
    return (top or 0) + 1


def _price_store(version: PlanVersion, spec: PriceSpec, *, position: int, row: Price | None = None) -> Price:
    """Insert a price (``row`` None) or change ``row`` in place; the columns its model does not use are emptied
    and its tiers follow ``spec`` (kept when not given; none for a model without tiers)."""
    values: dict[str, Any] = {
        "name": spec.name,
        "model": spec.model,
        "meter": spec.meter,
        "timing": spec.timing,
        "position": position,
    }
    for column in PRICE_COLUMNS:
        value = spec.terms.get(column)
        values[column] = Price._meta.get_field(column).get_default() if value is None else value
    tiers = spec.terms.get("tiers")
    if row is None:
        row = Price.objects.create(plan_version=version, **values)
    else:
        for name, value in values.items():
            setattr(row, name, value)
        row.save()
        if tiers is not None or not price_model(spec.model).uses_tiers:
            for tier in row.tiers.all():
                tier.delete()
    if tiers:
        Tier.objects.bulk_create(
            [
                Tier(price=row, position=index, up_to=t.up_to, unit_amount=t.unit_amount, flat_amount=t.flat_amount)
                for index, t in enumerate(tiers)
            ]
        )
    return row


def _row_store(model: type[models.Model], version: PlanVersion, values: Mapping[str, Any], row: Any = None) -> Any:
    if row is None:
        return model.objects.create(plan_version=version, **values)
    for name, value in values.items():
        setattr(row, name, value)
    row.save()
    return row


def _store_children(
    version: PlanVersion, prices: list[PriceSpec], entitlements: list[dict[str, Any]], grants: list[dict[str, Any]]
) -> None:
    for position, spec in enumerate(prices):
        _price_store(version, spec, position=position)
    for row in entitlements:
        Entitlement.objects.create(plan_version=version, **row)
    for row in grants:
        PlanCreditGrant.objects.create(plan_version=version, **row)


#: The longest free trial a plan version may give, in days (a subscription's override has the same bound).
TRIAL_DAYS_MAX = 365


@transaction.atomic(savepoint=False)
def plan_version_create_in_transaction(
    *,
    plan: Plan,
    prices: Sequence[Mapping[str, Any]] | None = None,
    entitlements: Sequence[Mapping[str, Any]] | None = None,
    credit_grants: Sequence[Mapping[str, Any]] | None = None,
    publish: bool = False,
    effective_from: datetime | str | None = None,
    notes: str = "",
    now: datetime | None = None,
    minimum_commitment: Any = None,
    progressive_thresholds: Any = None,
    check_usage_prices: bool = True,
    trial_days: int = 0,
) -> PlanVersion:
    """:func:`plan_version_create` inside the caller's transaction (the admin's); ``notes`` is the admin's memo.

    ``check_usage_prices=False``: the admin saves a new version's prices after the version itself, so the
    "thresholds need a usage price" rule waits for publishing there (``catalog.commitments``)."""
    now = now or timezone.now()
    errors = FieldErrors()
    if isinstance(trial_days, bool) or not isinstance(trial_days, int) or not 0 <= trial_days <= TRIAL_DAYS_MAX:
        errors.add("trial_days", f"Must be a whole number of days from 0 to {TRIAL_DAYS_MAX}.")
    if not isinstance(publish, bool):
        errors.add("publish", "Must be true or false.")
    start = datetime_parse(effective_from, "effective_from", errors, default=now)
    notes = text_parse(notes, "notes", errors, required=False, max_length=10_000)
    rows = plan_version_children_validate(
        prices=[] if prices is None else prices,
        entitlements=[] if entitlements is None else entitlements,
        credit_grants=[] if credit_grants is None else credit_grants,
        errors=errors,
    )
    commitment, thresholds = version_terms_validate(
        minimum_commitment=minimum_commitment,
        progressive_thresholds=progressive_thresholds,
        has_usage_prices=any(s is not None and s.meter is not None for s in rows.prices or [])
        if check_usage_prices
        else None,
        errors=errors,
    )
    errors.raise_if_any()
    version = PlanVersion.objects.create(
        plan=plan,
        number=plan_version_next_number(plan=plan),
        status=PlanVersion.Status.PUBLISHED if publish else PlanVersion.Status.DRAFT,
        effective_from=start,
        published_at=now if publish else None,
        notes=notes,
        minimum_commitment=commitment,
        progressive_thresholds=thresholds,
        trial_days=trial_days if isinstance(trial_days, int) else 0,
    )
    _store_children(
        version, [s for s in rows.prices or [] if s is not None], rows.entitlements or [], rows.credit_grants or []
    )
    return version


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
    minimum_commitment: Any = None,
    progressive_thresholds: Any = None,
    trial_days: int = 0,
) -> PlanVersion:
    """Create the plan's next version with its prices (and tiers), entitlements and credit grants, at once.

    ``trial_days``: the free trial new subscriptions get by default (0-365; 0 = none).

    Inputs are API.md's PRICE / ENTITLEMENT / GRANT shapes (meters and features by key). With ``publish``
    the version is published in the same transaction (``published_at = now``). ``effective_from``
    defaults to ``now`` and may be in the past.
    """
    return plan_version_create_in_transaction(
        plan=plan,
        prices=prices,
        entitlements=entitlements,
        credit_grants=credit_grants,
        publish=publish,
        effective_from=effective_from,
        now=now,
        minimum_commitment=minimum_commitment,
        progressive_thresholds=progressive_thresholds,
        trial_days=trial_days,
    )


def price_as_input(price: Price) -> dict[str, Any]:
    """A stored price as a PRICE input (meter as its row, tiers in order) for re-validation."""
    data: dict[str, Any] = {"name": price.name, "model": price.model, "meter": price.meter, "timing": price.timing}
    for column in PRICE_COLUMNS:
        value = getattr(price, column)
        data[column] = None if PRICE_FIELDS[column].kind == "choice" and not value else value
    tiers = sorted(price.tiers.all(), key=lambda t: (t.position, t.id))
    data["tiers"] = [{"up_to": t.up_to, "unit_amount": t.unit_amount, "flat_amount": t.flat_amount} for t in tiers]
    return data


def _price_row_input(price: Price) -> dict[str, Any]:
    """A stored price as input for a row-by-row edit: its tiers are the price page's business (and publishing's)."""
    data = price_as_input(price)
    del data["tiers"]
    return data


# The lists of a version that the admin edits row by row, with how a stored row reads as input there.
_ROW_KINDS: dict[str, tuple[type[models.Model], Any]] = {
    "prices": (Price, _price_row_input),
    "entitlements": (Entitlement, _entitlement_as_input),
    "credit_grants": (PlanCreditGrant, _grant_as_input),
}


def _stored_rows(kind: str, version: PlanVersion) -> list[Any]:
    model = _ROW_KINDS[kind][0]
    rows = model.objects.filter(plan_version=version)
    if kind == "prices":
        rows = rows.select_related("meter").prefetch_related("tiers")
    elif kind == "entitlements":
        rows = rows.select_related("feature")
    return list(rows)


@dataclass(frozen=True)
class RowEdit:
    """One row to store in a version's list: ``row`` is the stored row to change in place (``None``: a new
    row) and ``data`` its fields in the API.md shape (PRICE, ENTITLEMENT or GRANT; meters and features may be
    rows). ``position`` orders a price on the sheet (new prices default to the end)."""

    row: models.Model | None
    data: Mapping[str, Any]
    position: int | None = None


@transaction.atomic(savepoint=False)
def plan_version_rows_save_in_transaction(
    *,
    version: PlanVersion,
    kind: str,
    save: Sequence[RowEdit] = (),
    delete: Sequence[models.Model] = (),
) -> list[Any]:
    """Edit one list of a draft row by row (``kind``: ``prices``, ``entitlements`` or ``credit_grants``): the rows in
    ``save`` are changed in place or added, the rows in ``delete`` removed, every other row stays as stored.

    The list as it will be (stored rows in order, edited ones in their place, then the new ones) is checked as a
    whole by :func:`plan_version_children_validate` (``partial``: tiers may still be missing) before anything is
    written; :class:`CatalogInvalid` names the bad fields by their index in that list. A published version is a
    :class:`VersionPublished` (409). Returns the stored rows of ``save``, in its order. Call inside a transaction
    (the admin's change form is one).
    """
    if kind not in _ROW_KINDS:
        raise ValueError(f"unknown list {kind!r}")
    locked = _draft_locked(version)
    model, as_input = _ROW_KINDS[kind]
    stored = _stored_rows(kind, locked)
    ids = {row.pk for row in stored}
    strangers = [row for row in [*(e.row for e in save if e.row is not None), *delete] if row.pk not in ids]
    if strangers:
        raise CatalogInvalid({kind: [f"{strangers[0]} is not part of {locked}."]})
    gone = {row.pk for row in delete}
    edits = {edit.row.pk: edit for edit in save if edit.row is not None}
    final: list[tuple[Any, RowEdit | None]] = [(row, edits.get(row.pk)) for row in stored if row.pk not in gone]
    final += [(None, edit) for edit in save if edit.row is None]
    checked = getattr(
        plan_version_children_validate(
            **{kind: [edit.data if edit is not None else as_input(row) for row, edit in final]}, partial=True
        ),
        kind,
    )
    for row in stored:
        if row.pk in gone:
            row.delete()
    next_position = max((row.position for row in stored), default=-1) + 1 if kind == "prices" else 0
    saved: dict[int, Any] = {}
    for (row, edit), value in zip(final, checked, strict=True):
        if edit is None:
            continue
        if kind == "prices":
            position = edit.position if edit.position is not None else (row.position if row is not None else None)
            if position is None:
                position, next_position = next_position, next_position + 1
            saved[id(edit)] = _price_store(locked, value, position=position, row=row)
        else:
            saved[id(edit)] = _row_store(model, locked, value, row=row)
    return [saved[id(edit)] for edit in save]


def _tier_as_input(tier: Tier) -> dict[str, Any]:
    return {"up_to": tier.up_to, "unit_amount": tier.unit_amount, "flat_amount": tier.flat_amount}


def _tier_input(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"up_to": data.get("up_to"), "unit_amount": data.get("unit_amount"), "flat_amount": data.get("flat_amount")}


def price_tiers_validate(
    *, price: Price, tiers: Sequence[Mapping[str, Any]], errors: FieldErrors | None = None
) -> list[pricing.Tier]:
    """Check a price's whole tier table (``{"up_to", "unit_amount", "flat_amount"}`` rows in order) as the API
    does: tiers rise and the last is unbounded (``catalog.pricing.validate_tiers``); only tiered prices have
    tiers. Errors are under ``tiers``; :class:`CatalogInvalid` unless ``errors`` is given."""
    own = errors is None
    errs = errors if errors is not None else FieldErrors()
    result: list[pricing.Tier] = []
    if not price_model(price.model).uses_tiers:
        if tiers:
            with_tiers = " or ".join(key for key, row in PRICE_MODELS.items() if row.uses_tiers)
            errs.add("tiers", f"Only {with_tiers} prices have tiers.")
    else:
        result = tiers_parse([_tier_input(t) for t in tiers], "tiers", errs)
    if own:
        errs.raise_if_any()
    return result


@transaction.atomic(savepoint=False)
def price_tiers_save_in_transaction(
    *, price: Price, save: Sequence[RowEdit] = (), delete: Sequence[Tier] = ()
) -> list[Tier]:
    """Edit a draft price's tier table row by row (``RowEdit.data``: ``up_to``, ``unit_amount``, ``flat_amount``;
    ``position`` orders it): the table as it will be, in position order, is checked by
    :func:`price_tiers_validate` before anything is written. A published version is a 409. Returns the stored
    tiers of ``save``, in its order. Call inside a transaction (the admin's change form is one)."""
    locked = Price.objects.select_for_update().select_related("plan_version__plan").get(pk=price.pk)
    _draft_locked(locked.plan_version)
    stored = list(locked.tiers.all())
    ids = {tier.pk for tier in stored}
    strangers = [t for t in [*(e.row for e in save if e.row is not None), *delete] if t.pk not in ids]
    if strangers:
        raise CatalogInvalid({"tiers": [f"Tier {strangers[0].pk} is not one of this price's tiers."]})
    gone = {tier.pk for tier in delete}
    edits = {edit.row.pk: edit for edit in save if edit.row is not None}
    final: list[tuple[int, int, Tier | None, RowEdit | None]] = []
    for tier in stored:
        if tier.pk not in gone:
            edit = edits.get(tier.pk)
            position = edit.position if edit is not None and edit.position is not None else tier.position
            final.append((position, tier.pk, tier, edit))
    top = max((p for p, *_ in final), default=-1)
    for index, edit in enumerate(e for e in save if e.row is None):
        final.append((edit.position if edit.position is not None else top + 1 + index, 1 << 62, None, edit))
    final.sort(key=lambda item: (item[0], item[1]))
    price_tiers_validate(
        price=locked,
        tiers=[_tier_input(edit.data if edit is not None else _tier_as_input(tier)) for _, _, tier, edit in final],
    )
    for tier in stored:
        if tier.pk in gone:
            tier.delete()
    saved: dict[int, Tier] = {}
    for position, _, tier, edit in final:
        if edit is None:
            continue
        values = _tier_input(edit.data)
        values["flat_amount"] = values["flat_amount"] or Decimal(0)
        saved[id(edit)] = _row_store_tier(locked, tier, position, values)
    return [saved[id(edit)] for edit in save]


def _row_store_tier(price: Price, tier: Tier | None, position: int, values: Mapping[str, Any]) -> Tier:
    if tier is None:
        return Tier.objects.create(price=price, position=position, **values)
    tier.position = position
    for name, value in values.items():
        setattr(tier, name, value)
    tier.save()
    return tier


def plan_version_check(*, version: PlanVersion) -> None:
    """Raise :class:`CatalogInvalid` unless every price, entitlement and credit grant of the version is complete
    and valid by the API's rules (:func:`plan_version_children_validate`), naming each bad row by its path.

    Drafts edited row by row in the admin may be incomplete (a tiered price before its tiers are
    entered); a version is checked as a whole before it is published.
    """
    plan_version_children_validate(
        prices=[price_as_input(row) for row in _stored_rows("prices", version)],
        entitlements=[_entitlement_as_input(row) for row in _stored_rows("entitlements", version)],
        credit_grants=[_grant_as_input(row) for row in _stored_rows("credit_grants", version)],
    )
    errors = FieldErrors()
    version_terms_validate(
        minimum_commitment=version.minimum_commitment,
        progressive_thresholds=version.progressive_thresholds,
        has_usage_prices=version.prices.filter(meter__isnull=False).exists(),
        errors=errors,
    )
    errors.raise_if_any()


@transaction.atomic(savepoint=False)
def plan_version_publish_in_transaction(*, version: PlanVersion, now: datetime | None = None) -> PlanVersion:
    """Publish a draft (lock, re-check, transition). Call inside a transaction (the admin's is one).

    Publishing a published version is a :class:`VersionPublished` conflict (409); a draft with an
    incomplete or invalid row (a tiered price without valid tiers, a limit on a boolean feature's
    entitlement, a grant of 0 credits) is a :class:`CatalogInvalid` (400) naming it.
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
        minimum_commitment=source.minimum_commitment,
        progressive_thresholds=source.progressive_thresholds,
        trial_days=source.trial_days,
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
                Tier(
                    price=price,
                    position=t.position,
                    up_to=t.up_to,
                    unit_amount=t.unit_amount,
                    flat_amount=t.flat_amount,
                )
                for t in tiers
            ]
        )
    Entitlement.objects.bulk_create(
        [
            Entitlement(
                plan_version=draft,
                feature_id=e.feature_id,
                enabled=e.enabled,
                limit=e.limit,
                reset=e.reset,
                soft=e.soft,
                value=e.value,
            )
            for e in source.entitlements.all()
        ]
    )
    PlanCreditGrant.objects.bulk_create(
        [
            PlanCreditGrant(
                plan_version=draft,
                name=g.name,
                credits=g.credits,
                cadence=g.cadence,
                rollover_cap=g.rollover_cap,
                expire_after_periods=g.expire_after_periods,
                forfeit_on_end=g.forfeit_on_end,
                priority=g.priority,
            )
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


@transaction.atomic(savepoint=False)
def plan_version_update_in_transaction(
    *,
    version: PlanVersion,
    prices: Sequence[Mapping[str, Any]] | None = None,
    entitlements: Sequence[Mapping[str, Any]] | None = None,
    credit_grants: Sequence[Mapping[str, Any]] | None = None,
    effective_from: datetime | str | None = None,
    notes: str | None = None,
    minimum_commitment: Any = UNCHANGED,
    progressive_thresholds: Any = UNCHANGED,
    check_usage_prices: bool = True,
    trial_days: int | None = None,
) -> PlanVersion:
    """:func:`plan_version_update` inside the caller's transaction (the admin's); ``notes`` is the admin's memo.

    ``minimum_commitment`` / ``progressive_thresholds``: :data:`UNCHANGED` keeps them; ``check_usage_prices``
    as for :func:`plan_version_create_in_transaction`; ``trial_days`` (None: unchanged) the free trial of new
    subscriptions."""
    locked = _draft_locked(version)
    errors = FieldErrors()
    if trial_days is not None and (
        isinstance(trial_days, bool) or not isinstance(trial_days, int) or not 0 <= trial_days <= TRIAL_DAYS_MAX
    ):
        errors.add("trial_days", f"Must be a whole number of days from 0 to {TRIAL_DAYS_MAX}.")
    start = datetime_parse(effective_from, "effective_from", errors, default=locked.effective_from)
    memo = locked.notes if notes is None else text_parse(notes, "notes", errors, required=False, max_length=10_000)
    rows = plan_version_children_validate(
        prices=prices, entitlements=entitlements, credit_grants=credit_grants, errors=errors
    )
    has_usage = None
    if check_usage_prices:
        has_usage = (
            any(s is not None and s.meter is not None for s in rows.prices)
            if rows.prices is not None
            else locked.prices.filter(meter__isnull=False).exists()
        )
    commitment, thresholds = version_terms_validate(
        minimum_commitment=locked.minimum_commitment if minimum_commitment is UNCHANGED else minimum_commitment,
        progressive_thresholds=(
            locked.progressive_thresholds if progressive_thresholds is UNCHANGED else progressive_thresholds
        ),
        has_usage_prices=has_usage,
        errors=errors,
    )
    errors.raise_if_any()
    trial = locked.trial_days if trial_days is None else trial_days
    values = (
        ("effective_from", start),
        ("notes", memo),
        ("minimum_commitment", commitment),
        ("progressive_thresholds", thresholds),
        ("trial_days", trial),
    )
    changed = [name for name, value in values if getattr(locked, name) != value]
    if changed:
        for name, value in values:
            setattr(locked, name, value)
        locked.save(update_fields=changed)
    if rows.prices is not None:
        for price in locked.prices.all():
            price.tiers.all().delete()
            price.delete()
    if rows.entitlements is not None:
        for row in locked.entitlements.all():
            row.delete()
    if rows.credit_grants is not None:
        for row in locked.credit_grants.all():
            row.delete()
    _store_children(
        locked,
        [s for s in (rows.prices or []) if s is not None],
        rows.entitlements or [],
        rows.credit_grants or [],
    )
    return locked


@transaction.atomic(durable=True)
def plan_version_update(
    *,
    version: PlanVersion,
    prices: Sequence[Mapping[str, Any]] | None = None,
    entitlements: Sequence[Mapping[str, Any]] | None = None,
    credit_grants: Sequence[Mapping[str, Any]] | None = None,
    effective_from: datetime | str | None = None,
    minimum_commitment: Any = UNCHANGED,
    progressive_thresholds: Any = UNCHANGED,
    trial_days: int | None = None,
) -> PlanVersion:
    """Edit a draft: each list given replaces that list; ``effective_from`` moves its start; the commitment and
    thresholds change when given (``catalog.commitments``); ``trial_days`` (None: unchanged) the free trial of
    new subscriptions (0-365).

    A published version raises :class:`VersionPublished` (409), before any input is looked at.
    """
    return plan_version_update_in_transaction(
        version=version,
        prices=prices,
        entitlements=entitlements,
        credit_grants=credit_grants,
        effective_from=effective_from,
        minimum_commitment=minimum_commitment,
        progressive_thresholds=progressive_thresholds,
        trial_days=trial_days,
    )
