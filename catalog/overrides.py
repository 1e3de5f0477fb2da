"""Price overrides: one subscription's own values for a named price of its plan (negotiated prices).

An override is ``{"price": a price name, and any of "amount", "unit_amount", "package_size",
"package_amount", "tiers"}`` (API.md "Timezones, intervals, per-customer prices"). It is stored as JSON on the
subscription (decimals as strings, tiers as ``[{"up_to", "unit_amount", "flat_amount"}]``) and applied to the
price of that name in **every** plan version that has one: the model, meter and timing stay the version's, only
the given values change. Rules (DESIGN.md "Customers and subscriptions"; where it is silent, chosen here):

* Values are checked by the price model's own parser (:mod:`catalog.price_models`), as a plan's prices are:
  a negative amount, a package size of 0 or a tier table that does not rise is a 400 naming the field
  (``price_overrides[0].unit_amount``). A price name the plan version does not have, a field its model does not
  keep (``unit_amount`` on a flat fee) or any other key (``model``, ``meter``, ``timing``, ``tier_mode``) is a
  400 too, and so is an override giving no value or naming a price twice.
* A version whose price of that name keeps none of the override's fields in its model (the model changed), or
  that has no price of that name, bills its own price: the override is dropped for that version's periods and
  the admin says so (:func:`override_status`). A later version with the price again applies it again.
* A line billed with an override says so in its ``details["override"]``:
  ``"override: unit_amount 0.008 (plan: 0.01)"`` (:func:`override_text`).

The functions here read ``Price`` rows and plain JSON; no subscription is needed, so the plan's pricing
operations (backtests) apply a subscription's overrides with :func:`price_quote_overridden` from its
``price_overrides``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from core.money import format_decimal

from . import pricing
from .models import Price
from .price_models import PRICE_FIELDS, price_model
from .quote import price_terms
from .validation import FieldErrors, items_parse, path_join, text_parse

__all__ = [
    "OVERRIDABLE_FIELDS",
    "override_for",
    "override_status",
    "override_terms",
    "override_text",
    "price_overrides_parse",
    "price_quote_overridden",
]

#: The values an override may give (API.md); ``tier_mode``, the model, meter and timing stay the version's.
OVERRIDABLE_FIELDS: tuple[str, ...] = ("amount", "unit_amount", "package_size", "package_amount", "tiers")

#: The most overrides one subscription holds.
MAX_OVERRIDES = 100

Overrides = Sequence[Mapping[str, Any]]


def _tiers_json(tiers: Iterable[pricing.Tier]) -> list[dict[str, str | None]]:
    return [
        {
            "up_to": None if t.up_to is None else f"{t.up_to:f}",
            "unit_amount": f"{t.unit_amount:f}",
            "flat_amount": f"{t.flat_amount:f}",
        }
        for t in tiers
    ]


def _plan_values(price: Price) -> dict[str, Any]:
    """The price's values in the API's input shape, as the parser reads them."""
    terms = price_terms(price)
    values: dict[str, Any] = dict(terms)
    if "tiers" in terms:
        values["tiers"] = _tiers_json(terms["tiers"] or ())
    return values


def price_overrides_parse(
    data: Any, *, prices: Iterable[Price], errors: FieldErrors | None = None, prefix: str = "price_overrides"
) -> list[dict[str, Any]]:
    """Check overrides against ``prices`` (a plan version's) and return them in their stored JSON form.

    Errors are added to ``errors`` under ``prefix`` (``price_overrides[1].tiers[0].unit_amount``); without
    ``errors``, :class:`catalog.errors.CatalogInvalid` (400) is raised naming every bad field.
    """
    own = errors is None
    errs = errors if errors is not None else FieldErrors()
    by_name: dict[str, Price] = {}
    for price in prices:
        by_name.setdefault(price.name, price)
    rows = items_parse(data, prefix, errs, limit=MAX_OVERRIDES)
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        here = f"{prefix}[{index}]"
        name = text_parse(row.get("price"), f"{here}.price", errs, required=True, max_length=200)
        price = by_name.get(name) if name else None
        if name and price is None:
            known = ", ".join(sorted(by_name)) or "none"
            errs.add(f"{here}.price", f"The plan has no price named '{name}' (its prices: {known}).")
        elif name in seen:
            errs.add(f"{here}.price", f"'{name}' is overridden twice.")
        seen.add(name)
        for key in row:
            if key != "price" and key not in OVERRIDABLE_FIELDS:
                errs.add(path_join(here, key), "Cannot be overridden (only the price's values can).")
        given = [key for key in OVERRIDABLE_FIELDS if key in row and row[key] is not None]
        if not given:
            errs.add(here, f"Give at least one of {', '.join(OVERRIDABLE_FIELDS)}.")
        if price is None:
            continue
        model = price_model(price.model)
        foreign = [key for key in given if key not in model.fields]
        for key in foreign:
            errs.add(path_join(here, key), f"Does not apply to {price.model} prices.")
        if foreign or not given:
            continue
        before = sum(len(v) for v in errs.items.values())
        parsed = model.parse({**_plan_values(price), **{k: row[k] for k in given}}, here, errs, False)
        if sum(len(v) for v in errs.items.values()) != before:
            continue
        stored: dict[str, Any] = {"price": name}
        for key in given:
            value = parsed[key]
            stored[key] = _tiers_json(value) if key == "tiers" else f"{value:f}"
        result.append(stored)
    if own:
        errs.raise_if_any()
    return result


def override_for(overrides: Overrides | None, price: Price) -> Mapping[str, Any] | None:
    """The override of ``price`` (by its name) among ``overrides``, if one applies to its model; else ``None``."""
    for override in overrides or ():
        if override.get("price") == price.name:
            fields = price_model(price.model).fields
            return override if any(key in fields for key in override if key in OVERRIDABLE_FIELDS) else None
    return None


def _value(key: str, raw: Any) -> Any:
    if key == "tiers":
        return [
            pricing.Tier(
                up_to=None if t.get("up_to") in (None, "") else Decimal(t["up_to"]),
                unit_amount=Decimal(t["unit_amount"]),
                flat_amount=Decimal(t.get("flat_amount") or "0"),
            )
            for t in raw
        ]
    return Decimal(raw)


def override_terms(price: Price, override: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """The price's terms with ``override``'s values (fields of the price's model only) and the names changed."""
    terms = price_terms(price)
    changed: list[str] = []
    if override is None:
        return terms, changed
    for key in price_model(price.model).fields:
        if key in OVERRIDABLE_FIELDS and key in override:
            terms[key] = _value(key, override[key])
            changed.append(key)
    return terms, changed


def _shown(key: str, value: Any) -> str:
    if key == "tiers":
        return "; ".join(
            f"up to {'∞' if t.up_to is None else format_decimal(t.up_to)} at {format_decimal(t.unit_amount)}"
            + (f" + {format_decimal(t.flat_amount)}" if t.flat_amount else "")
            for t in value
        )
    return format_decimal(value) if PRICE_FIELDS[key].kind != "money" else f"{value.normalize():f}"


def override_text(price: Price, override: Mapping[str, Any] | None) -> str:
    """``"override: unit_amount 0.008 (plan: 0.01)"`` (fields joined by ``"; "``), or ``""`` without one."""
    terms, changed = override_terms(price, override)
    if not changed:
        return ""
    plan = price_terms(price)
    parts = [f"{key} {_shown(key, terms[key])} (plan: {_shown(key, plan[key])})" for key in changed]
    return "override: " + "; ".join(parts)


def price_quote_overridden(
    price: Price, quantity: Decimal, overrides: Overrides | None
) -> tuple[pricing.PriceResult, str]:
    """``quantity`` units of ``price`` with a subscription's ``overrides`` applied: the unrounded result and the
    override's text for the line's details (``""`` when no override applies)."""
    override = override_for(overrides, price)
    terms, _ = override_terms(price, override)
    return price_model(price.model).price(quantity, terms), override_text(price, override)


def override_line_unit_amount(price: Price, overrides: Overrides | None) -> Decimal | None:
    """The unit price an invoice line shows, with the override applied (per-unit prices), else ``None``."""
    terms, _ = override_terms(price, override_for(overrides, price))
    return price_model(price.model).line_unit_amount(terms)


def override_status(overrides: Overrides | None, prices: Iterable[Price]) -> list[tuple[Mapping[str, Any], str]]:
    """Each override with what it does for a version's ``prices``, for people: its text, or why it is dropped."""
    by_name = {p.name: p for p in prices}
    result: list[tuple[Mapping[str, Any], str]] = []
    for override in overrides or ():
        name = override.get("price")
        price = by_name.get(name)
        if price is None:
            result.append((override, f"Dropped: this version has no price named '{name}'; the override is not billed."))
        elif override_for(overrides, price) is None:
            result.append(
                (override, f"Dropped: '{name}' is now a {price.model} price, which keeps none of its values.")
            )
        else:
            result.append((override, f"{name}: {override_text(price, override)}"))
    return result
