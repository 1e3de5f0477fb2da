"""One-off invoices: free lines (services, add-ons, a settlement) billed to a customer (DESIGN.md "Coupons, one-off
invoices"; API.md ``POST /invoices``).

Rules (docs/billing-rules.md "One-off invoices"):

* A line is ``description``, ``amount`` (the price of one unit, >= 0) and ``quantity`` (> 0, default 1); its amount
  is ``amount x quantity`` rounded half-up once to the currency's minor unit. A line may name an ``addon`` (the
  add-ons catalog): its name and default amount fill what the line leaves out.
* The invoice is ``kind`` and ``reason`` ``one_off``, has no subscription and no period, is in the customer's
  currency and taxed with the customer's rates like any invoice (once per rate on the lines' sum). Coupons never
  apply to it.
* ``finalize`` (default true): it is finalized at once (numbered from the same gapless sequence, wallet credits
  applied, ``paid`` when nothing is due); otherwise it stays a draft until finance finalizes it (a billing run
  does not finalize it on its own: ``finalize_after`` is empty) and holds wallet credits as any draft does.
* Bad input is a 400 naming the field: no line (``lines``), a negative amount or a zero quantity, an unknown
  add-on or one in another currency (``lines``), another currency than the customer's (``currency``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from catalog.pricing import quantize_minor
from core.errors import ValidationFailed
from core.money import format_decimal, format_money
from customers.models import Customer

from ..models import Addon, Invoice, InvoiceLine
from .invoices import invoice_credits_settle, invoice_finalize_locked, invoice_lines_write
from .lines import LineDraft


@dataclass(frozen=True)
class OneOffLine:
    """One line as asked: ``amount`` per unit (``None``: the add-on's default), ``description`` (empty: the
    add-on's name)."""

    description: str = ""
    amount: Decimal | None = None
    quantity: Decimal = Decimal(1)
    addon: str | None = None


def _line_draft(i: int, line: OneOffLine, currency: str, addons: dict[str, Addon]) -> LineDraft:
    where = f"Line {i + 1}"
    addon = None
    if line.addon:
        addon = addons.get(line.addon)
        if addon is None:
            raise ValidationFailed(f"{where}: unknown add-on '{line.addon}'.", field="lines")
        if addon.currency != currency:
            raise ValidationFailed(f"{where}: add-on {addon.key} is priced in {addon.currency}.", field="lines")
    unit = line.amount if line.amount is not None else (addon.amount if addon else None)
    if unit is None:
        raise ValidationFailed(f"{where}: an amount is required.", field="lines")
    if not unit.is_finite() or unit < 0:
        raise ValidationFailed(f"{where}: the amount must not be negative.", field="lines")
    if not line.quantity.is_finite() or line.quantity <= 0:
        raise ValidationFailed(f"{where}: the quantity must be greater than 0.", field="lines")
    description = (line.description or "").strip() or (addon.name if addon else "")
    if not description:
        raise ValidationFailed(f"{where}: a description is required.", field="lines")
    amount = quantize_minor(unit * line.quantity, currency)
    details = {
        "explanation": f"{format_decimal(line.quantity)} × {format_money(unit, currency)}",
        "unit_amount": f"{unit:f}",
    }
    if addon is not None:
        details["addon"] = addon.key
        details["addon_name"] = addon.name
    return LineDraft(
        kind=InvoiceLine.Kind.ONE_OFF,
        description=description[:500],
        amount=amount,
        quantity=line.quantity,
        unit_amount=unit,
        details=details,
    )


@transaction.atomic(durable=True)
def one_off_invoice_create(
    *, customer: Customer, lines: Sequence[OneOffLine], now: datetime, currency: str = "", finalize: bool = True
) -> Invoice:
    """Bill ``lines`` to ``customer`` on a new one-off invoice (see the module's rules). Locks the customer first
    (then the invoice, wallets and lots when finalizing)."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    currency = currency or customer.currency
    if currency != customer.currency:
        raise ValidationFailed(
            f"{customer.name} is billed in {customer.currency}; a one-off invoice is in the customer's currency.",
            field="currency",
        )
    if not lines:
        raise ValidationFailed("A one-off invoice needs at least one line.", field="lines")
    keys = {line.addon for line in lines if line.addon}
    addons = {a.key: a for a in Addon.objects.filter(key__in=keys)} if keys else {}
    drafts = [_line_draft(i, line, currency, addons) for i, line in enumerate(lines)]
    invoice = Invoice.objects.create(
        kind=Invoice.Kind.ONE_OFF,
        reason=Invoice.Reason.ONE_OFF,
        customer=customer,
        currency=currency,
        status=Invoice.Status.DRAFT,
        finalize_after=None,
    )
    invoice_lines_write(invoice=invoice, lines=drafts, now=now)
    if finalize:
        return invoice_finalize_locked(invoice=invoice, now=now)
    invoice_credits_settle(invoice=invoice, now=now)  # a draft holds wallet credits, as a subscription draft does
    return invoice


@transaction.atomic
def addon_create(*, key: str, name: str, amount: Decimal, currency: str) -> Addon:
    """A new add-on for one-off lines: 400 ``key`` when taken, ``amount`` negative or not in whole minor units."""
    if Addon.objects.filter(key=key).exists():
        raise ValidationFailed(f"An add-on with key '{key}' already exists.", field="key")
    if not amount.is_finite() or amount < 0:
        raise ValidationFailed("Must not be negative.", field="amount")
    if quantize_minor(amount, currency) != amount:
        raise ValidationFailed(f"Must be in whole minor units of {currency}.", field="amount")
    return Addon.objects.create(key=key, name=name or key, amount=amount, currency=currency)
