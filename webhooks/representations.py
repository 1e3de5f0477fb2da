"""What an event's ``data`` is: the object as the API shows it (``core.outbox`` calls :func:`represent`).

* customer, subscription, invoice, credit note: exactly the API's object (``GET /customers/{id}``...); an
  invoice with its lines, read in one query;
* ``wallet.low_balance``, ``wallet.topped_up``, ``credits.expired``: the wallet as the API shows it (read
  fresh: its balance after the change), plus ``grant`` (the lot bought or expired, as the API shows grants)
  and the event's own figures (``credits`` expired; ``spendable_balance`` and ``threshold`` of a low balance),
  as decimal strings;
* ``alert.triggered``: the trigger as ``GET /alerts/{id}/triggers`` lists it, with its ``alert``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from customers.api.serializers import CustomerOutputSerializer, SubscriptionOutputSerializer
from customers.models import Customer, Subscription
from invoicing.api.serializers import (
    CreditNoteOutputSerializer,
    InvoiceLineOutputSerializer,
    InvoiceOutputSerializer,
)
from invoicing.models import CreditNote, Invoice
from wallets.api.views import GrantOutput, WalletOutput
from wallets.models import CreditGrant, Wallet

from .alerts import plain, trigger_data
from .models import AlertTrigger


class EventInvoiceSerializer(InvoiceOutputSerializer):
    """The API's invoice, its lines with what they name read in one query."""

    def get_lines(self, invoice) -> list[dict]:
        lines = invoice.lines.select_related("price", "plan_version", "meter").order_by("position", "id")
        return InvoiceLineOutputSerializer(lines, many=True).data


def _wallet(wallet: Wallet, extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(WalletOutput(Wallet.objects.select_related("customer").get(pk=wallet.pk)).data)
    for key, value in extra.items():
        if isinstance(value, CreditGrant):
            out[key] = dict(GrantOutput(CreditGrant.objects.get(pk=value.pk)).data)
        else:
            out[key] = plain(value) if isinstance(value, Decimal) else value
    return out


def represent(event_type: str, obj: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(obj, Customer):
        return dict(CustomerOutputSerializer(obj).data)
    if isinstance(obj, Subscription):
        return dict(SubscriptionOutputSerializer(obj).data)
    if isinstance(obj, Invoice):  # as stored at this point of the transaction (amounts as the columns hold them)
        return dict(EventInvoiceSerializer(Invoice.objects.select_related("customer").get(pk=obj.pk)).data)
    if isinstance(obj, CreditNote):
        return dict(CreditNoteOutputSerializer(obj).data)
    if isinstance(obj, Wallet):
        return _wallet(obj, extra)
    if isinstance(obj, AlertTrigger):
        return trigger_data(obj)
    raise TypeError(f"no representation of {type(obj).__name__} for {event_type}")
