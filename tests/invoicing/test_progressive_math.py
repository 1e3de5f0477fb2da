"""Pure progressive billing math: threshold levels and credit allocation (hypothesis + the worked example)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from invoicing.progressive_math import credit_allocate, crossing_find, level_highest, level_next

D = Decimal
EXAMPLE = [(D(2), False), (D(5), False), (D(7), False), (D(10), True)]
CENT = D("0.01")


def test_levels_of_the_worked_example():
    # Fixed 2, 5, 7, then the recurring 10 above the highest fixed one: 17, 27, 37, ...
    assert [level_next(EXAMPLE, r) for r in (None, D(2), D(5), D(7), D(17), D(27))] == [2, 5, 7, 17, 27, 37]
    assert level_highest(EXAMPLE, D("1.99")) is None
    assert level_highest(EXAMPLE, D("30.80")) == 27
    assert crossing_find(EXAMPLE, reached=D(7), amount=D("30.80")).first == 17
    assert crossing_find(EXAMPLE, reached=D(2), amount=D("4.40")) is None
    # Only fixed thresholds: nothing after the last one.
    assert level_next([(D(200), False)], D(200)) is None
    # Only a recurring one: every multiple of it.
    assert [level_next([(D(10), True)], r) for r in (None, D(10), D(25))] == [10, 20, 30]


amounts = st.decimals(min_value=0, max_value=10_000, places=2)


@given(reached=st.one_of(st.none(), amounts), amount=amounts)
def test_a_crossing_is_between_the_next_level_and_the_amount(reached, amount):
    crossing = crossing_find(EXAMPLE, reached=reached, amount=amount)
    nxt = level_next(EXAMPLE, reached)
    if crossing is None:
        assert nxt is None or amount < nxt
    else:
        assert crossing.first == nxt and (reached is None or crossing.first > reached)
        assert crossing.first <= crossing.highest <= amount
        # No level between highest and amount: the next level after highest is above the amount.
        assert level_next(EXAMPLE, crossing.highest) > amount


@given(st.lists(st.decimals(min_value=0, max_value=1000, places=2), min_size=1, max_size=8), st.data())
def test_credit_shares_sum_exactly_and_never_exceed_their_line(lines, data):
    total = sum(lines, D(0))
    credit = data.draw(st.decimals(min_value=0, max_value=total, places=2))
    shares = credit_allocate(credit, lines, CENT)
    assert sum(shares, D(0)) == credit
    assert all(D(0) <= share <= line for share, line in zip(shares, lines, strict=True))
