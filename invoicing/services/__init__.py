"""Invoicing services (entry points are durable transactions). Re-exported here."""

from .boundary import subscription_bill_once, subscription_catch_up
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

__all__ = [
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
    "subscription_catch_up",
    "subscription_price_overrides_update",
    "subscription_start",
    "subscription_start_locked",
]
