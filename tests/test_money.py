"""The shared decimal texts: the API's ``decimal_text`` and the admin's ``format_decimal``."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from core.money import decimal_text, format_decimal

decimals = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**15), max_value=10**15, places=12)


def test_decimal_text_drops_trailing_zeros_and_exponents():
    assert decimal_text(None) is None
    assert decimal_text(Decimal("2000.000000000000")) == "2000"  # normalize gives 2E+3; quantized back to 2000
    assert decimal_text(Decimal("2.500")) == "2.5"
    assert decimal_text(Decimal("0.000002000000")) == "0.000002"
    assert decimal_text(Decimal("-0.000")) == "0"  # no negative zero on the wire
    assert format_decimal(Decimal("10000.000000000000")) == "10,000"
    assert format_decimal(None) == "—"


@given(decimals)
def test_decimal_text_is_exact_and_plain(value):
    text = decimal_text(value)
    assert Decimal(text) == value
    assert "E" not in text and "," not in text
    assert not ("." in text and text.endswith("0"))
    assert Decimal(format_decimal(value).replace(",", "")) == value
