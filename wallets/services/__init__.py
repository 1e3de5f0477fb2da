"""Wallet services (writes). Entry points are durable transactions; ``*_locked`` variants run inside one."""

from .alerts import wallet_balance_check_locked, wallet_spendable
from .consumption import consume_from_locked, usable_filter, wallet_consume, wallet_consume_locked
from .grants import (
    MANUAL_KINDS,
    WALLET_UPDATABLE,
    credits_parse,
    wallet_check,
    wallet_create,
    wallet_create_locked,
    wallet_for_plan_credits,
    wallet_get,
    wallet_grant_create,
    wallet_grant_create_locked,
    wallet_grant_revoke_locked,
    wallet_grant_void_locked,
    wallet_grants_expire,
    wallet_update_locked,
)
from .holds import holds_consume_locked, holds_of_invoice_locked, holds_place_locked, holds_release_locked
from .invoice_payment import wallet_invoice_pay, wallet_invoice_release
from .plan_credits import (
    credits_share,
    plan_credit_grant_create,
    plan_credits_change,
    plan_credits_close,
    plan_credits_grant_period,
)

__all__ = [
    "MANUAL_KINDS",
    "WALLET_UPDATABLE",
    "consume_from_locked",
    "credits_parse",
    "credits_share",
    "holds_consume_locked",
    "holds_of_invoice_locked",
    "holds_place_locked",
    "holds_release_locked",
    "plan_credit_grant_create",
    "plan_credits_change",
    "plan_credits_close",
    "plan_credits_grant_period",
    "usable_filter",
    "wallet_balance_check_locked",
    "wallet_check",
    "wallet_consume",
    "wallet_consume_locked",
    "wallet_create",
    "wallet_create_locked",
    "wallet_for_plan_credits",
    "wallet_get",
    "wallet_grant_create",
    "wallet_grant_create_locked",
    "wallet_grant_revoke_locked",
    "wallet_grant_void_locked",
    "wallet_grants_expire",
    "wallet_invoice_pay",
    "wallet_invoice_release",
    "wallet_spendable",
    "wallet_update_locked",
]
