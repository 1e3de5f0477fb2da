"""Invoicing services (entry points are durable transactions). Re-exported here."""

from .boundary import subscription_bill_once, subscription_catch_up
from .changes import ChangeOutcome, subscription_change, subscription_change_cancel
from .invoices import (
    credit_note_issue,
    invoice_finalize,
    invoice_finalize_locked,
    invoice_recalculate,
    invoice_void,
    number_next,
    payment_record,
)
from .lifecycle import subscription_cancel, subscription_start, subscription_start_locked
from .overrides import subscription_price_overrides_update
from .run import RunSummary, billing_run_execute
from .trials import subscription_trial_end_bill

__all__ = [
    "ChangeOutcome",
    "RunSummary",
    "billing_run_execute",
    "credit_note_issue",
    "invoice_finalize",
    "invoice_finalize_locked",
    "invoice_recalculate",
    "invoice_void",
    "number_next",
    "payment_record",
    "subscription_bill_once",
    "subscription_cancel",
    "subscription_change",
    "subscription_change_cancel",
    "subscription_catch_up",
    "subscription_price_overrides_update",
    "subscription_start",
    "subscription_start_locked",
    "subscription_trial_end_bill",
]
