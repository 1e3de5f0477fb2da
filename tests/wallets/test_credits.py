"""Tests for the pure credit arithmetic in ``wallets.credits`` (no Django, no database).

Decimals are always built from integers scaled by powers of ten, never from floats.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from wallets.credits import (
    Lot,
    Payer,
    Payment,
    RolloverSplit,
    Take,
    consumption_plan,
    credits_applicable,
    credits_to_money,
    expired_lots,
    invoice_payment_plan,
    lots_order_key,
    lots_ordered,
    money_to_credits,
    rollover_split,
)

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=UTC)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def lot(
    lot_id: int | str,
    remaining: Decimal | int,
    *,
    priority: int = 1,
    expires_at: datetime | None = None,
    created_at: datetime = T0,
    held: Decimal = D(0),
) -> Lot:
    return Lot(
        id=lot_id,
        remaining=D(remaining),
        priority=priority,
        expires_at=expires_at,
        created_at=created_at,
        held=held,
    )


def remaining_after(lots: list[Lot], takes: list[Take]) -> dict[int | str, Decimal]:
    taken: dict[int | str, Decimal] = {}
    for take in takes:
        taken[take.lot_id] = taken.get(take.lot_id, D(0)) + take.credits
    return {item.id: item.remaining - taken.get(item.id, D(0)) for item in lots}


# --------------------------------------------------------------------------------------------------
# A tiny wallet simulator: an append-only ledger of signed entries plus the lots, changed only
# through the functions under test.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    kind: str  # grant | consume | expire | rollover
    lot_id: int | str
    credits: Decimal  # signed: + adds credits to the lot, - removes them


@dataclass
class WalletSim:
    lots: dict[int | str, Lot] = field(default_factory=dict)
    kinds: dict[int | str, str] = field(default_factory=dict)  # lot id -> grant kind (plan, paid, ...)
    ledger: list[Entry] = field(default_factory=list)
    holds: dict[int, list[Take]] = field(default_factory=dict)  # hold id -> credits reserved per lot
    next_id: int = 1

    def balance(self) -> Decimal:
        return sum((entry.credits for entry in self.ledger), D(0))

    def lots_total(self) -> Decimal:
        return sum((item.remaining for item in self.lots.values()), D(0))

    def lot_ledger_total(self, lot_id: int | str) -> Decimal:
        return sum((entry.credits for entry in self.ledger if entry.lot_id == lot_id), D(0))

    def grant(
        self,
        credits: Decimal,
        *,
        kind: str = "paid",
        priority: int = 1,
        expires_at: datetime | None = None,
        created_at: datetime = T0,
        ledger_kind: str = "grant",
    ) -> int:
        lot_id = self.next_id
        self.next_id += 1
        self.lots[lot_id] = Lot(
            id=lot_id, remaining=credits, priority=priority, expires_at=expires_at, created_at=created_at
        )
        self.kinds[lot_id] = kind
        self.ledger.append(Entry(ledger_kind, lot_id, credits))
        return lot_id

    def _remove(self, takes: list[Take], kind: str) -> None:
        for take in takes:
            current = self.lots[take.lot_id]
            # Lot.__post_init__ rejects a negative remaining, so over-consumption would raise here.
            self.lots[take.lot_id] = replace(current, remaining=current.remaining - take.credits)
            self.ledger.append(Entry(kind, take.lot_id, -take.credits))

    def consume(self, credits: Decimal) -> list[Take]:
        takes = consumption_plan(self.lots.values(), credits)
        self._remove(takes, "consume")
        return takes

    def expire(self, now: datetime) -> list[Take]:
        takes = expired_lots(self.lots.values(), now)
        self._remove(takes, "expire")
        return takes

    def period_end(self, cap: Decimal | None) -> RolloverSplit:
        """Roll the plan credits over: carried credits move to new `rollover` lots that keep the
        original lot's priority, expiry and age; the rest expires."""
        plan_lots = [item for item in self.lots.values() if self.kinds[item.id] in ("plan", "rollover")]
        split = rollover_split(plan_lots, cap)
        self._remove(split.expire, "expire")
        for take in split.carry:
            source = self.lots[take.lot_id]
            self._remove([take], "rollover")
            self.grant(
                take.credits,
                kind="rollover",
                priority=source.priority,
                expires_at=source.expires_at,
                created_at=source.created_at,
                ledger_kind="rollover",
            )
        return split

    def _move_held(self, takes: list[Take], sign: int) -> None:
        for take in takes:
            current = self.lots[take.lot_id]
            # Lot.__post_init__ rejects held > remaining or held < 0, so a bad reservation raises here.
            self.lots[take.lot_id] = replace(current, held=current.held + sign * take.credits)

    def hold(self, credits: Decimal) -> int:
        """Reserve credits for a draft (no ledger row): planned like a spend, over free credits only."""
        takes = consumption_plan(self.lots.values(), credits)
        self._move_held(takes, +1)
        hold_id = self.next_id
        self.next_id += 1
        self.holds[hold_id] = takes
        return hold_id

    def release(self, hold_id: int) -> None:
        """Give a reservation back (draft recalculated): no ledger row."""
        self._move_held(self.holds.pop(hold_id), -1)

    def settle(self, hold_id: int) -> None:
        """The draft is finalized: the held credits become one ``consume`` row per lot."""
        takes = self.holds.pop(hold_id)
        self._move_held(takes, -1)
        self._remove(takes, "consume")

    def held_total(self) -> Decimal:
        return sum((item.held for item in self.lots.values()), D(0))


# --------------------------------------------------------------------------------------------------
# Worked examples
# --------------------------------------------------------------------------------------------------


def test_charge_of_80_consumes_priority_then_oldest() -> None:
    # A: 20 at priority 1; B, C, D: 25, 25, 30 at priority 2, created oldest first.
    lots = [
        lot("D", 30, priority=2, created_at=day(3)),
        lot("B", 25, priority=2, created_at=day(1)),
        lot("A", 20, priority=1, created_at=day(5)),
        lot("C", 25, priority=2, created_at=day(2)),
    ]
    assert [item.id for item in lots_ordered(lots)] == ["A", "B", "C", "D"]
    plan = consumption_plan(lots, D(80))
    # 80 - 20 (A, priority 1) = 60; 60 - 25 (B) = 35; 35 - 25 (C) = 10; D gives 10 of 30 -> 20 left.
    assert plan == [Take("A", D(20)), Take("B", D(25)), Take("C", D(25)), Take("D", D(10))]
    assert remaining_after(lots, plan) == {"A": 0, "B": 0, "C": 0, "D": 20}


def test_same_priority_soonest_expiry_first_never_expiring_last() -> None:
    lots = [
        lot("never", 20, created_at=day(-30)),  # oldest, but never expires -> last
        lot("march", 20, expires_at=day(60)),
        lot("february", 20, expires_at=day(31)),
    ]
    assert [item.id for item in lots_ordered(lots)] == ["february", "march", "never"]
    # 30 credits: february gives all 20, march gives the other 10; never is untouched.
    assert consumption_plan(lots, D(30)) == [Take("february", D(20)), Take("march", D(10))]
    # 50 credits: 20 + 20 + 10 from never.
    assert consumption_plan(lots, D(50))[-1] == Take("never", D(10))


def test_order_ties_fall_back_to_created_then_id() -> None:
    lots = [
        lot("b", 1, expires_at=day(9), created_at=day(1)),
        lot(2, 1, expires_at=day(9), created_at=day(0)),
        lot("a", 1, expires_at=day(9), created_at=day(1)),
        lot(1, 1, expires_at=day(9), created_at=day(1)),
    ]
    # day(0) oldest first; the three day(1) lots by id, int ids before str ids.
    assert [item.id for item in lots_ordered(lots)] == [2, 1, "a", "b"]
    assert lots_order_key(lots[1]) < lots_order_key(lots[3])


def test_plan_edge_cases() -> None:
    lots = [lot(1, 0), lot(2, D("1.5")), lot(3, 2)]
    assert consumption_plan(lots, D(0)) == []
    # The empty lot 1 is skipped; asking 10 of a 3.5 balance takes everything (1.5 + 2 = 3.5).
    assert consumption_plan(lots, D(10)) == [Take(2, D("1.5")), Take(3, D(2))]
    assert consumption_plan([], D(5)) == []
    with pytest.raises(ValueError):
        consumption_plan(lots, D(-1))
    with pytest.raises(ValueError):
        consumption_plan([lot(1, 1), lot(1, 2)], D(1))
    with pytest.raises(TypeError):
        consumption_plan(lots, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        lot(9, D(-1))
    with pytest.raises(ValueError):
        lot(9, D("0.0000000000001"))  # 13 decimal places
    assert lot(9, D("1.0000000000000")).remaining == 1  # trailing zeros beyond 12 dp are fine


def test_expired_lots() -> None:
    lots = [
        lot("past", 5, expires_at=day(-1)),
        lot("exactly-now", 7, expires_at=day(0)),  # expires_at <= now counts as expired
        lot("future", 9, expires_at=day(1)),
        lot("empty", 0, expires_at=day(-5)),  # nothing left to expire
        lot("never", 11),
    ]
    assert expired_lots(lots, day(0)) == [Take("past", D(5)), Take("exactly-now", D(7))]


def test_rollover_split_examples() -> None:
    old = lot("rollover", 1000, expires_at=day(335), created_at=day(0))
    new = lot("grant", 2000, expires_at=day(366), created_at=day(31))
    # unused = 1000 + 2000 = 3000; cap 2000 -> the longer-lived new grant carries whole, old expires.
    split = rollover_split([old, new], D(2000))
    assert split.carry == [Take("grant", D(2000))]
    assert split.expire == [Take("rollover", D(1000))]
    # cap 2500: 2000 from the new grant + 500 from the old; 500 of the old expires.
    split = rollover_split([old, new], D(2500))
    assert split.carry == [Take("grant", D(2000)), Take("rollover", D(500))]
    assert split.expire == [Take("rollover", D(500))]
    assert rollover_split([old, new], None) == RolloverSplit(
        carry=[Take("grant", D(2000)), Take("rollover", D(1000))], expire=[]
    )
    assert rollover_split([old, new], D(0)) == RolloverSplit(
        carry=[], expire=[Take("rollover", D(1000)), Take("grant", D(2000))]
    )
    # A never-expiring lot is the longest-lived; on equal expiry the newest is carried first.
    forever = lot("forever", 10, expires_at=None, created_at=day(-100))
    twin_old = lot("twin-old", 10, expires_at=day(50), created_at=day(1))
    twin_new = lot("twin-new", 10, expires_at=day(50), created_at=day(2))
    split = rollover_split([twin_old, twin_new, forever], D(25))
    assert split.carry == [Take("forever", D(10)), Take("twin-new", D(10)), Take("twin-old", D(5))]
    assert split.expire == [Take("twin-old", D(5))]
    with pytest.raises(ValueError):
        rollover_split([old], D(-1))


def test_clay_rollover_three_months() -> None:
    # Clay's Starter plan: 2,000 credits a month, each grant expiring a year after it is granted,
    # rollover cap 2,000.
    cap = D(2000)
    wallet = WalletSim()
    months = [datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4)]

    def grant_month(start: datetime) -> int:
        return wallet.grant(D(2000), kind="plan", expires_at=start + timedelta(days=365), created_at=start)

    jan = grant_month(months[0])
    wallet.consume(D(1000))  # month 1 uses 1,000: 2000 - 1000 = 1000 unused
    assert wallet.balance() == 1000
    # End of month 1: unused 1000 <= cap 2000 -> all 1000 carries.
    split = wallet.period_end(cap)
    assert split == RolloverSplit(carry=[Take(jan, D(1000))], expire=[])
    jan_rolled = wallet.next_id - 1  # the rollover lot holding January's 1000
    assert wallet.expire(months[1]) == []
    feb = grant_month(months[1])
    assert wallet.balance() == 3000  # month 2 holds 1000 + 2000 = 3000

    # End of month 2 (unused): 3000 unused, carry min(3000, 2000) = 2000 -- February's grant, which
    # lives longest -- and January's 1000 leftover expires.
    split = wallet.period_end(cap)
    assert split == RolloverSplit(carry=[Take(feb, D(2000))], expire=[Take(jan_rolled, D(1000))])
    grant_month(months[2])
    assert wallet.balance() == 4000  # month 3 holds 2000 + 2000 = 4000

    # End of month 3 (unused): 4000 unused, carry 2000, expire 2000 -> month 4 still holds 4000.
    split = wallet.period_end(cap)
    assert sum(take.credits for take in split.carry) == 2000
    assert sum(take.credits for take in split.expire) == 2000
    grant_month(months[3])
    assert wallet.balance() == 4000
    assert wallet.lots_total() == 4000
    # Carried credits keep their grant's original expiry: March's carried 2000 still expire a year after
    # March 1, next to April's fresh grant.
    expiries = sorted(item.expires_at for item in wallet.lots.values() if item.remaining > 0 and item.expires_at)
    assert expiries == [months[2] + timedelta(days=365), months[3] + timedelta(days=365)]
    kinds = [entry.kind for entry in wallet.ledger]
    assert kinds.count("expire") == 2 and kinds.count("grant") == 4


def test_rate_example() -> None:
    # 2000 credits at 0.05 per credit are worth 2000 * 0.05 = 100.00 < 180.00 payable:
    # the wallet pays 100.00, which costs 100.00 / 0.05 = 2000 credits.
    money, credits = credits_applicable(D("180.00"), D(2000), D("0.05"), 2)
    assert (money, credits) == (D("100.00"), D(2000))
    assert str(money) == "100.00"


def test_rate_rounding_examples() -> None:
    # Payable below the wallet's worth: 42.37 / 0.05 = 847.4 credits.
    assert credits_applicable(D("42.37"), D(2000), D("0.05"), 2) == (D("42.37"), D("847.4"))
    # 3 credits at 0.333 = 0.999 -> rounded DOWN to 0.99; 0.99 / 0.333 = 2.972972... -> UP to 12 dp.
    money, credits = credits_applicable(D(10), D(3), D("0.333"), 2)
    assert money == D("0.99")
    assert credits == D("2.972972972973")
    assert credits * D("0.333") >= money and credits <= 3
    # JPY (0 decimals): 10.5 credits at 7 = 73.5 -> 73; 73 / 7 = 10.428571428571428... -> 10.428571428572.
    assert credits_applicable(D(1000), D("10.5"), D(7), 0) == (D(73), D("10.428571428572"))
    # Worth less than one minor unit pays nothing and costs nothing.
    assert credits_applicable(D(5), D("0.1"), D("0.05"), 2) == (D("0.00"), D(0))
    assert credits_to_money(D(20), D("0.05")) == D("1.00")
    assert money_to_credits(D("1.00"), D("0.05")) == D(20)
    assert money_to_credits(D(1), D(3)) == D("0." + "3" * 40)  # 40 significant digits
    with pytest.raises(ValueError):
        credits_applicable(D(1), D(1), D(0), 2)
    with pytest.raises(ValueError):
        credits_applicable(D(-1), D(1), D(1), 2)
    with pytest.raises(TypeError):
        credits_to_money(D(1), 0.05)  # type: ignore[arg-type]


def test_held_credits_are_reserved_not_spent() -> None:
    # Lago's case: 10 credits, a 6.00 draft at rate 1 holds 6. The ledger does not move (balance 10); only
    # the 4 free credits may be spent, expire or roll over; finalizing books one consume of 6 (balance 4).
    wallet = WalletSim()
    lot_id = wallet.grant(D(10), expires_at=day(3))
    hold_id = wallet.hold(D(6))
    assert (wallet.balance(), wallet.held_total(), wallet.lots[lot_id].free) == (D(10), D(6), D(4))
    assert consumption_plan(wallet.lots.values(), D(100)) == [Take(lot_id, D(4))]
    assert expired_lots(wallet.lots.values(), day(3)) == [Take(lot_id, D(4))]
    assert rollover_split(wallet.lots.values(), D(1)) == RolloverSplit(
        carry=[Take(lot_id, D(1))], expire=[Take(lot_id, D(3))]
    )
    wallet.settle(hold_id)
    assert (wallet.balance(), wallet.held_total()) == (D(4), D(0))
    assert [entry.kind for entry in wallet.ledger] == ["grant", "consume"]


def test_held_lot_validation() -> None:
    with pytest.raises(ValueError):
        lot(1, 5, held=D(6))  # more held than the lot holds
    with pytest.raises(ValueError):
        lot(1, 5, held=D(-1))
    assert lot(1, 5, held=D(5)).free == 0


# --------------------------------------------------------------------------------------------------
# Hypothesis strategies (integers scaled by powers of ten; never floats)
# --------------------------------------------------------------------------------------------------


def scaled(max_int: int, max_dp: int, min_int: int = 0) -> st.SearchStrategy[Decimal]:
    return st.builds(lambda n, dp: D(n).scaleb(-dp), st.integers(min_int, max_int), st.integers(0, max_dp))


credit_amounts = st.one_of(scaled(100, 0), scaled(10**6, 3), scaled(10**9, 12))
positive_rates = scaled(10**6, 6, min_int=1)
datetimes = st.integers(-5, 5).map(day)


@st.composite
def lot_lists(draw: st.DrawFn, max_size: int = 8) -> list[Lot]:
    size = draw(st.integers(0, max_size))
    lots = []
    for index in range(size):
        lots.append(
            Lot(
                id=draw(st.sampled_from([index, f"lot-{index}"])),  # unique, mixed int/str ids
                remaining=draw(st.one_of(st.just(D(0)), credit_amounts)),
                priority=draw(st.integers(0, 3)),
                expires_at=draw(st.one_of(st.none(), datetimes)),
                created_at=draw(datetimes),
            )
        )
    return lots


@st.composite
def held_lot_lists(draw: st.DrawFn, max_size: int = 8) -> list[Lot]:
    """Lots of which some hold part (0..100 %) of their credits for draft invoices."""
    lots = draw(lot_lists(max_size))
    held = []
    for item in lots:
        percent = draw(st.sampled_from([0, 0, 25, 50, 99, 100]))
        share = (item.remaining * percent / 100).quantize(D("1e-12"), rounding=ROUND_DOWN)
        held.append(replace(item, held=share))
    return held


@st.composite
def amount_for(draw: st.DrawFn, total: Decimal) -> Decimal:
    """Either any amount, or a fraction (0..120 %) of the balance, kept to 12 dp."""
    if draw(st.booleans()):
        return draw(credit_amounts)
    percent = draw(st.integers(0, 120))
    return (total * percent / 100).quantize(D("1e-12"), rounding=ROUND_DOWN)


def id_cmp(a: Lot, b: Lot) -> int:
    """Ids ascending, int ids before str ids."""
    if isinstance(a.id, str) != isinstance(b.id, str):
        return 1 if isinstance(a.id, str) else -1
    return (a.id > b.id) - (a.id < b.id)  # type: ignore[operator]


def reference_cmp(a: Lot, b: Lot) -> int:
    """Independent statement of the consumption order, as a comparator."""

    def cmp(x: object, y: object) -> int:
        return (x > y) - (x < y)  # type: ignore[operator]

    if a.priority != b.priority:
        return cmp(a.priority, b.priority)
    if a.expires_at != b.expires_at:
        if a.expires_at is None:
            return 1
        if b.expires_at is None:
            return -1
        return cmp(a.expires_at, b.expires_at)
    if a.created_at != b.created_at:
        return cmp(a.created_at, b.created_at)
    return id_cmp(a, b)


def carry_first_cmp(a: Lot, b: Lot) -> int:
    """Independent statement of the rollover order: longest-lived first, then newest first."""
    if a.expires_at != b.expires_at:
        if a.expires_at is None:
            return -1
        if b.expires_at is None:
            return 1
        return -1 if a.expires_at > b.expires_at else 1
    if a.created_at != b.created_at:
        return -1 if a.created_at > b.created_at else 1
    return -id_cmp(a, b)  # highest id first (priority plays no part in rollover)


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=st.data(), lots=lot_lists())
def test_plan_never_overconsumes_and_takes_min_of_amount_and_balance(data: st.DataObject, lots: list[Lot]) -> None:
    total = sum((item.remaining for item in lots), D(0))
    amount = data.draw(amount_for(total))
    plan = consumption_plan(lots, amount)
    by_id = {item.id: item for item in lots}
    assert len({take.lot_id for take in plan}) == len(plan)  # each lot at most once
    for take in plan:
        assert 0 < take.credits <= by_id[take.lot_id].remaining
    assert sum((take.credits for take in plan), D(0)) == min(amount, total)
    assert all(value >= 0 for value in remaining_after(lots, plan).values())


@PROPERTY_SETTINGS
@given(data=st.data(), lots=lot_lists())
def test_plan_respects_order(data: st.DataObject, lots: list[Lot]) -> None:
    total = sum((item.remaining for item in lots), D(0))
    plan = consumption_plan(lots, data.draw(amount_for(total)))
    expected_order = sorted(lots, key=functools.cmp_to_key(reference_cmp))
    assert lots_ordered(lots) == expected_order
    nonempty = [item for item in expected_order if item.remaining > 0]
    # The takes walk the non-empty lots in order; every lot before the last touched one is exhausted.
    assert [take.lot_id for take in plan] == [item.id for item in nonempty[: len(plan)]]
    for take, item in zip(plan[:-1], nonempty, strict=False):
        assert take.credits == item.remaining


@PROPERTY_SETTINGS
@given(data=st.data(), lots=lot_lists())
def test_order_does_not_depend_on_input_order(data: st.DataObject, lots: list[Lot]) -> None:
    shuffled = data.draw(st.permutations(lots))
    assert lots_ordered(shuffled) == lots_ordered(lots)
    amount = data.draw(credit_amounts)
    assert consumption_plan(shuffled, amount) == consumption_plan(lots, amount)


@PROPERTY_SETTINGS
@given(lots=lot_lists(), cap=st.one_of(st.none(), st.just(D(0)), credit_amounts))
def test_rollover_accounts_for_every_credit(lots: list[Lot], cap: Decimal | None) -> None:
    split = rollover_split(lots, cap)
    unused = sum((item.remaining for item in lots), D(0))
    carried = sum((take.credits for take in split.carry), D(0))
    expired = sum((take.credits for take in split.expire), D(0))
    assert carried + expired == unused
    assert carried == (unused if cap is None else min(unused, cap))
    assert all(take.credits > 0 for take in split.carry + split.expire)
    # Per lot: carry + expire == remaining.
    per_lot = {item.id: D(0) for item in lots}
    for take in split.carry + split.expire:
        per_lot[take.lot_id] += take.credits
    assert per_lot == {item.id: item.remaining for item in lots}
    # The longest-lived credits carry first: walking the lots in carry order, every lot before the
    # last carried one is carried whole.
    nonempty = [item for item in sorted(lots, key=functools.cmp_to_key(carry_first_cmp)) if item.remaining > 0]
    assert [take.lot_id for take in split.carry] == [item.id for item in nonempty[: len(split.carry)]]
    for take, item in zip(split.carry[:-1], nonempty, strict=False):
        assert take.credits == item.remaining


@PROPERTY_SETTINGS
@given(lots=lot_lists(), now=datetimes)
def test_expired_lots_property(lots: list[Lot], now: datetime) -> None:
    takes = expired_lots(lots, now)
    expected = {
        item.id: item.remaining
        for item in lots
        if item.expires_at is not None and item.expires_at <= now and item.remaining > 0
    }
    assert {take.lot_id: take.credits for take in takes} == expected
    assert len(takes) == len(expected)


@PROPERTY_SETTINGS
@given(
    payable=scaled(10**8, 2),
    balance=credit_amounts,
    rate=positive_rates,
    minor_exponent=st.sampled_from([0, 2, 3]),
)
def test_credits_applicable_properties(payable: Decimal, balance: Decimal, rate: Decimal, minor_exponent: int) -> None:
    money, credits = credits_applicable(payable, balance, rate, minor_exponent)
    minor_unit = D(1).scaleb(-minor_exponent)
    worth = balance * rate  # exact at these sizes under the default 28-digit context
    assert 0 <= money <= min(payable, worth)
    assert money == money.quantize(minor_unit)  # whole minor units
    assert money + minor_unit > min(payable, worth)  # rounded down by less than one minor unit
    assert 0 <= credits <= balance
    assert credits == credits.quantize(D("1e-12"))  # storable with 12 dp
    assert credits * rate >= money  # the credits burned are worth at least the money paid
    assert (credits - D("1e-12")) * rate < money or money == 0  # ...and not one 1e-12 credit more


def test_invoice_payment_plan_usage_only_wallet_pays_first_then_all_lines_wallet() -> None:
    # Lines: fixed $50 + $10 tax, usage $30 + $6 tax: payable $96.00, usage $36.00. The usage-only wallet
    # (rate 1, 1,000 credits) pays min(36, 96) = $36.00 for 36 credits; the all-lines wallet (rate 0.5, 100
    # credits = $50) pays min(96 - 36 = 60, 50) = $50.00 for 50 / 0.5 = 100 credits; $10.00 stays due.
    payers = [
        Payer(id="usage", usage_only=True, available=D(1000), rate=D(1)),
        Payer(id="all", usage_only=False, available=D(100), rate=D("0.5")),
    ]
    assert invoice_payment_plan(payers, D("96.00"), D("36.00"), 2) == [
        Payment(payer_id="usage", money=D("36.00"), credits=D(36)),
        Payment(payer_id="all", money=D("50.00"), credits=D(100)),
    ]


def test_invoice_payment_plan_stops_when_nothing_is_payable_and_skips_wallets_that_cannot_pay() -> None:
    # $20.00 owed, no usage: the usage-only wallet pays nothing; an empty wallet and one with a zero rate are
    # skipped; the first all-lines wallet with credits (rate 1, 50) pays $20.00 for 20; the last pays nothing.
    payers = [
        Payer(id=1, usage_only=True, available=D(500), rate=D(1)),
        Payer(id=2, usage_only=False, available=D(0), rate=D(1)),
        Payer(id=3, usage_only=False, available=D(80), rate=D(0)),
        Payer(id=4, usage_only=False, available=D(50), rate=D(1)),
        Payer(id=5, usage_only=False, available=D(50), rate=D(1)),
    ]
    assert invoice_payment_plan(payers, D("20.00"), D(0), 2) == [Payment(payer_id=4, money=D("20.00"), credits=D(20))]
    # Negative usage (a correction) lets usage-only wallets pay nothing: 0 is payable by them.
    assert invoice_payment_plan(payers[:1], D("20.00"), D("-5.00"), 2) == []


@st.composite
def payer_lists(draw: st.DrawFn) -> list[Payer]:
    size = draw(st.integers(0, 5))
    payers = [
        Payer(id=n, usage_only=draw(st.booleans()), available=draw(credit_amounts), rate=draw(positive_rates))
        for n in range(size)
    ]
    return sorted(payers, key=lambda p: not p.usage_only)  # the payment order: usage-only wallets first


@PROPERTY_SETTINGS
@given(payers=payer_lists(), payable=scaled(10**8, 2), usage=scaled(10**8, 2), minor_exponent=st.sampled_from([0, 2]))
def test_invoice_payment_plan_properties(
    payers: list[Payer], payable: Decimal, usage: Decimal, minor_exponent: int
) -> None:
    minor_unit = D(1).scaleb(-minor_exponent)
    payable, usage = payable.quantize(minor_unit, rounding=ROUND_DOWN), usage.quantize(minor_unit, rounding=ROUND_DOWN)
    plan = invoice_payment_plan(payers, payable, usage, minor_exponent)
    by_id = {p.id: p for p in payers}
    paid = {payment.payer_id: payment.money for payment in plan}
    assert len(paid) == len(plan) and [p.payer_id for p in plan] == [p.id for p in payers if p.id in paid]
    for payment in plan:
        payer = by_id[payment.payer_id]
        # What credits_applicable charges for that money: never more credits than the wallet has.
        assert (payment.money, payment.credits) == credits_applicable(
            payment.money, payer.available, payer.rate, minor_exponent
        )
        assert payment.money > 0 and 0 < payment.credits <= payer.available
    usage_paid = sum((m for i, m in paid.items() if by_id[i].usage_only), D(0))
    assert sum(paid.values(), D(0)) <= payable and usage_paid <= usage
    for payer in payers:  # a wallet worth more than it paid left nothing it may pay unpaid
        worth = credits_to_money(payer.available, payer.rate).quantize(minor_unit, rounding=ROUND_DOWN)
        if worth > paid.get(payer.id, D(0)):
            if payer.usage_only:
                assert usage_paid == min(usage, payable)
            else:
                assert sum(paid.values(), D(0)) == payable


@PROPERTY_SETTINGS
@given(credits=credit_amounts, rate=positive_rates)
def test_money_credit_roundtrip(credits: Decimal, rate: Decimal) -> None:
    money = credits_to_money(credits, rate)
    assert money == credits * rate
    assert money_to_credits(money, rate) == credits


@PROPERTY_SETTINGS
@given(data=st.data(), lots=held_lot_lists())
def test_plan_never_takes_held_credits(data: st.DataObject, lots: list[Lot]) -> None:
    free = sum((item.free for item in lots), D(0))
    amount = data.draw(amount_for(free))
    plan = consumption_plan(lots, amount)
    by_id = {item.id: item for item in lots}
    for take in plan:
        assert 0 < take.credits <= by_id[take.lot_id].free
    assert sum((take.credits for take in plan), D(0)) == min(amount, free)
    for lot_id, left in remaining_after(lots, plan).items():
        assert left >= by_id[lot_id].held  # every reservation is still covered


@PROPERTY_SETTINGS
@given(lots=held_lot_lists(), cap=st.one_of(st.none(), st.just(D(0)), credit_amounts), now=datetimes)
def test_held_credits_neither_roll_over_nor_expire(lots: list[Lot], cap: Decimal | None, now: datetime) -> None:
    split = rollover_split(lots, cap)
    unused = sum((item.free for item in lots), D(0))
    assert sum((take.credits for take in split.carry), D(0)) == (unused if cap is None else min(unused, cap))
    per_lot = {item.id: D(0) for item in lots}
    for take in split.carry + split.expire:
        per_lot[take.lot_id] += take.credits
    assert per_lot == {item.id: item.free for item in lots}  # held credits untouched
    expired = {take.lot_id: take.credits for take in expired_lots(lots, now)}
    assert expired == {
        item.id: item.free for item in lots if item.expires_at is not None and item.expires_at <= now and item.free > 0
    }


@PROPERTY_SETTINGS
@given(data=st.data(), lots=held_lot_lists())
def test_holding_is_planned_like_spending_over_free_credits(data: st.DataObject, lots: list[Lot]) -> None:
    # Reserving then spending the same credits leaves the lots as spending them at once would.
    free = sum((item.free for item in lots), D(0))
    amount = data.draw(amount_for(free))
    hold = consumption_plan(lots, amount)
    held = {take.lot_id: take.credits for take in hold}
    reserved = [replace(item, held=item.held + held.get(item.id, D(0))) for item in lots]
    assert sum((item.free for item in reserved), D(0)) == free - min(amount, free)
    settled = [replace(item, remaining=item.remaining - held.get(item.id, D(0)), held=item.held) for item in lots]
    assert remaining_after(lots, hold) == {item.id: item.remaining for item in settled}


# --------------------------------------------------------------------------------------------------
# Ledger state machine: the ledger always sums to the lots' remaining credits
# --------------------------------------------------------------------------------------------------


class WalletMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.wallet = WalletSim()
        self.now = T0

    @rule(
        credits=credit_amounts,
        kind=st.sampled_from(["plan", "paid", "promotional", "signup"]),
        priority=st.integers(0, 3),
        expires_in=st.one_of(st.none(), st.integers(0, 10)),
    )
    def grant(self, credits: Decimal, kind: str, priority: int, expires_in: int | None) -> None:
        expires_at = None if expires_in is None else self.now + timedelta(days=expires_in)
        self.wallet.grant(credits, kind=kind, priority=priority, expires_at=expires_at, created_at=self.now)

    @rule(data=st.data())
    def consume(self, data: st.DataObject) -> None:
        before = self.wallet.lots_total()
        free = sum((item.free for item in self.wallet.lots.values()), D(0))  # held credits are reserved
        amount = data.draw(amount_for(free))
        takes = self.wallet.consume(amount)
        assert sum((take.credits for take in takes), D(0)) == min(amount, free)
        assert self.wallet.lots_total() == before - min(amount, free)

    @rule(days=st.integers(0, 4))
    def advance_and_expire(self, days: int) -> None:
        self.now += timedelta(days=days)
        self.wallet.expire(self.now)
        assert not expired_lots(self.wallet.lots.values(), self.now)

    @precondition(lambda self: any(kind in ("plan", "rollover") for kind in self.wallet.kinds.values()))
    @rule(cap=st.one_of(st.none(), credit_amounts))
    def period_end(self, cap: Decimal | None) -> None:
        def plan_total() -> Decimal:  # free plan credits: held ones neither carry nor expire
            return sum(
                (item.free for item in self.wallet.lots.values() if self.wallet.kinds[item.id] in ("plan", "rollover")),
                D(0),
            )

        unused = plan_total()
        self.wallet.period_end(cap)
        assert plan_total() == (unused if cap is None else min(unused, cap))

    @rule(data=st.data())
    def hold_for_a_draft(self, data: st.DataObject) -> None:
        balance, free = self.wallet.balance(), sum((item.free for item in self.wallet.lots.values()), D(0))
        amount = data.draw(amount_for(free))
        hold_id = self.wallet.hold(amount)
        assert sum((take.credits for take in self.wallet.holds[hold_id]), D(0)) == min(amount, free)
        assert self.wallet.balance() == balance  # a reservation, not a spend

    @precondition(lambda self: bool(self.wallet.holds))
    @rule(data=st.data(), finalize=st.booleans())
    def release_or_finalize(self, data: st.DataObject, finalize: bool) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.wallet.holds)))
        held = sum((take.credits for take in self.wallet.holds[hold_id]), D(0))
        balance = self.wallet.balance()
        if finalize:
            self.wallet.settle(hold_id)
            assert self.wallet.balance() == balance - held
        else:
            self.wallet.release(hold_id)
            assert self.wallet.balance() == balance

    @invariant()
    def ledger_matches_lots(self) -> None:
        assert self.wallet.balance() == self.wallet.lots_total()
        for lot_id, item in self.wallet.lots.items():
            assert self.wallet.lot_ledger_total(lot_id) == item.remaining
            assert item.remaining >= 0

    @invariant()
    def holds_match_held_credits(self) -> None:
        per_lot: dict[int | str, Decimal] = {}
        for takes in self.wallet.holds.values():
            for take in takes:
                per_lot[take.lot_id] = per_lot.get(take.lot_id, D(0)) + take.credits
        for lot_id, item in self.wallet.lots.items():
            assert item.held == per_lot.get(lot_id, D(0)) and 0 <= item.held <= item.remaining


WalletMachine.TestCase.settings = settings(max_examples=200, deadline=None, stateful_step_count=25)
TestWalletMachine = WalletMachine.TestCase
