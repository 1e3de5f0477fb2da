"""The price models, one row each: everything the rest of the code knows about a model lives in its row.

A row gives the model's key and label, the values it keeps on a price (``fields``: columns of ``Price``, and
``tiers`` for the Tier rows), whether it prices a meter's usage or is a fixed fee, its validator (the API's
PRICE shape -> its values, errors named by path), its pricing function (from the pure :mod:`catalog.pricing`)
and its one-line human summary, plus the optional unit amount an invoice line shows and the units included for
free. Everything else reads this table:

* ``Price.model``'s choices (catalog/models.py): a new row changes them, so it comes with a migration;
* validation of the API's prices and of the admin's price rows (``catalog.services.price_validate``);
* pricing a stored price (``catalog.quote.price_quote``), invoice lines (``invoicing.services.lines``);
* the admin's price summary (``catalog.display.price_summary``) and its price field lists (``catalog.admin``);
* the API's price fields, in and out (``catalog.api.serializers``).

So a new model is its row here plus a migration (docs/how-to-add-a-price-model.md); a model that needs a value
no column holds yet also adds that column to ``Price`` and to :data:`PRICE_FIELDS`.

Terms: a price's values of its model's fields, as a mapping (``{"unit_amount": Decimal("0.25")}``); ``tiers``
is the tier table in order (:class:`catalog.pricing.Tier`). No Django model is imported here: catalog/models.py
imports this module for the choices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from core.money import format_decimal, format_money

from . import pricing
from .validation import FieldErrors, choice_parse, decimal_parse, items_parse, path_join

__all__ = [
    "MAX_TIERS",
    "PRICE_COLUMNS",
    "PRICE_FIELDS",
    "PRICE_MODELS",
    "PriceField",
    "PriceModel",
    "Terms",
    "price_model",
    "price_model_choices",
    "tiers_parse",
    "tiers_text",
]

#: A price's values of its model's fields; ``tiers`` is a list of :class:`catalog.pricing.Tier` in order.
Terms = Mapping[str, Any]

#: The most tiers a price may have (a longer list is a 400 naming it).
MAX_TIERS = 100


@dataclass(frozen=True)
class PriceField:
    """A value that price models keep on a price: a ``Price`` column, or ``tiers`` (the Tier rows).

    ``kind`` says how it reads and travels: ``money`` (an amount in the plan's currency, up to 12 decimal places,
    shown with at least the currency's minor unit), ``quantity`` (a number of units, no trailing zeros),
    ``choice`` (one of ``choices``) or ``tiers``.
    """

    name: str
    kind: str
    choices: tuple[str, ...] = ()


#: Every value a model may keep, in the order the API and the admin show them.
PRICE_FIELDS: dict[str, PriceField] = {
    field.name: field
    for field in (
        PriceField("amount", "money"),
        PriceField("unit_amount", "money"),
        PriceField("package_size", "quantity"),
        PriceField("package_amount", "money"),
        PriceField("tier_mode", "choice", pricing.TIER_MODES),
        PriceField("tiers", "tiers"),
    )
}

#: The ``Price`` columns among :data:`PRICE_FIELDS` (all but the Tier rows), in order.
PRICE_COLUMNS: tuple[str, ...] = tuple(name for name, field in PRICE_FIELDS.items() if field.kind != "tiers")


class _Parse(Protocol):
    def __call__(self, data: Mapping[str, Any], prefix: str, errors: FieldErrors, partial: bool) -> dict[str, Any]: ...


def _none(terms: Terms) -> Decimal | None:
    return None


@dataclass(frozen=True)
class PriceModel:
    """One price model (see the module's docstring).

    * ``parse(data, prefix, errors, partial)``: the model's values from a PRICE input, each error added under
      ``prefix`` (``prices[0].unit_amount``); ``partial``: a draft edited row by row, whose Tier rows may be missing.
    * ``price(quantity, terms)``: the exact, unrounded :class:`catalog.pricing.PriceResult` of ``quantity`` units.
    * ``summary(terms, currency, meter)``: what is charged, for people; ``meter`` is ``" of <meter key>"`` or ``""``.
    * ``line_unit_amount(terms)``: the unit price an invoice line shows, if the model has one.
    * ``included_units(terms)``: units included for free, which an invoice line mentions, if any.
    """

    key: str
    label: str
    fields: tuple[str, ...]
    usage: bool
    parse: _Parse
    price: Callable[[Decimal, Terms], pricing.PriceResult]
    summary: Callable[[Terms, str, str], str]
    line_unit_amount: Callable[[Terms], Decimal | None] = _none
    included_units: Callable[[Terms], Decimal | None] = _none

    @property
    def uses_tiers(self) -> bool:
        return "tiers" in self.fields


def _required(terms: Terms, field: str, model: str) -> Any:
    value = terms.get(field)
    if value is None:
        raise pricing.PricingError(field, f"is required for {model} prices")
    return value


# --------------------------------------------------------------------------- tiers


def tiers_parse(value: Any, path: str, errors: FieldErrors) -> list[pricing.Tier]:
    """A tier table from ``[{"up_to", "unit_amount", "flat_amount"}]`` (API.md; ``flat_amount`` defaults to 0):
    at most :data:`MAX_TIERS` rows, rising and ending unbounded (``catalog.pricing.validate_tiers``)."""
    rows = items_parse(value, path, errors, limit=MAX_TIERS)
    if path in errors.items:
        return []
    tiers: list[pricing.Tier] = []
    ok = True
    for index, row in enumerate(rows):
        here = f"{path}[{index}]"
        up_to = decimal_parse(row.get("up_to"), f"{here}.up_to", errors)
        unit = decimal_parse(row.get("unit_amount"), f"{here}.unit_amount", errors, required=True)
        flat = decimal_parse(row.get("flat_amount"), f"{here}.flat_amount", errors)
        if (
            unit is None
            or (row.get("up_to") not in (None, "") and up_to is None)
            or (row.get("flat_amount") not in (None, "") and flat is None)
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


def tiers_text(tiers: Iterable[Any], currency: str) -> str:
    """``1–1,000: $1.00/unit; 1,001–5,000: $0.80/unit + $50.00; 5,001 and up: $0.50/unit + $100.00``.

    ``tiers`` in order (anything with ``up_to``, ``unit_amount``, ``flat_amount``). A tier after a whole-number
    bound starts at the next whole unit; after a fractional bound it reads "over 2.5". Tier flat amounts are shown
    as "+ $X".
    """
    parts: list[str] = []
    previous: Decimal | None = None
    for tier in tiers:
        if previous is None:
            start = "1"
        elif previous == previous.to_integral_value():
            start = format_decimal(previous + 1)
        else:
            start = f"over {format_decimal(previous)}"
        if tier.up_to is None:
            span = f"{start} and up" if not start.startswith("over") else start
        else:
            span = (
                f"{start}–{format_decimal(tier.up_to)}"
                if not start.startswith("over")
                else f"{start} to {format_decimal(tier.up_to)}"
            )
        text = f"{span}: {format_money(tier.unit_amount, currency)}/unit"
        if tier.flat_amount:
            text += f" + {format_money(tier.flat_amount, currency)}"
        parts.append(text)
        previous = tier.up_to
    return "; ".join(parts) if parts else "no tiers yet"


# --------------------------------------------------------------------------- the models


def _money(name: str, *, positive: bool = False) -> _Parse:
    """A validator for models whose values are required non-negative decimals (``positive``: > 0)."""

    def parse(data: Mapping[str, Any], prefix: str, errors: FieldErrors, partial: bool) -> dict[str, Any]:
        return {name: decimal_parse(data.get(name), path_join(prefix, name), errors, required=True, positive=positive)}

    return parse


def _package_parse(data: Mapping[str, Any], prefix: str, errors: FieldErrors, partial: bool) -> dict[str, Any]:
    return {
        "package_size": decimal_parse(
            data.get("package_size"), path_join(prefix, "package_size"), errors, required=True, positive=True
        ),
        "package_amount": decimal_parse(
            data.get("package_amount"), path_join(prefix, "package_amount"), errors, required=True
        ),
    }


def _tiered_parse(data: Mapping[str, Any], prefix: str, errors: FieldErrors, partial: bool) -> dict[str, Any]:
    terms: dict[str, Any] = {
        "tier_mode": choice_parse(data.get("tier_mode"), path_join(prefix, "tier_mode"), errors, pricing.TIER_MODES)
        or ""
    }
    if partial and not data.get("tiers"):
        terms["tiers"] = None  # entered on the price's own page; publishing requires them
    elif data.get("tiers") in (None, [], ()):
        errors.add(path_join(prefix, "tiers"), "A tiered price needs at least one tier.")
        terms["tiers"] = []
    else:
        terms["tiers"] = tiers_parse(data.get("tiers"), path_join(prefix, "tiers"), errors)
    return terms


def _tiered_price(quantity: Decimal, terms: Terms) -> pricing.PriceResult:
    mode = terms.get("tier_mode")
    if mode == "graduated":
        return pricing.price_graduated(quantity, terms.get("tiers") or ())
    if mode == "volume":
        return pricing.price_volume(quantity, terms.get("tiers") or ())
    raise pricing.PricingError("tier_mode", f"must be one of {', '.join(pricing.TIER_MODES)}, not {mode!r}")


def _tiered_summary(terms: Terms, currency: str, meter: str) -> str:
    mode = "graduated" if terms.get("tier_mode") == "graduated" else "volume"
    return f"{mode} tiers{meter}: {tiers_text(terms.get('tiers') or (), currency)}"


def _tiered_included_units(terms: Terms) -> Decimal | None:
    """A graduated price's first tier when it is free (rate 0, no flat amount): "5,000 included"."""
    tiers = terms.get("tiers") or ()
    if terms.get("tier_mode") != "graduated" or not tiers:
        return None
    first = tiers[0]
    return first.up_to if first.up_to is not None and first.unit_amount == 0 and first.flat_amount == 0 else None


PRICE_MODELS: dict[str, PriceModel] = {
    model.key: model
    for model in (
        PriceModel(
            key="flat_fee",
            label="Flat fee per period",
            fields=("amount",),
            usage=False,
            parse=_money("amount"),
            price=lambda quantity, t: pricing.price_flat_fee(_required(t, "amount", "flat_fee")),
            summary=lambda t, currency, meter: f"{format_money(t.get('amount'), currency)} per period",
        ),
        PriceModel(
            key="per_unit",
            label="Per unit",
            fields=("unit_amount",),
            usage=True,
            parse=_money("unit_amount"),
            price=lambda quantity, t: pricing.price_per_unit(quantity, _required(t, "unit_amount", "per_unit")),
            summary=lambda t, currency, meter: f"{format_money(t.get('unit_amount'), currency)} per unit{meter}",
            line_unit_amount=lambda t: t.get("unit_amount"),
        ),
        PriceModel(
            key="package",
            label="Package",
            fields=("package_size", "package_amount"),
            usage=True,
            parse=_package_parse,
            price=lambda quantity, t: pricing.price_package(
                quantity, _required(t, "package_size", "package"), _required(t, "package_amount", "package")
            ),
            summary=lambda t, currency, meter: (
                f"{format_money(t.get('package_amount'), currency)} per {format_decimal(t.get('package_size'))} "
                f"units{meter}"
            ),
        ),
        PriceModel(
            key="tiered",
            label="Tiered",
            fields=("tier_mode", "tiers"),
            usage=True,
            parse=_tiered_parse,
            price=_tiered_price,
            summary=_tiered_summary,
            included_units=_tiered_included_units,
        ),
    )
}


def price_model(key: str) -> PriceModel:
    """The row of ``key``; :class:`catalog.pricing.PricingError` (field ``model``) for an unknown one."""
    model = PRICE_MODELS.get(key)
    if model is None:
        raise pricing.PricingError("model", f"must be one of {', '.join(PRICE_MODELS)}, not {key!r}")
    return model


def price_model_choices() -> list[tuple[str, tuple[str, str]]]:
    """``Price.Model``'s members, one per row: ``[("FLAT_FEE", ("flat_fee", "Flat fee per period")), ...]``."""
    return [(key.upper(), (key, model.label)) for key, model in PRICE_MODELS.items()]
