"""Pure invoice totals: DESIGN.md rounding rules plus hypothesis properties (no DB, no Django)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.pricing import quantize_minor
from invoicing.totals import LineAmount, TaxAmount, Totals, totals_compute

D = Decimal
FAST = settings(max_examples=200, deadline=None)
VAT = ("VAT", D("20"))


def test_single_line_20_percent() -> None:
    # 124.00 × 20 / 100 = 24.80; total 124.00 + 24.80 = 148.80
    totals = totals_compute([LineAmount(key=0, amount=D("124.00"), tax_rates=(VAT,))], "USD")
    assert totals == Totals(
        subtotal=D("124.00"),
        taxes=(TaxAmount(code="VAT", percentage=D("20"), taxable=D("124.00"), amount=D("24.80")),),
        tax=D("24.80"),
        total=D("148.80"),
        line_tax={0: D("24.80")},
    )
    assert str(totals.total) == "148.80"


def test_design_example_rounded_lines_no_penny_drift() -> None:
    # DESIGN.md: six lines of $0.004 and two of $0.01 with 40% tax.
    # Lines are rounded first: 0.004 -> 0.00 (six times), 0.01 stays (twice).
    # subtotal 0.00 × 6 + 0.01 × 2 = 0.02; tax once on the sum: 0.02 × 40% = 0.008 -> 0.01
    # total 0.02 + 0.01 = 0.03
    rate = ("TAX", D("40"))
    amounts = [quantize_minor(D("0.004"), "USD")] * 6 + [D("0.01")] * 2
    assert amounts[0] == D("0.00")
    lines = [LineAmount(key=i, amount=a, tax_rates=(rate,)) for i, a in enumerate(amounts)]
    totals = totals_compute(lines, "USD")
    assert totals.subtotal == D("0.02")
    assert totals.tax == D("0.01")
    assert totals.total == D("0.03")
    assert sum(totals.line_tax.values()) == D("0.01")
    # exact shares: 0.004 for each 0.01 line (tie) -> the earlier one gets the cent
    assert totals.line_tax[6] == D("0.01")
    assert totals.line_tax[7] == D("0.00")


def test_tax_once_per_rate_not_per_line() -> None:
    # three lines of 0.05 at 10%: per-line tax would be 0.005 -> 0.01 each = 0.03 (drift);
    # once on the sum: 0.15 × 10% = 0.015 -> 0.02
    lines = [LineAmount(key=k, amount=D("0.05"), tax_rates=(("GST", D("10")),)) for k in "abc"]
    totals = totals_compute(lines, "USD")
    assert totals.tax == D("0.02")
    assert totals.total == D("0.17")
    # largest remainder: shares 0.005 each floor to 0.00, 2 cents go to the first two (ties by order)
    assert totals.line_tax == {"a": D("0.01"), "b": D("0.01"), "c": D("0.00")}


def test_two_rates_on_different_lines() -> None:
    # VAT 20% on 100.00 + 50.00 = 150.00 -> 30.00
    # reduced 5% on 19.99 -> 0.9995 -> 1.00
    # untaxed line 10.00
    # subtotal 100.00 + 50.00 + 19.99 + 10.00 = 179.99; tax 30.00 + 1.00 = 31.00; total 210.99
    lines = [
        LineAmount(key="seat", amount=D("100.00"), tax_rates=(VAT,)),
        LineAmount(key="api", amount=D("50.00"), tax_rates=(VAT,)),
        LineAmount(key="book", amount=D("19.99"), tax_rates=(("REDUCED", D("5")),)),
        LineAmount(key="fee", amount=D("10.00")),
    ]
    totals = totals_compute(lines, "EUR")
    assert totals.subtotal == D("179.99")
    assert totals.taxes == (
        TaxAmount(code="VAT", percentage=D("20"), taxable=D("150.00"), amount=D("30.00")),
        TaxAmount(code="REDUCED", percentage=D("5"), taxable=D("19.99"), amount=D("1.00")),
    )
    assert totals.tax == D("31.00")
    assert totals.total == D("210.99")
    assert totals.line_tax == {"seat": D("20.00"), "api": D("10.00"), "book": D("1.00"), "fee": D("0.00")}


def test_two_rates_on_one_line() -> None:
    # 10.00 at state 6.25% = 0.625 -> 0.63 and city 2% = 0.20; tax 0.83, total 10.83
    lines = [LineAmount(key=1, amount=D("10.00"), tax_rates=(("STATE", D("6.25")), ("CITY", D("2"))))]
    totals = totals_compute(lines, "USD")
    assert [t.amount for t in totals.taxes] == [D("0.63"), D("0.20")]
    assert totals.tax == D("0.83")
    assert totals.total == D("10.83")
    assert totals.line_tax == {1: D("0.83")}


def test_jpy_and_kwd_minor_units() -> None:
    # JPY: 1,001 × 10% = 100.1 -> 100; total 1,101
    jpy = totals_compute([LineAmount(key=0, amount=D("1001"), tax_rates=(("JCT", D("10")),))], "JPY")
    assert (jpy.tax, jpy.total) == (D("100"), D("1101"))
    assert str(jpy.total) == "1101"
    # KWD: 1.235 × 5% = 0.06175 -> 0.062; total 1.297
    kwd = totals_compute([LineAmount(key=0, amount=D("1.235"), tax_rates=(("VAT", D("5")),))], "KWD")
    assert (kwd.tax, kwd.total) == (D("0.062"), D("1.297"))


def test_empty_invoice() -> None:
    totals = totals_compute([], "USD")
    assert (totals.subtotal, totals.tax, totals.total, totals.taxes, totals.line_tax) == (
        D("0.00"),
        D("0.00"),
        D("0.00"),
        (),
        {},
    )


def test_rejects_unquantized_line() -> None:
    with pytest.raises(ValueError, match="not quantized"):
        totals_compute([LineAmount(key=0, amount=D("0.004"))], "USD")


def test_rejects_duplicate_key_and_duplicate_rate() -> None:
    with pytest.raises(ValueError, match="duplicate line key"):
        totals_compute([LineAmount(key=0, amount=D("1.00")), LineAmount(key=0, amount=D("2.00"))], "USD")
    with pytest.raises(ValueError, match="listed twice"):
        totals_compute([LineAmount(key=0, amount=D("1.00"), tax_rates=(VAT, VAT))], "USD")


def test_rejects_float_amount() -> None:
    with pytest.raises(ValueError):
        totals_compute([LineAmount(key=0, amount=1.5)], "USD")  # type: ignore[arg-type]


# --- properties --------------------------------------------------------------------------------
# Decimals from integers: cents (or fils/yen) scaled by the currency's exponent; rates in 0.01 %.

RATES = [("VAT", D("20")), ("GST", D("7.5")), ("CITY", D("0.25")), ("ZERO", D("0")), ("HIGH", D("33.33"))]


@st.composite
def invoices(draw: st.DrawFn) -> tuple[list[LineAmount], str]:
    currency = draw(st.sampled_from(["USD", "JPY", "KWD"]))
    exponent = {"USD": 2, "JPY": 0, "KWD": 3}[currency]
    count = draw(st.integers(0, 12))
    lines = []
    for index in range(count):
        minor_units = draw(st.integers(-10_000, 10_000_000))
        rates = tuple(draw(st.lists(st.sampled_from(RATES), max_size=3, unique=True)))
        lines.append(LineAmount(key=index, amount=Decimal(minor_units).scaleb(-exponent), tax_rates=rates))
    return lines, currency


@FAST
@given(invoices())
def test_totals_invariants(invoice: tuple[list[LineAmount], str]) -> None:
    lines, currency = invoice
    totals = totals_compute(lines, currency)
    assert totals.subtotal == sum((line.amount for line in lines), Decimal(0))
    assert totals.total == totals.subtotal + totals.tax
    assert totals.tax == sum((t.amount for t in totals.taxes), Decimal(0))
    assert sum(totals.line_tax.values(), Decimal(0)) == totals.tax
    assert set(totals.line_tax) == {line.key for line in lines}
    for value in (totals.subtotal, totals.tax, totals.total, *totals.line_tax.values()):
        assert quantize_minor(value, currency) == value


@FAST
@given(invoices())
def test_each_rate_computed_once_on_its_lines(invoice: tuple[list[LineAmount], str]) -> None:
    lines, currency = invoice
    totals = totals_compute(lines, currency)
    for tax in totals.taxes:
        applied = [line for line in lines if (tax.code, tax.percentage) in line.tax_rates]
        taxable = sum((line.amount for line in applied), Decimal(0))
        assert tax.taxable == taxable
        assert tax.amount == quantize_minor(taxable * tax.percentage / 100, currency)


@FAST
@given(invoices())
def test_tax_shares_sum_to_each_rate_and_stay_close(invoice: tuple[list[LineAmount], str]) -> None:
    lines, currency = invoice
    totals = totals_compute(lines, currency)
    minor = quantize_minor(Decimal(1), currency).as_tuple().exponent
    unit = Decimal(1).scaleb(minor)  # type: ignore[arg-type]
    # with one rate per line, each line's share is its exact tax floored or bumped by one minor unit
    single = [line for line in lines if len(line.tax_rates) <= 1]
    for line in single:
        exact = line.amount * line.tax_rates[0][1] / 100 if line.tax_rates else Decimal(0)
        assert abs(totals.line_tax[line.key] - exact) < unit
