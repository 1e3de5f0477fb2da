"""The API's number fields, shared by every app's serializers (rules in ``core.numbers``).

* :class:`ExactDecimalField`: money, credits, rates and quantities. In: ASCII decimal text (``"12.50"``) or
  a JSON integer (``5000``), stored exactly in its column or refused (400 naming the field); a JSON float is
  refused. Out: plain decimal text without trailing zeros (``"2000"``, ``"0.05"``).
* :class:`CreditsField`: the same for credit quantities and conversion rates (``numeric(28, 12)``, > 0 by
  default).
* :class:`WholeNumberField`: a JSON integer within bounds (not ``"5"``, not ``5.0``, not ``true``).

The OpenAPI schema of each field says exactly what it accepts (``core.schema``): the same
regular expression for the text, the integer bounds, and "not zero" for positive fields.
"""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from .money import decimal_text
from .numbers import NumberInvalid, decimal_parse, integer_parse

#: The largest value of a PostgreSQL ``integer`` column (PositiveIntegerField).
INTEGER_COLUMN_MAX = 2**31 - 1


class ExactDecimalField(serializers.Field):
    """A non-negative decimal that fits ``numeric(max_digits, decimal_places)`` exactly.

    ``positive``: 0 is refused. ``at_most``: a power-of-ten upper bound (100 for a percentage).
    """

    def __init__(
        self,
        *,
        max_digits: int = 28,
        decimal_places: int = 12,
        positive: bool = False,
        at_most: int | None = None,
        **kwargs,
    ):
        self.max_digits = max_digits
        self.decimal_places = decimal_places
        self.positive = positive
        self.at_most = at_most
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> Decimal:
        try:
            return decimal_parse(
                data,
                max_digits=self.max_digits,
                decimal_places=self.decimal_places,
                positive=self.positive,
                at_most=self.at_most,
            )
        except NumberInvalid as exc:
            raise serializers.ValidationError(exc.message) from None

    def to_representation(self, value) -> str | None:
        return decimal_text(value if isinstance(value, Decimal) or value is None else Decimal(str(value)))


class CreditsField(ExactDecimalField):
    """A credit quantity (or a conversion rate): ``numeric(28, 12)``, greater than 0 unless ``positive=False``."""

    def __init__(self, *, positive: bool = True, **kwargs):
        super().__init__(max_digits=28, decimal_places=12, positive=positive, **kwargs)


class WholeNumberField(serializers.IntegerField):
    """A whole number in a JSON body: a JSON integer only, between ``min_value`` (default 0) and ``max_value``
    (default: what an ``integer`` column holds)."""

    def __init__(self, *, min_value: int = 0, max_value: int = INTEGER_COLUMN_MAX, **kwargs):
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)

    def to_internal_value(self, data) -> int:
        try:
            return integer_parse(data)
        except NumberInvalid as exc:
            raise serializers.ValidationError(exc.message) from None


class TextField(serializers.CharField):
    """Text in a JSON body: a JSON string only (DRF's CharField also takes ``5`` and stores ``"5"``), kept as
    sent (no trimming: a length or a blank check then means what the schema says), without NUL characters.
    The schema adds ``pattern: ^[^\\x00]*$`` (core.schema)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class KeyField(serializers.SlugField):
    """A key (ASCII letters, digits, ``-``, ``_``) in a JSON body: a JSON string only, not trimmed."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class FlagField(serializers.BooleanField):
    """A boolean in a JSON body: ``true`` or ``false`` only (DRF's BooleanField also takes ``"yes"``, ``1``)."""

    def to_internal_value(self, data) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class CurrencyField(serializers.ChoiceField):
    """A currency this installation accepts (``settings.CURRENCIES``), as its exact ISO 4217 code."""

    def __init__(self, **kwargs):
        from django.conf import settings

        super().__init__(choices=list(settings.CURRENCIES), **kwargs)

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)
