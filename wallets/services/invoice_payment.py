"""Paying an invoice with credits: the wallets' side of invoice credits (DESIGN.md, Wallets and credits).

Invoicing decides *what* an invoice asks of the wallets (plain money values: what it still owes, and the part
usage-only wallets may pay) and stores the money applied on the invoice; everything about credits is here:
which wallets pay and in what order (``wallets.credits.invoice_payment_plan``, the one payment loop), which lots
they spend, the holds for a draft, the ledger rows. Invoicing never touches the ledger.

* :func:`wallet_invoice_pay`: hold credits for a draft (``hold=True``; ``CreditHold`` rows, no ledger row, the
  balance does not move) or spend them for an invoice being finalized (``consume`` rows carrying the invoice's
  id). An invoice that already holds credits has its holds turned into ``consume`` rows when it is finalized
  (the reservation becomes the spend); one that already holds or consumed credits gets nothing more.
* :func:`wallet_invoice_release`: give a draft's holds up (no ledger row) and give credits an invoice consumed
  back to the lots they came from (``adjustment`` rows), before a recalculation or when the invoice is voided.

Both run inside the caller's transaction, holding the customer's lock (the caller locks the customer first);
they lock the customer's wallets in the invoice's currency, then the holds and lots they touch.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Q, Sum

from catalog.pricing import currency_exponent
from wallets.credits import Payer, invoice_payment_plan

from ..models import CreditGrant, LedgerEntry, Wallet
from ..selectors import wallets_payment_order
from ._ledger import grant_expire_locked, grants_locked, ledger_append
from .alerts import TopUp, wallet_balance_check_locked
from .consumption import consume_from_locked, usable_filter
from .holds import holds_consume_locked, holds_of_invoice_locked, holds_place_locked, holds_release_locked


def _wallets_locked(customer_id: int, currency: str) -> list[Wallet]:
    return list(
        Wallet.objects.select_for_update()
        .select_related("customer")
        .filter(customer_id=customer_id, currency=currency)
        .order_by("id")
    )


def _invoice_rows(invoice_id: int, wallets: list[Wallet]):
    return LedgerEntry.objects.filter(invoice_id=invoice_id, wallet__in=wallets)


@transaction.atomic(savepoint=False)
def wallet_invoice_pay(
    *,
    customer_id: int,
    currency: str,
    invoice_id: int,
    payable: Decimal,
    usage_payable: Decimal,
    hold: bool,
    now: datetime,
    expiring_after: datetime,
    top_up: TopUp | None = None,
) -> Decimal | None:
    """Pay invoice ``invoice_id`` with the customer's active wallets in ``currency``, or hold the credits for it.

    ``payable``: what the invoice still asks, in money (all-lines wallets may pay all of it); ``usage_payable``:
    its usage lines with their tax (what usage-only wallets may pay). ``hold``: the invoice is a draft, so the
    credits are held for it (reserved, no ledger row); else they are spent (``consume`` rows). A lot pays if it
    is usable at ``now`` and expires at or after ``expiring_after`` (the invoice's boundary: credits pay their
    period first), or if it expired or rolled over while some of its credits were held for a draft.

    Returns the money applied (each wallet's part rounded down to the minor unit), or ``None`` when the invoice
    already holds or consumed credits here: nothing new is applied (the invoice keeps the figure it stored);
    with ``hold=False`` its holds become one ``consume`` row per lot first. Idempotent.

    After a new payment, the free credits of lots no longer active (released from this invoice's earlier hold)
    expire at once, so no period's credits outlive their lot, and each active wallet's low-balance check runs
    (``top_up``: what an auto top-up buys besides its credits, ``alerts.wallet_balance_check_locked``).
    Call inside a transaction holding the customer's lock.
    """
    wallets = _wallets_locked(customer_id, currency)
    holds = holds_of_invoice_locked(invoice_id=invoice_id, wallets=wallets)
    reference = f"invoice:{invoice_id}"
    if holds:
        if not hold:  # the draft's reservation becomes the spend: one consume row per lot
            holds_consume_locked(holds=holds, wallets={w.pk: w for w in wallets}, reference=reference, now=now)
        return None
    rows = _invoice_rows(invoice_id, wallets)
    if -(rows.aggregate(s=Sum("credits"))["s"] or Decimal(0)) > 0:
        return None  # already applied
    active = [w for w in wallets if w.status == Wallet.Status.ACTIVE]
    paying = wallets_payment_order(active)
    eligible = usable_filter(now=now, expiring_after=expiring_after) | Q(status=CreditGrant.Status.EXPIRED)
    lots = {wallet.pk: grants_locked(wallet=wallet, filters=eligible) for wallet in paying}
    payers = [
        Payer(
            id=wallet.pk,
            usage_only=wallet.applies_to == Wallet.AppliesTo.USAGE,
            available=sum((g.free for g in lots[wallet.pk]), Decimal(0)),
            rate=wallet.conversion_rate,
        )
        for wallet in paying
    ]
    by_id = {w.pk: w for w in paying}
    round_no = rows.count()
    applied = Decimal(0)
    for payment in invoice_payment_plan(payers, payable, usage_payable, currency_exponent(currency)):
        wallet = by_id[payment.payer_id]
        if hold:
            holds_place_locked(wallet=wallet, grants=lots[wallet.pk], credits=payment.credits, invoice_id=invoice_id)
        else:
            consume_from_locked(
                wallet=wallet,
                grants=lots[wallet.pk],
                credits=payment.credits,
                key_prefix=f"invoice:{invoice_id}:apply:{round_no}",
                reference=reference,
                invoice_id=invoice_id,
            )
        applied += payment.money
    for wallet in active:
        for grant in lots[wallet.pk]:
            if grant.status != CreditGrant.Status.ACTIVE and grant.free > 0:
                grant_expire_locked(
                    wallet=wallet,
                    grant=grant,
                    credits=grant.free,
                    key=f"expire:{grant.pk}:{grant.ledger.count()}",
                    reference=reference,
                    description="Released credits of a lot no longer active",
                    status=grant.status,
                )
    for wallet in active:
        wallet_balance_check_locked(wallet=wallet, now=now, top_up=top_up)
    return applied


@transaction.atomic(savepoint=False)
def wallet_invoice_release(*, customer_id: int, currency: str, invoice_id: int, now: datetime, reason: str) -> Decimal:
    """Give back what invoice ``invoice_id`` took from the customer's wallets in ``currency``. Idempotent.

    A draft's holds are released with no ledger row (the balance never moved). Credits the invoice consumed go
    back to the lots they came from, each exactly what it gave (``adjustment`` rows described by ``reason``); a
    used-up lot becomes active again. Returns the credits given back by ``adjustment`` rows. Call inside a
    transaction holding the customer's lock; locks wallets, then holds and lots.
    """
    wallets = _wallets_locked(customer_id, currency)
    holds_release_locked(holds=holds_of_invoice_locked(invoice_id=invoice_id, wallets=wallets), now=now)
    rows = _invoice_rows(invoice_id, wallets)
    net: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for wallet_id, grant_id, credits in rows.values_list("wallet_id", "grant_id", "credits"):
        net[(wallet_id, grant_id)] += credits
    round_no = rows.count()
    by_wallet = {w.pk: w for w in wallets}
    grant_ids = [g for (_, g), c in net.items() if c < 0]
    grants = {g.pk: g for g in CreditGrant.objects.select_for_update().filter(pk__in=grant_ids).order_by("id")}
    given_back = Decimal(0)
    for (wallet_id, grant_id), credits in sorted(net.items()):
        if credits >= 0:
            continue
        grant = grants[grant_id]
        _, created = ledger_append(
            wallet=by_wallet[wallet_id],
            grant=grant,
            type=LedgerEntry.Type.ADJUSTMENT,
            credits=-credits,
            idempotency_key=f"invoice:{invoice_id}:release:{round_no}:{grant_id}",
            reference=f"invoice:{invoice_id}",
            invoice_id=invoice_id,
            description=reason,
            grant_status=CreditGrant.Status.ACTIVE if grant.status == CreditGrant.Status.CONSUMED else None,
        )
        if created:
            given_back -= credits
    return given_back
