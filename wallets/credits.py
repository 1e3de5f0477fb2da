"""Pure arithmetic of prepaid credits: consumption order, rollover, expiry and money conversion.

This module imports no Django. It decides *what* should happen to a wallet's credit lots (grants);
the caller turns the returned :class:`Take` rows into ledger entries and lot updates in one
transaction.

Units and conventions
---------------------
* **Credits** are :class:`~decimal.Decimal` values with at most 12 decimal places, never ``float``.
  A credit may be worth money (see the wallet's conversion rate) or be a non-monetary unit.
* **Money** is a :class:`~decimal.Decimal` amount in the wallet's currency units (e.g. dollars,
  not cents); ``minor_exponent`` is the number of decimal places of the currency's minor unit
  (2 for USD/EUR, 0 for JPY, 3 for KWD).
* **Rate** is currency units per credit (1 credit = ``rate`` currency units); it must be positive.
* All arithmetic runs in local :class:`~decimal.Context` objects with 40 significant digits passed
  explicitly, so the thread's ambient decimal context never changes a result. Additions,
  subtractions and multiplications must be exact: if one ever had to round, ``decimal.Inexact`` is
  raised instead of silently losing credits.
* Functions never mutate their inputs; lots are frozen dataclasses and results are new lists.

Holds (reservations)
--------------------
A lot may have part of its credits **held** for a draft invoice (``Lot.held``). A hold is a reservation,
not a spend: held credits are still in the lot's ``remaining`` (and so in the wallet's balance) but
nothing else may take them. Every function here works on a lot's **free** credits
(``remaining - held``): consumption never takes held credits, and held credits neither expire nor roll
over while held (DESIGN.md, Wallets and credits). Holding itself is planned with
:func:`consumption_plan` (a hold reserves credits in consumption order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

__all__ = [
    "CREDIT_DECIMAL_PLACES",
    "Lot",
    "Payer",
    "Payment",
    "RolloverSplit",
    "Take",
    "consumption_plan",
    "credits_applicable",
    "credits_to_money",
    "expired_lots",
    "invoice_payment_plan",
    "lots_order_key",
    "lots_ordered",
    "money_to_credits",
    "rollover_split",
]

#: Credits are stored with at most this many decimal places.
CREDIT_DECIMAL_PLACES = 12

_PRECISION = 40
_ZERO = Decimal(0)
_CREDIT_QUANTUM = Decimal(1).scaleb(-CREDIT_DECIMAL_PLACES)

LotId = int | str


def _exact_context() -> Context:
    """A fresh 40-digit context in which any rounding raises ``decimal.Inexact``."""
    return Context(
        prec=_PRECISION,
        rounding=ROUND_HALF_EVEN,
        traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
    )


def _division_context(rounding: str = ROUND_HALF_EVEN) -> Context:
    """A fresh 40-digit context for divisions, which may legitimately be inexact (e.g. 1 / 3)."""
    return Context(prec=_PRECISION, rounding=rounding, traps=[InvalidOperation, DivisionByZero, Overflow])


def _check_decimal(value: object, name: str) -> Decimal:
    """Return ``value`` if it is a finite Decimal, else raise (``TypeError`` for floats and ints)."""
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _exponent(value: Decimal) -> int:
    """The exponent of a finite Decimal (-3 for ``Decimal("1.250")``)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), "only finite Decimals have an int exponent"
    return exponent


def _check_credits(value: object, name: str) -> Decimal:
    """Validate a credit quantity: a finite Decimal, >= 0, with at most 12 decimal places."""
    credits = _check_decimal(value, name)
    if credits < 0:
        raise ValueError(f"{name} must not be negative, got {credits}")
    if _exponent(credits) < -CREDIT_DECIMAL_PLACES:
        # Trailing zeros beyond 12 dp are fine (1.0000000000000 == 1); real digits are not.
        if credits != credits.quantize(_CREDIT_QUANTUM, context=_division_context()):
            raise ValueError(f"{name} has more than {CREDIT_DECIMAL_PLACES} decimal places: {credits}")
    return credits


@dataclass(frozen=True)
class Lot:
    """One grant of credits as far as consumption is concerned.

    * ``id``: the grant's identifier (database pk or any stable key), echoed in :class:`Take`.
    * ``remaining``: credits still in this lot (Decimal, >= 0, <= 12 dp), held ones included.
    * ``held``: how many of them are reserved for draft invoices (0 <= held <= remaining); only the
      rest, :attr:`free`, may be consumed, expired or rolled over.
    * ``priority``: lower numbers are consumed first.
    * ``expires_at``: when the lot's remaining credits expire; ``None`` means never.
    * ``created_at``: when the lot was granted; older lots are consumed first on ties.

    All datetimes passed together must be all naive or all timezone-aware (compare them).
    """

    id: LotId
    remaining: Decimal
    priority: int
    expires_at: datetime | None
    created_at: datetime
    held: Decimal = _ZERO

    def __post_init__(self) -> None:
        _check_credits(self.remaining, "Lot.remaining")
        _check_credits(self.held, "Lot.held")
        if self.held > self.remaining:
            raise ValueError(f"Lot.held ({self.held}) exceeds Lot.remaining ({self.remaining})")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise TypeError(f"Lot.priority must be an int, not {type(self.priority).__name__}")

    @property
    def free(self) -> Decimal:
        """Credits of this lot not held for a draft invoice: the only ones that may be spent or expire."""
        return _exact_context().subtract(self.remaining, self.held)


@dataclass(frozen=True)
class Take:
    """Credits taken from one lot: ``credits`` (Decimal, always > 0) out of lot ``lot_id``."""

    lot_id: LotId
    credits: Decimal


@dataclass(frozen=True)
class RolloverSplit:
    """How a period's unused plan credits divide at the period's end.

    ``carry`` lists the credits that roll over into the next period, ``expire`` the credits that
    expire. For every input lot, its carried credits plus its expired credits equal its free credits
    (held credits stay in the lot, untouched).
    """

    carry: list[Take]
    expire: list[Take]


def _id_key(lot_id: LotId) -> tuple[int, int | str]:
    """Make int and str ids comparable with each other: all ints sort before all strings."""
    if isinstance(lot_id, str):
        return (1, lot_id)
    return (0, lot_id)


def lots_order_key(lot: Lot) -> tuple[int, bool, datetime, datetime, tuple[int, int | str]]:
    """Sort key giving the order in which lots are consumed.

    Rules, in order of precedence:

    1. lower ``priority`` number first;
    2. soonest ``expires_at`` first; lots that never expire (``None``) come after all expiring lots;
    3. oldest ``created_at`` first;
    4. ``id`` as a final deterministic tie-break (int ids before str ids).

    The order is total, so the result never depends on the order lots were passed in.
    """
    never_expires = lot.expires_at is None
    # For never-expiring lots the expiry slot only has to be a comparable datetime: the boolean
    # before it already separates them from expiring lots, so reuse created_at there.
    expiry = lot.created_at if lot.expires_at is None else lot.expires_at
    return (lot.priority, never_expires, expiry, lot.created_at, _id_key(lot.id))


def lots_ordered(lots: Iterable[Lot]) -> list[Lot]:
    """Return the lots in consumption order (see :func:`lots_order_key`), empty lots included."""
    return sorted(lots, key=lots_order_key)


def _check_unique_ids(lots: Sequence[Lot]) -> None:
    """Raise ``ValueError`` if two lots share an id (their takes would be indistinguishable)."""
    seen: set[LotId] = set()
    for lot in lots:
        if lot.id in seen:
            raise ValueError(f"duplicate lot id {lot.id!r}")
        seen.add(lot.id)


def _total_free(lots: Iterable[Lot]) -> Decimal:
    """Exact sum of the lots' free (not held) credits."""
    ctx = _exact_context()
    total = _ZERO
    for lot in lots:
        total = ctx.add(total, lot.free)
    return total


def _take_in_order(ordered: Sequence[Lot], amount: Decimal) -> list[Take]:
    """Take ``min(amount, total free)`` credits from ``ordered`` lots front to back, skipping lots with none free."""
    ctx = _exact_context()
    takes: list[Take] = []
    left = amount
    for lot in ordered:
        if left <= 0:
            break
        free = lot.free
        if free <= 0:
            continue
        taken = min(free, left)
        takes.append(Take(lot_id=lot.id, credits=taken))
        left = ctx.subtract(left, taken)
    return takes


def consumption_plan(lots: Iterable[Lot], amount: Decimal) -> list[Take]:
    """Plan which lots pay for ``amount`` credits.

    Rules:

    * lots are consumed in :func:`lots_order_key` order; a lot is only touched once every lot
      before it is exhausted;
    * only free credits (``remaining - held``) are taken: credits held for a draft invoice are
      reserved for it;
    * exactly ``min(amount, sum of free)`` credits are taken in total: an ``amount`` larger
      than the free balance takes everything free and the caller decides what to do with the shortfall;
    * no take exceeds its lot's free credits; lots with none free are skipped; no take is zero
      (``amount == 0`` returns ``[]``);
    * ``amount < 0`` raises ``ValueError``; duplicate lot ids raise ``ValueError``.

    Units: ``amount`` and every ``Take.credits`` are credits (Decimal, <= 12 dp).
    """
    credits = _check_credits(amount, "amount")
    ordered = lots_ordered(lots)
    _check_unique_ids(ordered)
    return _take_in_order(ordered, credits)


def _rollover_order_key(lot: Lot) -> tuple[bool, datetime, datetime, tuple[int, int | str]]:
    """Sort key for the rollover order: longest-lived first, then newest first (reverse the result)."""
    never_expires = lot.expires_at is None
    expiry = lot.created_at if lot.expires_at is None else lot.expires_at
    return (never_expires, expiry, lot.created_at, _id_key(lot.id))


def rollover_split(lots: Iterable[Lot], cap: Decimal | None) -> RolloverSplit:
    """Split a period's unused plan credits into what rolls over and what expires.

    ``lots`` are the subscription's unused plan credits at the period's end: this period's grant
    and earlier rollovers together. Rules:

    * ``unused = sum(lot.free)`` (held credits neither roll over nor expire while held);
      ``min(unused, cap)`` credits carry into the next period and
      the rest expires. ``cap=None`` means no cap (everything carries); ``cap=0`` means nothing
      carries; a negative cap raises ``ValueError``.
    * **Which credits carry**: the longest-lived first -- latest ``expires_at`` first, with
      never-expiring lots (``None``) counting as the longest-lived of all -- then the newest
      ``created_at`` first, then the highest id. This keeps the most value for the customer: the
      credits that would survive longest are the ones kept. Carried credits keep their lot's
      original expiry (the caller carries them with the lot's ``expires_at``).
    * Every lot's free credits are fully accounted for: for each lot, carried + expired == its
      free credits. Lots with none free produce no takes, and no take is zero.

    ``carry`` is listed in carry order (longest-lived first); ``expire`` in consumption order
    (:func:`lots_order_key`). Units: credits (Decimal, <= 12 dp).
    """
    lot_list = list(lots)
    _check_unique_ids(lot_list)
    unused = _total_free(lot_list)
    carry_amount = unused if cap is None else min(unused, _check_credits(cap, "cap"))
    carry_order = sorted(lot_list, key=_rollover_order_key, reverse=True)
    carry = _take_in_order(carry_order, carry_amount)

    carried: dict[LotId, Decimal] = {take.lot_id: take.credits for take in carry}
    ctx = _exact_context()
    expire: list[Take] = []
    for lot in lots_ordered(lot_list):
        rest = ctx.subtract(lot.free, carried.get(lot.id, _ZERO))
        if rest > 0:
            expire.append(Take(lot_id=lot.id, credits=rest))
    return RolloverSplit(carry=carry, expire=expire)


def expired_lots(lots: Iterable[Lot], now: datetime) -> list[Take]:
    """Credits that have expired by ``now``.

    A lot is expired when ``expires_at is not None and expires_at <= now`` (the expiry instant
    itself counts as expired) and it still has free credits; all its free credits are returned
    (held credits do not expire while held). Lots with nothing free or no expiry produce nothing.
    Result in consumption order (credits).
    """
    return [
        Take(lot_id=lot.id, credits=lot.free)
        for lot in lots_ordered(lots)
        if lot.expires_at is not None and lot.expires_at <= now and lot.free > 0
    ]


def _check_rate(rate: Decimal) -> Decimal:
    """Validate a conversion rate: a finite, strictly positive Decimal (currency units per credit)."""
    value = _check_decimal(rate, "rate")
    if value <= 0:
        raise ValueError(f"rate must be positive, got {value}")
    return value


def credits_to_money(credits: Decimal, rate: Decimal) -> Decimal:
    """Money worth of ``credits`` at ``rate`` currency units per credit: ``credits * rate``.

    Unrounded: the product is exact (computed with 40 significant digits; ``decimal.Inexact`` is
    raised if it could not be). Rounding to the currency's minor unit is the caller's business.
    """
    return _exact_context().multiply(_check_decimal(credits, "credits"), _check_rate(rate))


def money_to_credits(amount: Decimal, rate: Decimal) -> Decimal:
    """Credits needed to cover ``amount`` currency units at ``rate`` units per credit: ``amount / rate``.

    Unrounded: exact whenever the quotient has at most 40 significant digits (e.g. 100.00 / 0.05 =
    2000); a non-terminating quotient (1 / 0.03) is correctly rounded to 40 significant digits.
    """
    return _division_context().divide(_check_decimal(amount, "amount"), _check_rate(rate))


def credits_applicable(
    amount_payable: Decimal, balance_credits: Decimal, rate: Decimal, minor_exponent: int
) -> tuple[Decimal, Decimal]:
    """How much of ``amount_payable`` a wallet pays, and how many credits that costs.

    * ``money = min(amount_payable, balance_credits * rate)`` rounded DOWN to the currency's minor
      unit (``10 ** -minor_exponent``): the wallet never pays more than its credits are worth nor
      more than is payable.
    * ``credits = money / rate``, exact whenever it fits in 12 decimal places (the usual case, e.g.
      rate 0.05). If the quotient has more decimals (rate 0.03: 1.00 / 0.03 = 33.33...), it is
      rounded UP to 12 dp, so the credits burned are always worth at least the money paid; it
      still never exceeds ``balance_credits`` (rounding up a value below a 12-dp balance cannot
      pass it).

    Returns ``(money, credits)``: money in currency units with ``minor_exponent`` decimals, credits
    as a Decimal with at most 12 dp. Raises ``ValueError`` for a negative payable or balance, a
    non-positive rate, or a negative ``minor_exponent``.

    Example: ``credits_applicable(Decimal("180.00"), Decimal(2000), Decimal("0.05"), 2)`` is
    ``(Decimal("100.00"), Decimal("2000"))`` -- 2000 credits are worth 2000 * 0.05 = 100.00 < 180.00.
    """
    payable = _check_decimal(amount_payable, "amount_payable")
    if payable < 0:
        raise ValueError(f"amount_payable must not be negative, got {payable}")
    balance = _check_credits(balance_credits, "balance_credits")
    if isinstance(minor_exponent, bool) or not isinstance(minor_exponent, int) or minor_exponent < 0:
        raise ValueError(f"minor_exponent must be a non-negative int, got {minor_exponent!r}")
    worth = credits_to_money(balance, rate)
    minor_unit = Decimal(1).scaleb(-minor_exponent)
    money = min(payable, worth).quantize(minor_unit, context=_division_context(ROUND_DOWN))
    if money == 0:
        return money, _ZERO
    credits = money_to_credits(money, rate)
    if _exponent(credits) < -CREDIT_DECIMAL_PLACES:
        credits = credits.quantize(_CREDIT_QUANTUM, context=_division_context(ROUND_CEILING))
    return money, credits


@dataclass(frozen=True)
class Payer:
    """A wallet as far as paying one invoice is concerned.

    * ``id``: the wallet's identifier, echoed in :class:`Payment`.
    * ``usage_only``: the wallet pays usage lines (with their tax) only; else it pays all lines.
    * ``available``: the credits it may spend on this invoice (Decimal, <= 12 dp); 0 or less pays nothing.
    * ``rate``: currency units per credit; a rate of 0 or less pays nothing.
    """

    id: LotId
    usage_only: bool
    available: Decimal
    rate: Decimal


@dataclass(frozen=True)
class Payment:
    """What one wallet pays: ``money`` (currency units, rounded down to the minor unit, > 0) for ``credits``."""

    payer_id: LotId
    money: Decimal
    credits: Decimal


def invoice_payment_plan(
    payers: Sequence[Payer], payable: Decimal, usage_payable: Decimal, minor_exponent: int
) -> list[Payment]:
    """How wallets pay an invoice (or what is pending): the one payment loop, in the order ``payers`` come.

    The caller passes the wallets in payment order (usage-only wallets first, then all-lines wallets, oldest
    first: ``wallets.selectors.wallets_payment_order``). ``payable`` is what the invoice still asks, in money;
    ``usage_payable`` the part of it that usage-only wallets may pay (usage lines with their tax; 0 or less: none).

    * an all-lines wallet pays at most what is left of ``payable``; a usage-only wallet at most what is left of
      both ``usage_payable`` and ``payable``;
    * each pays ``credits_applicable(that, available, rate, minor_exponent)``: money rounded down to the minor
      unit, credits worth at least the money;
    * what a wallet pays comes off ``payable`` and off ``usage_payable`` (never below 0); once nothing is
      payable, no further wallet pays.

    Returns one :class:`Payment` per wallet that pays something (credits > 0), in payment order. The sum of
    the money paid never exceeds ``payable``, nor the usage-only wallets' part ``usage_payable``.

    Example: lines $50 + $10 tax (fixed) and $30 + $6 tax (usage), nothing paid yet: payable 96.00, usage 36.00;
    a usage-only wallet (rate 1, 1,000 credits) pays 36.00 for 36 credits, then an all-lines wallet (rate 0.5,
    100 credits = $50) pays min(60.00, 50.00) = 50.00 for 100 credits; 10.00 is left due.
    """
    ctx = _exact_context()
    left = _check_decimal(payable, "payable")
    usage_left = _check_decimal(usage_payable, "usage_payable")
    plan: list[Payment] = []
    for payer in payers:
        if left <= 0:
            break
        amount = min(usage_left, left) if payer.usage_only else left
        if amount <= 0 or payer.available <= 0 or payer.rate <= 0:
            continue
        money, credits = credits_applicable(amount, payer.available, payer.rate, minor_exponent)
        if credits <= 0:
            continue
        plan.append(Payment(payer_id=payer.id, money=money, credits=credits))
        left = ctx.subtract(left, money)
        usage_left = max(ctx.subtract(usage_left, money), _ZERO)
    return plan
