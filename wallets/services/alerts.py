"""Low-balance alerts (once per crossing) and auto top-ups.

Rules chosen where the design is silent:

* a wallet is *low* when its **spendable** balance -- the balance less the credits held for draft
  invoices, which are as good as spent (Lago's ongoing balance) -- is strictly below its threshold; the
  alert is re-armed once it is back at or above the threshold (including right after an auto top-up lifts
  it there), so each downward crossing raises exactly one alert;
* an auto top-up is bought only together with its purchase invoice (the ``top_up`` callback invoicing
  passes): credits are never granted as "paid" without an invoice asking for their price.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from core.money import format_decimal
from core.outbox import record_event

from ..models import CreditGrant, LowBalanceAlert, Wallet
from ._ledger import wallet_lock
from .grants import wallet_grant_create_locked

#: ``top_up(wallet=, grant=, now=)``: what an auto top-up buys besides the paid grant (a purchase invoice,
#: made by invoicing; a function argument keeps wallets below invoicing).
TopUp = Callable[..., object]


def _alert_email(alert_id: int) -> None:
    alert = LowBalanceAlert.objects.select_related("wallet__customer").get(pk=alert_id)
    customer = alert.wallet.customer
    if not customer.email:
        return
    wallet = alert.wallet
    body = (
        f'Hello {customer.name},\n\nThe balance of your wallet "{wallet.name}" ({wallet.currency}) is '
        f"{format_decimal(alert.balance)} credits, below your alert threshold of {format_decimal(alert.threshold)}.\n"
    )
    if alert.top_up_grant_id:
        body += f"An automatic top-up of {format_decimal(alert.top_up_grant.credits)} credits was purchased.\n"
    send_mail(
        subject=f"{settings.PRODUCT_NAME}: low credit balance",
        message=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[customer.email],
    )
    LowBalanceAlert.objects.filter(pk=alert_id).update(emailed_at=timezone.now())


def wallet_spendable(*, wallet: Wallet) -> Decimal:
    """The wallet's balance less the credits its lots hold for draft invoices (call holding the wallet lock)."""
    held = CreditGrant.objects.filter(wallet=wallet, held__gt=0).aggregate(s=Sum("held"))["s"] or Decimal(0)
    return wallet.balance - held


@transaction.atomic(savepoint=False)
def wallet_balance_check_locked(
    *, wallet: Wallet, now: datetime, top_up: TopUp | None = None
) -> LowBalanceAlert | None:
    """Raise a low-balance alert on a downward crossing; buy the auto top-up; re-arm above the threshold.

    Call inside a transaction (locks the wallet). The email goes out with ``transaction.on_commit``. The
    top-up is a ``paid`` grant keyed by the alert (bought once per crossing) plus ``top_up(...)``'s work (the
    purchase invoice); without ``top_up`` no credits are bought, the alert is raised all the same.
    Returns the new alert, if one was raised.
    """
    wallet = wallet_lock(wallet=wallet)
    threshold = wallet.low_balance_threshold
    if threshold is None:
        return None
    spendable = wallet_spendable(wallet=wallet)
    if spendable >= threshold:
        if wallet.below_threshold:
            Wallet.objects.filter(pk=wallet.pk).update(below_threshold=False)
        return None
    if wallet.below_threshold:
        return None
    alert = LowBalanceAlert.objects.create(wallet=wallet, balance=spendable, threshold=threshold)
    record_event("wallet.low_balance", wallet, spendable_balance=spendable, threshold=threshold)
    below = True
    Wallet.objects.filter(pk=wallet.pk).update(below_threshold=True)
    if wallet.auto_top_up_credits and wallet.status == Wallet.Status.ACTIVE and top_up is not None:
        grant, _ = wallet_grant_create_locked(
            wallet=wallet,
            credits=wallet.auto_top_up_credits,
            kind=CreditGrant.Kind.PAID,
            now=now,
            idempotency_key=f"top-up:alert:{alert.pk}",
            name="Automatic top-up",
            reference=f"alert:{alert.pk}",
        )
        alert.top_up_grant = grant
        alert.save(update_fields=["top_up_grant"])
        top_up(wallet=wallet, grant=grant, now=now)
        below = wallet_spendable(wallet=wallet_lock(wallet=wallet)) < threshold
    Wallet.objects.filter(pk=wallet.pk).update(below_threshold=below)
    transaction.on_commit(lambda: _alert_email(alert.pk))
    return alert
