"""Wallet test helpers: the ledger check every wallet test ends with, and a grant shortcut."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from wallets.models import Wallet
from wallets.selectors import wallet_ledger_check

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def assert_ledger_whole(wallet: Wallet) -> None:
    """Balance == ledger sum == lots' remaining, and no lot below zero."""
    check = wallet_ledger_check(wallet=wallet)
    assert check.ok, check
    assert not wallet.grants.filter(remaining__lt=0).exists()


def grant(wallet, credits, kind="promotional", **kwargs):
    """Grant through the service (``now`` defaults to T0); returns the grant."""
    from wallets.services import wallet_grant_create_locked

    kwargs.setdefault("now", T0)
    g, _ = wallet_grant_create_locked(wallet=wallet, credits=Decimal(credits), kind=kind, **kwargs)
    return g
