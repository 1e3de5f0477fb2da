"""Wallet services (writes). Entry points are durable transactions; ``*_locked`` variants run inside one."""

from .alerts import wallet_balance_check_locked
from .consumption import consume_from_locked, usable_filter, wallet_consume, wallet_consume_locked
from .grants import (
    MANUAL_KINDS,
    credits_parse,
    wallet_create,
    wallet_for_plan_credits,
    wallet_get,
    wallet_grant_create,
    wallet_grant_create_locked,
    wallet_grant_void_locked,
    wallet_grants_expire,
)
from .plan_credits import plan_credit_grant_create, plan_credits_close, plan_credits_grant_period

__all__ = [
    "MANUAL_KINDS",
    "consume_from_locked",
    "credits_parse",
    "plan_credit_grant_create",
    "plan_credits_close",
    "plan_credits_grant_period",
    "usable_filter",
    "wallet_balance_check_locked",
    "wallet_consume",
    "wallet_consume_locked",
    "wallet_create",
    "wallet_for_plan_credits",
    "wallet_get",
    "wallet_grant_create",
    "wallet_grant_create_locked",
    "wallet_grant_void_locked",
    "wallet_grants_expire",
]
