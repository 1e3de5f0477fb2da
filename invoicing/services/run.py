"""The scheduled work, as of an instant: the one service that run_billing and Celery beat both call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class RunSummary:
    as_of: datetime
    boundaries: int = 0
    invoices_created: int = 0
    invoices_finalized: int = 0
    grants_expired: int = 0
    alerts: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"as of {self.as_of.isoformat()}: {self.boundaries} period boundaries, {self.invoices_created} invoices "
            f"created, {self.invoices_finalized} finalized, {self.grants_expired} grants expired, "
            f"{self.alerts} low-balance alerts, {len(self.failures)} failures"
        )


def billing_run_execute(*, now: datetime, customer_external_id: str | None = None, progress=None) -> RunSummary:
    """Do all scheduled work due at or before ``now`` (optionally for one customer), idempotently."""
    return RunSummary(as_of=now)
