"""Spending credits: the consumption plan over a wallet's active lots, booked as ledger rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Q

from core.errors import Conflict
from core.money import format_decimal
from wallets.credits import consumption_plan

from ..models import CreditGrant, LedgerEntry, Wallet
from ._ledger import grants_locked, ledger_append, lots_of, wallet_lock
from .alerts import wallet_balance_check_locked


def usable_filter(*, now: datetime, expiring_after: datetime | None = None) -> Q:
    """Lots that may be spent at ``now``: active, effective, not expired.

    ``expiring_after`` (default ``now``): a lot must expire strictly after ``now``; for an invoice's boundary a
    lot expiring exactly at the boundary still pays it (credits pay their period before they expire).
    """
    cutoff = expiring_after or now
    expiry = Q(expires_at__isnull=True) | (Q(expires_at__gte=cutoff) if expiring_after else Q(expires_at__gt=cutoff))
    return Q(status=CreditGrant.Status.ACTIVE, effective_at__lte=now) & expiry


def consume_from_locked(
    *,
    wallet: Wallet,
    grants: Sequence[CreditGrant],
    credits: Decimal,
    key_prefix: str,
    reference: str,
    invoice_id: int | None = None,
) -> Decimal:
    """Book ``consume`` rows for the consumption plan of ``credits`` over ``grants`` (all locked).

    Takes ``min(credits, their free credits)`` (held credits are reserved for drafts); returns the credits
    consumed. Grants left empty become ``consumed`` (a grant given back credits after it expired keeps its
    status). Call holding the locks.
    """
    by_id = {g.pk: g for g in grants}
    consumed = Decimal(0)
    for take in consumption_plan(lots_of(grants), credits):
        grant = by_id[take.lot_id]
        emptied = grant.remaining == take.credits and grant.status == CreditGrant.Status.ACTIVE
        _, created = ledger_append(
            wallet=wallet,
            grant=grant,
            type=LedgerEntry.Type.CONSUME,
            credits=-take.credits,
            idempotency_key=f"{key_prefix}:{grant.pk}",
            reference=reference,
            invoice_id=invoice_id,
            grant_status=CreditGrant.Status.CONSUMED if emptied else None,
        )
        if created:
            consumed += take.credits
    return consumed


@transaction.atomic(savepoint=False)
def wallet_consume_locked(
    *,
    wallet: Wallet,
    credits: Decimal,
    reference: str,
    idempotency_key: str,
    now: datetime,
    invoice_id: int | None = None,
) -> Decimal:
    """Spend exactly ``credits`` from the wallet's usable free credits, or raise Conflict (409) if they fall short.

    Locks the wallet row, then its lots (priority, expiry, age), so concurrent spends serialize and never
    overspend. A replayed ``idempotency_key`` books nothing and returns what the first call consumed.
    Call inside a transaction.
    """
    wallet = wallet_lock(wallet=wallet)
    prefix = f"consume:{idempotency_key}"
    booked = LedgerEntry.objects.filter(wallet=wallet, idempotency_key__startswith=f"{prefix}:")
    if booked.exists():
        return -sum((e.credits for e in booked), Decimal(0))
    if credits <= 0:
        raise Conflict("Credits to consume must be positive.", code="invalid_credits")
    grants = grants_locked(wallet=wallet, filters=usable_filter(now=now))
    available = sum((g.free for g in grants), Decimal(0))
    if available < credits:
        raise Conflict(
            f"The wallet holds {format_decimal(available)} usable credits; {format_decimal(credits)} were asked.",
            code="insufficient_credits",
        )
    return consume_from_locked(
        wallet=wallet,
        grants=grants,
        credits=credits,
        key_prefix=prefix,
        reference=reference,
        invoice_id=invoice_id,
    )


@transaction.atomic(durable=True)
def wallet_consume(
    *,
    wallet: Wallet,
    credits: Decimal,
    reference: str,
    idempotency_key: str,
    now: datetime,
    invoice_id: int | None = None,
) -> Decimal:
    """Entry point: :func:`wallet_consume_locked` in its own durable transaction, then the low-balance check."""
    consumed = wallet_consume_locked(
        wallet=wallet,
        credits=credits,
        reference=reference,
        idempotency_key=idempotency_key,
        now=now,
        invoice_id=invoice_id,
    )
    wallet_balance_check_locked(wallet=wallet, now=now)
    return consumed
