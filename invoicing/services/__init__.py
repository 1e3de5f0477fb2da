"""Invoicing services (entry points are durable transactions). Re-exported here."""

from .run import RunSummary, billing_run_execute

__all__ = ["RunSummary", "billing_run_execute"]
