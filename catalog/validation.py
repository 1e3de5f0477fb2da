"""Input parsing shared by the catalog's services and the admin forms that call them.

Each parser reads one value of an API.md shape (strings, numbers, booleans, lists of objects), adds a message to
a :class:`FieldErrors` under the value's path when it is wrong (``prices[1].tiers``, 0-based indexes) and returns
the parsed value, so one 400 (or one admin form) names every bad field at once.

Rules (also in the project docs): decimal inputs are ``Decimal``, ``int`` or decimal strings; a JSON float is
read from its shortest text form (``0.8`` -> ``Decimal("0.8")``), as DRF's DecimalField does; no float
arithmetic. Amounts fit the columns: at most 12 decimal places and 16 integer digits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import models
from django.utils import timezone

from core.instants import OUT_OF_RANGE, instant_in_range
from core.numbers import NumberInvalid, integer_parse
from core.numbers import decimal_parse as number_decimal_parse

from .errors import CatalogInvalid

__all__ = [
    "MAX_DECIMAL_PLACES",
    "MAX_INTEGER_DIGITS",
    "FieldErrors",
    "bool_parse",
    "choice_parse",
    "datetime_parse",
    "decimal_parse",
    "int_parse",
    "items_parse",
    "key_parse",
    "path_join",
    "text_parse",
]

MAX_DECIMAL_PLACES = 12
MAX_DIGITS = 28
MAX_INTEGER_DIGITS = MAX_DIGITS - MAX_DECIMAL_PLACES
#: The largest value an integer column holds.
INTEGER_COLUMN_MAX = 2**31 - 1


@dataclass
class FieldErrors:
    """Collects ``path -> [messages]`` so one 400 names every bad field."""

    items: dict[str, list[str]] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        self.items.setdefault(path, []).append(message)

    def raise_if_any(self) -> None:
        if self.items:
            raise CatalogInvalid(self.items)


def path_join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def decimal_parse(
    value: Any, path: str, errors: FieldErrors, *, required: bool = False, positive: bool = False
) -> Decimal | None:
    """Parse a non-negative decimal (``positive``: > 0) that fits the 28/12 columns; ``None`` when absent/null
    and not required. The grammar is the API's one (``core.numbers``): ASCII decimal text, a JSON integer or a
    ``Decimal`` from Python callers; ``""``, a JSON float, ``"1e3"``, ``" 5"`` or other digits are refused,
    never reinterpreted (admin forms pass their cleaned values: ``None`` for an empty field)."""
    if value is None:
        if required:
            errors.add(path, "This field is required.")
        return None
    try:
        return number_decimal_parse(value, max_digits=MAX_DIGITS, decimal_places=MAX_DECIMAL_PLACES, positive=positive)
    except NumberInvalid as exc:
        errors.add(path, exc.message)
        return None


def choice_parse(
    value: Any, path: str, errors: FieldErrors, choices: Sequence[str], *, default: str | None = None
) -> str | None:
    if value is None or value == "":
        if default is None:
            errors.add(path, "This field is required.")
        return default
    if not isinstance(value, str) or value not in choices:
        errors.add(path, f"'{value}' is not one of: {', '.join(choices)}.")
        return None
    return value


def bool_parse(value: Any, path: str, errors: FieldErrors, *, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.add(path, "Must be true or false.")
        return default
    return value


def int_parse(value: Any, path: str, errors: FieldErrors, *, default: int | None, minimum: int) -> int | None:
    """A JSON integer (an ``int`` from Python callers) from ``minimum`` to what an integer column holds;
    ``default`` when absent/null (or empty, from an admin form)."""
    if value is None or value == "":
        return default
    try:
        return integer_parse(value, minimum=minimum, maximum=INTEGER_COLUMN_MAX)
    except NumberInvalid as exc:
        errors.add(path, exc.message)
        return default


def text_parse(
    value: Any, path: str, errors: FieldErrors, *, required: bool, max_length: int, default: str = ""
) -> str:
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


def items_parse(value: Any, path: str, errors: FieldErrors, *, limit: int) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        errors.add(path, "A list is required.")
        return []
    if len(value) > limit:
        errors.add(path, f"At most {limit} items; got {len(value)}.")
        return []
    result: list[Mapping[str, Any]] = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            errors.add(f"{path}[{index}]", "An object is required.")
        else:
            result.append(item)
    return result if len(result) == len(value) else []


def key_parse(value: Any, path: str, errors: FieldErrors) -> str:
    key = text_parse(value, path, errors, required=True, max_length=100)
    if key and not models.SlugField.default_validators[0].regex.match(key):
        errors.add(path, "Letters, digits, hyphens and underscores only.")
    return key


def datetime_parse(value: Any, path: str, errors: FieldErrors, *, default: datetime) -> datetime:
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
    if not instant_in_range(value):  # periods are computed from it (core.instants)
        errors.add(path, OUT_OF_RANGE)
        return default
    return value
