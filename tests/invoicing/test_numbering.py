"""The invoice number taken and the finalized row written in one statement (``invoicing.services.numbering``):
the same numbers as ``number_next`` gives, gapless, and nothing taken when the transaction rolls back."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction

from invoicing.models import Invoice, NumberSequence
from invoicing.services import invoice_finalize, number_next
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import InvoiceFactory, InvoiceLineFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _draft(amount: str = "10.00") -> Invoice:
    invoice = InvoiceFactory(customer=CustomerFactory(), total=Decimal(amount), subtotal=Decimal(amount))
    InvoiceLineFactory(invoice=invoice, amount=Decimal(amount))
    return invoice


def test_the_first_invoice_creates_the_sequence_and_is_numbered_inv_000001():
    NumberSequence.objects.filter(name="invoice").delete()
    invoice = invoice_finalize(invoice=_draft(), now=NOW)
    stored = Invoice.objects.get(pk=invoice.pk)
    assert invoice.number == stored.number == "INV-000001"
    assert stored.status == Invoice.Status.FINALIZED and stored.issued_at == NOW
    assert NumberSequence.objects.get(name="invoice").last_value == 1


def test_numbers_follow_the_sequence_and_keep_every_digit_past_six():
    NumberSequence.objects.update_or_create(name="invoice", defaults={"prefix": "INV-", "last_value": 41})
    assert invoice_finalize(invoice=_draft(), now=NOW).number == "INV-000042"
    NumberSequence.objects.filter(name="invoice").update(last_value=999_999)
    # 999,999 + 1 = 1,000,000: seven digits, as number_next formats it ("INV-" + f"{1000000:06d}").
    assert invoice_finalize(invoice=_draft(), now=NOW).number == "INV-1000000"
    assert number_next(name="invoice") == "INV-1000001"  # the same sequence, the same format


def test_a_finalization_rolled_back_gives_its_number_back():
    NumberSequence.objects.update_or_create(name="invoice", defaults={"prefix": "INV-", "last_value": 7})
    draft = _draft()
    with pytest.raises(RuntimeError), transaction.atomic():
        invoice_finalize(invoice=draft, now=NOW)
        raise RuntimeError("fails after the number was taken")
    draft.refresh_from_db()
    assert draft.number is None and draft.status == Invoice.Status.DRAFT
    # 7 was the last number; the rolled-back one (8) is taken again by the next finalization.
    assert invoice_finalize(invoice=Invoice.objects.get(pk=draft.pk), now=NOW).number == "INV-000008"
