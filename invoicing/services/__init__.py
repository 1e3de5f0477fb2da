"""Invoicing services (entry points are durable transactions). Re-exported here."""

from .boundary import subscription_cancel, subscription_start
from .run import RunSummary, billing_run_execute

__all__ = ["RunSummary", "billing_run_execute", "subscription_cancel", "subscription_start"]
