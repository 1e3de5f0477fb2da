"""Template filters shared by the admin pages and the invoice PDF: ``{{ value|instant }}``, ``{{ value|day }}``."""

from __future__ import annotations

from django import template

from core.instants import format_day, format_day_in, format_instant, format_instant_in

register = template.Library()


@register.filter
def instant(value) -> str:
    """``1 Mar 2026, 14:05`` (UTC; the page says once that its times are UTC)."""
    return format_instant(value, empty="—") if value else "—"


@register.filter
def instant_in(value, timezone) -> str:
    """``1 Mar 2026, 00:00`` on the wall clock of ``timezone`` (a customer's IANA zone; the page names it)."""
    return format_instant_in(value, timezone, empty="—") if value else "—"


@register.filter
def day_in(value, timezone) -> str:
    """``1 Mar 2026``: the local day in ``timezone`` (a customer's IANA zone; the page names it)."""
    return format_day_in(value, timezone, empty="—") if value else "—"


@register.filter
def day(value) -> str:
    """``1 Mar 2026`` (the UTC day)."""
    return format_day(value, empty="—") if value else "—"
