"""Wallets and grants: create a wallet, grant credits, void what is left of a grant, expire grants."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from core.errors import Conflict, NotFound, ValidationFailed
from core.money import currency_allowed, format_decimal
from core.numbers import NumberInvalid, decimal_parse
from core.outbox import record_event
from customers.models import Customer
from wallets.credits import CREDIT_DECIMAL_PLACES, expired_lots

from ..models import CreditGrant, LedgerEntry, Wallet
from ._ledger import grant_expire_locked, grants_locked, ledger_append, lots_of, wallet_lock

#: A balance (numeric(28, 12)) stays below this.
MAX_BALANCE = Decimal(10**16)

#: Kinds a person (API or admin) may grant; plan, rollover credits come from subscriptions only.
MANUAL_KINDS = (
    CreditGrant.Kind.SIGNUP,
    CreditGrant.Kind.PROMOTIONAL,
    CreditGrant.Kind.PAID,
    CreditGrant.Kind.ADJUSTMENT,
)


def credits_parse(value: object, *, field: str = "credits", allow_zero: bool = False) -> Decimal:
    """A credit quantity from input, in the API's number grammar (``core.numbers``): ASCII decimal
    text or an integer (a ``Decimal`` from Python callers), > 0 (>= 0 with ``allow_zero``), at most 16 digits
    before the point and 12 after; ValidationFailed naming ``field`` otherwise."""
    try:
        return decimal_parse(value, max_digits=28, decimal_places=CREDIT_DECIMAL_PLACES, positive=not allow_zero)
    except NumberInvalid as exc:
        raise ValidationFailed(exc.message, field=field) from None


#: What a wallet's change may touch (its customer and currency are fixed once created).
WALLET_UPDATABLE = ("name", "conversion_rate", "applies_to", "low_balance_threshold", "auto_top_up_credits", "status")


def wallet_check(data: Mapping[str, Any]) -> dict[str, Any]:
    """The wallet fields present in ``data``, checked and parsed: ``currency`` one this installation accepts,
    ``conversion_rate`` > 0, ``applies_to`` and ``status`` among their choices, ``low_balance_threshold`` >= 0 or
    None, ``auto_top_up_credits`` > 0 or None (credits: at most 12 decimal places). Writes nothing; ValidationFailed
    names the first bad field. :func:`wallet_create`, :func:`wallet_update_locked` and the admin's form use it."""
    values: dict[str, Any] = {}
    if "currency" in data:
        if not currency_allowed(data["currency"]):
            raise ValidationFailed(f"Currency '{data['currency']}' is not accepted here.", field="currency")
        values["currency"] = data["currency"]
    if "name" in data:
        values["name"] = data["name"] or "Credits"
    if "conversion_rate" in data:
        values["conversion_rate"] = credits_parse(data["conversion_rate"], field="conversion_rate")
    for name, choices in (("applies_to", Wallet.AppliesTo.values), ("status", Wallet.Status.values)):
        if name in data:
            if data[name] not in choices:
                raise ValidationFailed(f"Must be one of {', '.join(choices)}.", field=name)
            values[name] = data[name]
    if "low_balance_threshold" in data:
        threshold = data["low_balance_threshold"]
        values["low_balance_threshold"] = (
            None if threshold is None else credits_parse(threshold, field="low_balance_threshold", allow_zero=True)
        )
    if "auto_top_up_credits" in data:
        top_up = data["auto_top_up_credits"]
        values["auto_top_up_credits"] = None if top_up is None else credits_parse(top_up, field="auto_top_up_credits")
    return values


@transaction.atomic(savepoint=False)
def wallet_create_locked(
    *,
    customer: Customer,
    currency: str,
    name: str = "Credits",
    conversion_rate: Decimal = Decimal(1),
    applies_to: str = Wallet.AppliesTo.ALL,
    low_balance_threshold: Decimal | None = None,
    auto_top_up_credits: Decimal | None = None,
    status: str = Wallet.Status.ACTIVE,
) -> Wallet:
    """:func:`wallet_create` inside the caller's transaction (the admin's change form is one)."""
    values = wallet_check(
        {
            "currency": currency,
            "name": name,
            "conversion_rate": conversion_rate,
            "applies_to": applies_to,
            "low_balance_threshold": low_balance_threshold,
            "auto_top_up_credits": auto_top_up_credits,
            "status": status,
        }
    )
    return Wallet.objects.create(customer=customer, **values)


@transaction.atomic(durable=True)
def wallet_create(
    *,
    customer: Customer,
    currency: str,
    name: str = "Credits",
    conversion_rate: Decimal = Decimal(1),
    applies_to: str = Wallet.AppliesTo.ALL,
    low_balance_threshold: Decimal | None = None,
    auto_top_up_credits: Decimal | None = None,
) -> Wallet:
    """Create an active wallet. Raises ValidationFailed naming the field (currency, conversion_rate...)."""
    return wallet_create_locked(
        customer=customer,
        currency=currency,
        name=name,
        conversion_rate=conversion_rate,
        applies_to=applies_to,
        low_balance_threshold=low_balance_threshold,
        auto_top_up_credits=auto_top_up_credits,
    )


@transaction.atomic(savepoint=False)
def wallet_update_locked(*, wallet: Wallet, data: Mapping[str, Any]) -> Wallet:
    """Change the fields of ``wallet`` present in ``data`` (PATCH; :data:`WALLET_UPDATABLE`, by :func:`wallet_check`'s
    rules). Call inside a transaction (the admin's change form is one); locks the wallet.

    Only those columns are written: the balance and the threshold flag move with the ledger under the same lock,
    and a save of the whole row would write back whatever balance was read before the lock. Returns the locked row.
    """
    unknown = sorted(set(data) - set(WALLET_UPDATABLE))
    if unknown:
        raise ValidationFailed(f"'{unknown[0]}' cannot be changed.", field=unknown[0])
    values = wallet_check(data)
    wallet = wallet_lock(wallet=wallet)
    changed = [name for name, value in values.items() if getattr(wallet, name) != value]
    for name in changed:
        setattr(wallet, name, values[name])
    if changed:
        wallet.save(update_fields=changed)
    return wallet


def wallet_for_plan_credits(*, customer: Customer, currency: str, create: bool = True) -> Wallet | None:
    """The customer's first active wallet in ``currency``; created (rate 1, applies to all) if none (API.md),
    or ``None`` then with ``create=False`` (a credit note's refund: docs/billing-rules.md).

    Call inside a transaction; the customer row is locked so two boundaries never create two wallets.
    """
    Customer.objects.select_for_update().filter(pk=customer.pk).first()
    wallet = (
        Wallet.objects.filter(customer=customer, currency=currency, status=Wallet.Status.ACTIVE)
        .order_by("created_at", "id")
        .first()
    )
    if wallet is not None or not create:
        return wallet
    return Wallet.objects.create(customer=customer, currency=currency, name="Credits", conversion_rate=Decimal(1))


@transaction.atomic(savepoint=False)
def wallet_grant_create_locked(
    *,
    wallet: Wallet,
    credits: Decimal,
    kind: str,
    now: datetime,
    priority: int = 10,
    effective_at: datetime | None = None,
    expires_at: datetime | None = None,
    idempotency_key: str | None = None,
    name: str = "",
    subscription=None,
    plan_credit_grant=None,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    rollover_cap: Decimal | None = None,
    forfeit_on_end: bool = False,
    reference: str = "",
    check_expiry: bool = True,
) -> tuple[CreditGrant, bool]:
    """Grant credits (a lot plus its ``grant`` ledger row). Call inside a transaction; locks the wallet.

    Returns ``(grant, created)``; a replayed ``idempotency_key`` with the same payload returns the first grant
    and ``False``; the same key with a different payload (credits, kind, priority, name, expiry, or an
    ``effective_at`` given and different) is a Conflict (409) naming ``idempotency_key``: a key names one grant.
    Rules: credits > 0; ``expires_at`` after ``now`` (and after ``effective_at``); ``effective_at`` may be
    in the past (migrated balances are usable from then). Never creates an invoice.
    """
    wallet = wallet_lock(wallet=wallet)
    credits = credits_parse(credits)
    replay = {
        "credits": credits,
        "kind": kind,
        "priority": priority,
        "name": name or "",
        "expires_at": expires_at,
        "effective_at": effective_at,
    }
    if idempotency_key:
        existing = CreditGrant.objects.filter(wallet=wallet, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replayed(existing, replay), False
    if wallet.balance + credits >= MAX_BALANCE:
        # The balance column holds 16 digits before the point: beyond it the update failed in the database.
        raise ValidationFailed(f"The wallet's balance would reach {MAX_BALANCE:,} credits or more.", field="credits")
    if kind not in CreditGrant.Kind.values:
        raise ValidationFailed(f"Must be one of {', '.join(CreditGrant.Kind.values)}.", field="kind")
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        raise ValidationFailed("Must be a whole number, 0 or more.", field="priority")
    effective_at = effective_at or now
    if expires_at is not None and check_expiry and expires_at <= now:
        raise ValidationFailed("Must be in the future.", field="expires_at")
    if expires_at is not None and expires_at <= effective_at:
        raise ValidationFailed("Must be after effective_at.", field="expires_at")
    if wallet.status != Wallet.Status.ACTIVE:
        raise ValidationFailed("This wallet is closed.", field="wallet")
    try:
        with transaction.atomic():
            grant = CreditGrant.objects.create(
                wallet=wallet,
                kind=kind,
                name=name,
                credits=credits,
                remaining=credits,
                priority=priority,
                effective_at=effective_at,
                expires_at=expires_at,
                idempotency_key=idempotency_key or None,
                subscription=subscription,
                plan_credit_grant=plan_credit_grant,
                period_start=period_start,
                period_end=period_end,
                rollover_cap=rollover_cap,
                forfeit_on_end=forfeit_on_end,
            )
    except IntegrityError:
        return _replayed(CreditGrant.objects.get(wallet=wallet, idempotency_key=idempotency_key), replay), False
    ledger_append(
        wallet=wallet,
        grant=grant,
        type=LedgerEntry.Type.GRANT,
        credits=credits,
        idempotency_key=f"grant:{grant.pk}",
        reference=reference or f"grant:{grant.pk}",
        description=name or grant.get_kind_display(),
        move_grant=False,
    )
    if kind == CreditGrant.Kind.PAID:  # bought credits (an auto top-up, or a purchase granted by finance)
        record_event("wallet.topped_up", wallet, grant=grant)
    return grant, True


def _replayed(existing: CreditGrant, replay: dict) -> CreditGrant:
    """The grant a replayed idempotency key names, if the replay asks for the same grant; else Conflict (409)."""
    differs = [
        field
        for field, value in replay.items()
        if not (field == "effective_at" and value is None) and getattr(existing, field) != value
    ]
    if differs:
        raise Conflict(
            f"This idempotency key was used for another grant (different {', '.join(differs)}).",
            field="idempotency_key",
            code="idempotency_key_reused",
        )
    return existing


@transaction.atomic(durable=True)
def wallet_grant_create(**kwargs) -> tuple[CreditGrant, bool]:
    """Entry point (API): :func:`wallet_grant_create_locked` in its own durable transaction.

    Takes the same keyword arguments: ``wallet, credits, kind, now, priority=10, effective_at=None,
    expires_at=None, idempotency_key=None, name=""`` and the plan-grant source fields.
    """
    return wallet_grant_create_locked(**kwargs)


@transaction.atomic(savepoint=False)
def wallet_grant_void_locked(*, grant: CreditGrant, now: datetime, reason: str = "") -> Decimal:
    """Void what is left of a grant (a ``void`` ledger row). Returns the credits voided (0 if nothing left).

    Credits held for a draft invoice are not voided (they are reserved for it and pay it when it is
    finalized; if the draft gives them up they expire, the grant being voided). Call inside a transaction
    (the admin's changeform is one); locks wallet then grant. Idempotent.
    """
    wallet = wallet_lock(wallet=grant.wallet)
    grant = CreditGrant.objects.select_for_update().get(pk=grant.pk)
    if grant.free <= 0:
        return Decimal(0)
    credits = grant.free
    _, created = ledger_append(
        wallet=wallet,
        grant=grant,
        type=LedgerEntry.Type.VOID,
        credits=-credits,
        idempotency_key=f"void:{grant.pk}:{grant.ledger.count()}",
        reference=f"grant:{grant.pk}",
        description=reason or "Remaining credits voided",
        grant_status=CreditGrant.Status.VOIDED,
    )
    return credits if created else Decimal(0)


@transaction.atomic(savepoint=False)
def wallet_grant_revoke_locked(*, grant: CreditGrant, credits: Decimal, key: str, reason: str) -> Decimal:
    """Take ``credits`` back from a grant (a ``void`` ledger row), e.g. when what paid for them is credited or voided.

    Only free credits can be taken back: if fewer than ``credits`` are left unspent (spent, held for a draft,
    expired or voided), nothing is taken and Conflict (409) is raised. The grant is ``voided`` once nothing is
    left. Idempotent per ``key``. Call inside a transaction; locks wallet then grant.
    """
    wallet = wallet_lock(wallet=grant.wallet)
    grant = CreditGrant.objects.select_for_update().get(pk=grant.pk)
    if credits > grant.free:
        if LedgerEntry.objects.filter(wallet=wallet, idempotency_key=key).exists():
            return Decimal(0)  # a replay: taken back already
        raise Conflict(
            f"Only {format_decimal(grant.free)} of the {format_decimal(grant.credits)} credits of grant {grant.pk} "
            "are unspent; "
            f"{format_decimal(credits)} cannot be taken back.",
            code="credits_spent",
        )
    left = grant.remaining - credits
    _, created = ledger_append(
        wallet=wallet,
        grant=grant,
        type=LedgerEntry.Type.VOID,
        credits=-credits,
        idempotency_key=key,
        reference=f"grant:{grant.pk}",
        description=reason,
        grant_status=CreditGrant.Status.VOIDED if left == 0 else None,
    )
    return credits if created else Decimal(0)


@transaction.atomic(savepoint=False)
def wallet_grants_expire(*, wallet: Wallet, now: datetime) -> int:
    """Turn credits past their ``expires_at`` (at or before ``now``) into ``expire`` ledger rows.

    Also expires free credits of a grant that is no longer active (released from a draft invoice after the
    grant had expired, rolled over or been voided). Held credits never expire while held. Call inside a
    transaction. Returns the grants expired.
    """
    wallet = wallet_lock(wallet=wallet)
    grants = grants_locked(wallet=wallet, filters=Q(expires_at__lte=now) | ~Q(status=CreditGrant.Status.ACTIVE))
    by_id = {g.pk: g for g in grants}
    count = 0
    inactive = [g for g in grants if g.status != CreditGrant.Status.ACTIVE and g.free > 0]
    for grant in inactive:
        status = grant.status if grant.status != CreditGrant.Status.CONSUMED else CreditGrant.Status.EXPIRED
        if grant_expire_locked(
            wallet=wallet,
            grant=grant,
            credits=grant.free,
            reference=f"grant:{grant.pk}",
            key=f"expire:{grant.pk}:{grant.ledger.count()}",
            description="Expired (no longer active)",
            status=status,
        ):
            count += 1
    active = [g for g in grants if g.status == CreditGrant.Status.ACTIVE]
    for take in expired_lots(lots_of(active), now):
        grant = by_id[take.lot_id]
        if grant_expire_locked(
            wallet=wallet,
            grant=grant,
            credits=take.credits,
            reference=f"grant:{grant.pk}",
            key=f"expire:{grant.pk}:{grant.ledger.count()}",
            description=f"Expired at {grant.expires_at:%Y-%m-%d %H:%M} UTC",
        ):
            count += 1
    return count


def wallet_get(*, wallet_id: object) -> Wallet:
    """A wallet by id (a string in the API); NotFound (404) when unknown or malformed."""
    try:
        pk = int(str(wallet_id))
    except ValueError:
        raise NotFound("Unknown wallet.") from None
    wallet = Wallet.objects.select_related("customer").filter(pk=pk).first()
    if wallet is None:
        raise NotFound("Unknown wallet.")
    return wallet
