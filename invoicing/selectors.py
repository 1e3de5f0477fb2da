"""Invoicing reads."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from customers.models import Customer


def customer_pending_payable(*, customer: Customer, currency: str, now: datetime) -> tuple[Decimal, Decimal]:
    """Money that unbilled usage of current periods and draft invoices will ask wallets to pay.

    Returns ``(payable_by_all_lines_wallets, payable_by_usage_only_wallets)`` in ``currency``: amounts net of
    credits already held for drafts. Used for a wallet's real-time balance.
    """
    return Decimal("0"), Decimal("0")
