"""Pure coupon math (invoicing.discounts) and the discounted totals (invoicing.totals): examples and properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoicing.discounts import CouponTerms, DiscountLine, discount_allocate, discounts_compute
from invoicing.totals import LineAmount, totals_compute

D = Decimal
VAT20 = (("vat", D("20")),)


def test_design_example_shares_by_largest_remainder():
    # 10.00 over 100 / 50 / 30 (180): exact 5.5555, 2.7777, 1.6666; floors 5.55 + 2.77 + 1.66 = 9.98; the 2 units
    # left go to the largest remainders 0.0077 (line b) and 0.0066 (line c): 5.55 / 2.78 / 1.67.
    shares = discount_allocate(D("10.00"), [("a", D("100.00")), ("b", D("50.00")), ("c", D("30.00"))], "USD")
    assert shares == {"a": D("5.55"), "b": D("2.78"), "c": D("1.67")}


def test_design_example_totals_tax_on_discounted_sum():
    # Subtotal 180.00, discount 10.00, tax 20% x 170.00 = 34.00, total 180 - 10 + 34 = 204.00.
    lines = [DiscountLine(key=i, amount=a) for i, a in enumerate((D("100.00"), D("50.00"), D("30.00")))]
    (take,) = discounts_compute(lines, [CouponTerms(key="launch", kind="fixed", value=D("10.00"))], "USD")
    totals = totals_compute(
        [
            LineAmount(key=i, amount=line.amount, tax_rates=VAT20, discount=take.shares[i])
            for i, line in enumerate(lines)
        ],
        "USD",
    )
    assert (totals.subtotal, totals.discount, totals.tax, totals.total) == (
        D("180.00"),
        D("10.00"),
        D("34.00"),
        D("204.00"),
    )
    # Tax per line on (amount - share): 94.45 x 20% = 18.89, 47.22 -> 9.444, 28.33 -> 5.666: 18.89 + 9.44 + 5.67.
    assert totals.line_tax == {0: D("18.89"), 1: D("9.44"), 2: D("5.67")}


def test_fixed_coupon_is_capped_at_its_lines():
    # A 100.00 coupon on a 60.00 invoice takes 60.00 (the balance then keeps 40.00, services.coupons).
    (take,) = discounts_compute([DiscountLine(key=0, amount=D("60.00"))], [CouponTerms(1, "fixed", D("100.00"))], "USD")
    assert take.amount == D("60.00") and take.shares == {0: D("60.00")} and take.counted


def test_percentage_limited_to_a_plan_and_coupons_in_order():
    # Lines: plan A 50.00, plan B 80.00. 10% on B: 8.00. Then a fixed 100.00 on every line: what is left,
    # 50.00 + 72.00 = 122.00, so 100.00 spread 50/122 and 72/122: 40.9836 -> 40.98, 59.0163 -> 59.01, 1 unit left to
    # the larger remainder (0.0063 on B vs 0.0036 on A): 40.98 / 59.02.
    lines = [DiscountLine(key="a", amount=D("50.00"), plan="A"), DiscountLine(key="b", amount=D("80.00"), plan="B")]
    ten_b = CouponTerms(key=1, kind="percentage", value=D("10"), plans=frozenset({"B"}))
    fixed = CouponTerms(key=2, kind="fixed", value=D("100.00"))
    first, second = discounts_compute(lines, [ten_b, fixed], "USD")
    assert first.amount == D("8.00") and first.shares == {"b": D("8.00")}
    assert second.amount == D("100.00") and second.shares == {"a": D("40.98"), "b": D("59.02")}
    # Only plan A's lines: the B coupon does not touch them and does not count the invoice.
    (none,) = discounts_compute([lines[0]], [ten_b], "USD")
    assert none.amount == 0 and not none.counted and none.shares == {}


def test_zero_decimal_currency():
    # JPY has no minor unit: 1,000 over 3 equal lines -> 333 each, 1 left to the first (ties: earlier line).
    shares = discount_allocate(D("1000"), [(0, D("500")), (1, D("500")), (2, D("500"))], "JPY")
    assert shares == {0: D("334"), 1: D("333"), 2: D("333")}


def test_refuses_more_than_the_lines():
    with pytest.raises(ValueError):
        discount_allocate(D("10.01"), [(0, D("10.00"))], "USD")


_amounts = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
_lines = st.lists(
    st.tuples(st.decimals(min_value=D("-50"), max_value=D("100000"), places=2), st.sampled_from(["A", "B", None])),
    min_size=1,
    max_size=12,
)
_coupons = st.lists(
    st.one_of(
        st.tuples(st.just("fixed"), _amounts, st.sampled_from([(), ("A",), ("B",), ("A", "B")])),
        st.tuples(
            st.just("percentage"),
            st.decimals(min_value=D("0.0001"), max_value=D("100"), places=4),
            st.sampled_from([(), ("A",), ("B",)]),
        ),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(_lines, _coupons)
def test_line_discounts_add_up_and_never_exceed_a_line(raw_lines, raw_coupons):
    lines = [DiscountLine(key=i, amount=amount, plan=plan) for i, (amount, plan) in enumerate(raw_lines)]
    coupons = [CouponTerms(key=i, kind=k, value=v, plans=frozenset(p)) for i, (k, v, p) in enumerate(raw_coupons)]
    takes = discounts_compute(lines, coupons, "USD")
    per_line = {line.key: D(0) for line in lines}
    for take, coupon in zip(takes, coupons, strict=True):
        assert sum(take.shares.values(), D(0)) == take.amount
        assert all(share >= 0 and share == share.quantize(D("0.01")) for share in take.shares.values())
        if coupon.kind == "fixed":
            assert take.amount <= coupon.value
        for key, share in take.shares.items():
            if coupon.plans:
                assert lines[key].plan in coupon.plans
            per_line[key] += share
    for line in lines:
        # Never more than the line (and a zero or negative line takes no discount).
        assert per_line[line.key] <= max(line.amount, D(0))
    # The invoice's discount is the sum of the lines' discounts, and the discounted totals keep their invariants.
    totals = totals_compute(
        [LineAmount(key=line.key, amount=line.amount, tax_rates=VAT20, discount=per_line[line.key]) for line in lines],
        "USD",
    )
    assert totals.discount == sum((t.amount for t in takes), D(0)) == sum(per_line.values(), D(0))
    assert totals.total == totals.subtotal - totals.discount + totals.tax
    assert sum(totals.line_tax.values(), D(0)) == totals.tax


@settings(max_examples=200, deadline=None)
@given(_amounts, st.lists(_amounts, min_size=1, max_size=10), st.sampled_from(["USD", "JPY", "KWD"]))
def test_allocation_is_exact_and_bounded(amount, weights, currency):
    from catalog.pricing import quantize_minor

    weights = [(i, quantize_minor(w, currency)) for i, w in enumerate(weights)]
    weights = [(i, w) for i, w in weights if w > 0] or [(0, D(1))]
    total = sum((w for _i, w in weights), D(0))
    amount = min(quantize_minor(amount, currency), total)
    shares = discount_allocate(amount, weights, currency)
    assert sum(shares.values(), D(0)) == amount
    assert all(0 <= shares[i] <= w for i, w in weights)
