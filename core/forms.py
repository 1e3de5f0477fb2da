"""Form pieces shared by every app's admin."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from .money import decimal_text


class DecimalInput(forms.NumberInput):
    """A number field that shows a stored decimal as people type it: ``99``, ``0.05``, ``0`` (never the column's
    ``99.000000000000`` or ``0E-12``). Only what the field shows changes: a posted value is read as typed.

    The admin's widget for every decimal column (``backoffice.admin_site``)."""

    def format_value(self, value):
        if isinstance(value, Decimal) and value.is_finite():
            return decimal_text(value)
        return super().format_value(value)
