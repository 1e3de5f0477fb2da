"""Output shapes of invoices, lines and credit notes (shared/API.md); decimals travel as strings."""

from __future__ import annotations

from decimal import Context, Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field({"type": "string", "format": "decimal", "example": "124.00"})
class MoneyString(serializers.Field):
    """A Decimal amount as a string, already quantized (the stored minor-unit scale is kept as is)."""

    def to_representation(self, value):
        return None if value is None else _fmt(value)


# Wide enough for any amount a preview can compute (usage of 20-digit values times 12-dp prices), so showing a
# number never fails where the thread's 28-digit default context would (a 500 on the upcoming invoice).
_WIDE = Context(prec=80)


def _fmt(value) -> str:
    # Stored amounts are (19, 4) columns already rounded to the minor unit: show them at 2 dp for
    # 2-dp currencies ("124.00"), keeping extra digits only when a currency needs them (KWD 0.001).
    cents = value.quantize(Decimal("0.01"), context=_WIDE)
    if value == cents:
        return f"{cents:f}"
    return f"{value.normalize(_WIDE):f}"


def _qty(value) -> str | None:
    if value is None:
        return None
    normalized = value.normalize(_WIDE)
    if normalized == normalized.to_integral(context=_WIDE):
        return f"{normalized.quantize(Decimal(1), context=_WIDE):f}"
    return f"{normalized:f}"


class InvoiceLineOutputSerializer(serializers.Serializer):
    kind = serializers.CharField()
    description = serializers.CharField()
    price = serializers.SerializerMethodField()
    plan_version = serializers.SerializerMethodField()
    meter = serializers.SerializerMethodField()
    quantity = serializers.SerializerMethodField()
    amount = MoneyString()
    discount = MoneyString(help_text="This line's share of the coupons' discount (details.discounts: whose).")
    tax = MoneyString()
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)
    details = serializers.JSONField()

    def get_price(self, line) -> str | None:
        return line.price.name if line.price is not None else None

    def get_plan_version(self, line) -> int | None:
        return line.plan_version.number if line.plan_version is not None else None

    def get_meter(self, line) -> str | None:
        return line.meter.key if line.meter is not None else None

    def get_quantity(self, line) -> str | None:
        return _qty(line.quantity)


class InvoiceOutputSerializer(serializers.Serializer):
    id = serializers.SerializerMethodField()
    number = serializers.CharField(allow_null=True)
    status = serializers.CharField()
    kind = serializers.CharField(help_text="subscription, credit_purchase, one_off or progressive.")
    reason = serializers.CharField(
        allow_null=True, help_text="Why it was issued: start, boundary, cancel, credit_purchase..."
    )
    customer = serializers.SerializerMethodField()
    subscription = serializers.SerializerMethodField()
    currency = serializers.CharField()
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)
    issued_at = serializers.DateTimeField(allow_null=True)
    due_at = serializers.DateTimeField(allow_null=True)
    lines = serializers.SerializerMethodField()
    subtotal = MoneyString()
    discount = MoneyString(help_text="Coupons' discount (the sum of coupons[].amount), before tax.")
    coupons = serializers.SerializerMethodField()
    progressive_billing_credit = MoneyString(
        help_text="What progressive invoices of the period already billed, deducted before tax."
    )
    tax = MoneyString()
    total = MoneyString()
    credits_applied = MoneyString()
    amount_paid = MoneyString()
    amount_due = MoneyString()
    tax_breakdown = serializers.JSONField()

    def get_id(self, invoice) -> str | None:
        return None if invoice.id is None else str(invoice.id)

    def get_customer(self, invoice) -> str:
        return invoice.customer.external_id

    def get_subscription(self, invoice) -> str | None:
        return None if invoice.subscription is None else str(invoice.subscription.pk)

    @extend_schema_field(
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "coupon": {"type": "string"},
                    "amount": {"type": "string", "format": "decimal"},
                    "explanation": {"type": "string"},
                },
            },
        }
    )
    def get_coupons(self, invoice) -> list[dict]:
        """``[{"coupon": code, "amount", "explanation"}]`` in the order they discounted (a preview has none)."""
        rows = getattr(invoice, "coupon_discounts", None)
        if rows is None or not hasattr(rows, "all"):
            return list(getattr(invoice, "coupons", None) or [])
        return [
            {"coupon": row.applied_coupon.coupon.code, "amount": _fmt(row.amount), "explanation": row.explanation}
            for row in rows.all()
        ]

    def get_lines(self, invoice) -> list[dict]:
        lines = invoice.lines.all() if hasattr(invoice.lines, "all") else invoice.lines
        return InvoiceLineOutputSerializer(lines, many=True).data


class CreditNoteOutputSerializer(serializers.Serializer):
    id = serializers.SerializerMethodField()
    number = serializers.CharField()
    invoice = serializers.SerializerMethodField()
    amount = MoneyString()
    currency = serializers.CharField()
    reason = serializers.CharField()
    refund_to = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_id(self, note) -> str:
        return str(note.pk)

    def get_invoice(self, note) -> str:
        return str(note.invoice_id)
