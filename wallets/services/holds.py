"""Holds: credits reserved for a draft invoice (DESIGN.md, Wallets and credits: a reservation, not a spend).

A hold books no ledger row and leaves the wallet's balance alone; it raises its lot's ``held`` so nothing else
may spend those credits and they neither expire nor roll over while held (``wallets.credits`` works on free
credits only). Finalizing the invoice turns each hold into one ``consume`` ledger row for the same credits;
recalculating (or otherwise giving up) the draft releases it, again without a ledger row. Every helper here
is called inside a transaction holding the wallet locks (customer -> wallets -> lots, DESIGN lock order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from django.db.models import F

from wallets.credits import consumption_plan

from ..models import CreditGrant, CreditHold, LedgerEntry, Wallet
from ._ledger import ledger_append, lots_of


def holds_place_locked(*, wallet: Wallet, grants: Sequence[CreditGrant], credits: Decimal, invoice_id: int) -> Decimal:
    """Hold ``min(credits, their free credits)`` of the locked ``grants`` for ``invoice_id``, in consumption order.

    One :class:`CreditHold` per lot touched; each lot's ``held`` rises by what it holds. Returns the credits held.
    """
    by_id = {g.pk: g for g in grants}
    held = Decimal(0)
    for take in consumption_plan(lots_of(grants), credits):
        grant = by_id[take.lot_id]
        CreditGrant.objects.filter(pk=grant.pk).update(held=F("held") + take.credits)
        grant.held = grant.held + take.credits
        CreditHold.objects.create(wallet=wallet, grant=grant, invoice_id=invoice_id, credits=take.credits)
        held += take.credits
    return held


def holds_of_invoice_locked(*, invoice_id: int, wallets: Iterable[Wallet]) -> list[CreditHold]:
    """The invoice's live holds in ``wallets`` with their lots, holds and lots locked FOR UPDATE (lots by id)."""
    holds = list(
        CreditHold.objects.select_for_update()
        .filter(invoice_id=invoice_id, wallet__in=list(wallets), status=CreditHold.Status.HELD)
        .order_by("id")
    )
    grants = {
        g.pk: g
        for g in CreditGrant.objects.select_for_update().filter(pk__in=[h.grant_id for h in holds]).order_by("id")
    }
    for hold in holds:
        hold.grant = grants[hold.grant_id]
    return holds


def _held_down(hold: CreditHold, status: str, now: datetime) -> None:
    grant = hold.grant
    CreditGrant.objects.filter(pk=grant.pk).update(held=F("held") - hold.credits)
    grant.held = grant.held - hold.credits
    hold.status = status
    hold.closed_at = now
    hold.save(update_fields=["status", "closed_at"])


def holds_consume_locked(
    *, holds: Sequence[CreditHold], wallets: dict[int, Wallet], reference: str, now: datetime
) -> Decimal:
    """Finalization: each hold becomes one ``consume`` ledger row of its credits on its lot. Returns the credits.

    ``wallets`` maps wallet id to the locked wallet (its in-memory balance moves with the ledger). A lot left
    empty by it becomes ``consumed`` (if still active). Idempotent per hold (its ledger key is the hold's id).
    """
    consumed = Decimal(0)
    for hold in holds:
        grant = hold.grant
        _held_down(hold, CreditHold.Status.CONSUMED, now)  # held first: the lot never holds more than it has
        emptied = grant.remaining == hold.credits and grant.status == CreditGrant.Status.ACTIVE
        _, created = ledger_append(
            wallet=wallets[hold.wallet_id],
            grant=grant,
            type=LedgerEntry.Type.CONSUME,
            credits=-hold.credits,
            idempotency_key=f"hold:{hold.pk}",
            reference=reference,
            invoice_id=hold.invoice_id,
            description="Held credits applied: invoice finalized",
            grant_status=CreditGrant.Status.CONSUMED if emptied else None,
        )
        if created:
            consumed += hold.credits
    return consumed


def holds_release_locked(*, holds: Sequence[CreditHold], now: datetime) -> Decimal:
    """Give the holds up (draft recalculated): their credits are free again, with no ledger row. Returns them."""
    released = Decimal(0)
    for hold in holds:
        _held_down(hold, CreditHold.Status.RELEASED, now)
        released += hold.credits
    return released
