"""Template filters shared by the admin pages and the invoice PDF: ``{{ value|instant }}``, ``{{ value|day }}``."""

from __future__ import annotations

from django import template

from core.instants import format_day, format_instant

register = template.Library()


@register.filter
def instant(value) -> str:
    """``1 Mar 2026, 14:05`` (UTC; the page says once that its times are UTC)."""
    return format_instant(value, empty="—") if value else "—"


@register.filter
def day(value) -> str:
    """``1 Mar 2026`` (the UTC day)."""
    return format_day(value, empty="—") if value else "—"
