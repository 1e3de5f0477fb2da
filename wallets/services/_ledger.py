"""The only code that appends to the credit ledger and moves a wallet's cached balance.

Every helper here must be called inside a transaction that holds the wallet's row lock
(``SELECT ... FOR UPDATE``), so ``wallet.balance`` in memory is the balance in the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet

from core.outbox import record_event
from wallets.credits import Lot

from ..models import CreditGrant, LedgerEntry, Wallet


def wallet_lock(*, wallet: Wallet) -> Wallet:
    """Lock the wallet row FOR UPDATE and return it fresh (call inside a transaction)."""
    return Wallet.objects.select_for_update().select_related("customer").get(pk=wallet.pk)


def grants_locked(*, wallet: Wallet, filters: Q | None = None) -> list[CreditGrant]:
    """The wallet's grants holding credits (held ones included), locked FOR UPDATE in consumption order
    (after the wallet lock). Only their free part (``remaining - held``) may be spent, expired or rolled over."""
    qs: QuerySet[CreditGrant] = CreditGrant.objects.select_for_update().filter(wallet=wallet, remaining__gt=0)
    if filters is not None:
        qs = qs.filter(filters)
    return list(qs.order_by("priority", F("expires_at").asc(nulls_last=True), "created_at", "id"))


def lot_of(grant: CreditGrant) -> Lot:
    """The pure-core view of a grant (wallets.credits), with its held credits."""
    return Lot(
        id=grant.pk,
        remaining=Decimal(grant.remaining),
        priority=grant.priority,
        expires_at=grant.expires_at,
        created_at=grant.created_at,
        held=Decimal(grant.held),
    )


def lots_of(grants: Iterable[CreditGrant]) -> list[Lot]:
    return [lot_of(grant) for grant in grants]


def ledger_append(
    *,
    wallet: Wallet,
    grant: CreditGrant | None,
    type: str,
    credits: Decimal,
    idempotency_key: str,
    reference: str = "",
    invoice_id: int | None = None,
    description: str = "",
    move_grant: bool = True,
    grant_status: str | None = None,
) -> tuple[LedgerEntry, bool]:
    """Append one ledger row and move the cached balance (and the grant's remaining) by ``credits``.

    ``credits`` is signed. The row is inserted inside a savepoint: if its idempotency key was already
    booked on this wallet, the existing row is returned with ``False`` and nothing moves (replays are
    harmless). ``grant_status`` sets the grant's status together with its remaining. Ledger rows are
    never updated or deleted. Call inside a transaction holding the wallet's lock.
    """
    balance_after = wallet.balance + credits
    try:
        with transaction.atomic():
            entry = LedgerEntry.objects.create(
                wallet=wallet,
                grant=grant,
                type=type,
                credits=credits,
                balance_after=balance_after,
                reference=reference[:200],
                invoice_id=invoice_id,
                description=description[:300],
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        return LedgerEntry.objects.get(wallet=wallet, idempotency_key=idempotency_key), False
    Wallet.objects.filter(pk=wallet.pk).update(balance=F("balance") + credits)
    wallet.balance = balance_after
    if grant is not None and (move_grant or grant_status):
        updates: dict = {}
        if move_grant:
            updates["remaining"] = F("remaining") + credits
            grant.remaining = grant.remaining + credits
        if grant_status:
            updates["status"] = grant_status
            grant.status = grant_status
        CreditGrant.objects.filter(pk=grant.pk).update(**updates)
    return entry, True


def grant_expire_locked(
    *,
    wallet: Wallet,
    grant: CreditGrant,
    credits: Decimal,
    key: str,
    reference: str,
    description: str,
    status: str = CreditGrant.Status.EXPIRED,
) -> Decimal:
    """Expire ``credits`` of a locked grant's free part (an ``expire`` ledger row).

    The status flips when nothing free is left: a lot whose only credits left are held for a draft is
    expired (or rolled over) for everything else; the held credits still pay that draft when it is finalized.
    """
    if credits <= 0:
        return Decimal(0)
    if credits > grant.free:
        raise ValueError(f"cannot expire {credits} credits of grant {grant.pk}: only {grant.free} are free")
    left = grant.remaining - credits
    new_status = status if left == grant.held else None
    _, created = ledger_append(
        wallet=wallet,
        grant=grant,
        type=LedgerEntry.Type.EXPIRE,
        credits=-credits,
        idempotency_key=key,
        reference=reference,
        description=description,
        grant_status=new_status,
    )
    if created:
        record_event("credits.expired", wallet, grant=grant, credits=credits)
    return credits if created else Decimal(0)
