"""Invoice PDFs: ``templates/invoicing/invoice.html`` rendered by WeasyPrint. Dates are shown in the customer's
timezone (the finalization copy, ``BillTo.timezone``), and the document names that zone.

The document carries the seller (``settings.SELLER_NAME``, ``SELLER_ADDRESS``, ``SELLER_TAX_ID``) and whom it
bills (the finalization copy of the customer's name, email and address); a draft or a preview is watermarked.
Rows that would read "-$0.00" (no credits, no payment, no credit note) are left out.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.template.loader import render_to_string

from core.instants import zone_note
from core.money import format_decimal, format_money

from .models import BillTo, Invoice
from .services.lines import period_label_of


def breakdown_rows(details: dict, currency: str) -> list[dict[str, str]]:
    """A line's tier breakdown (``details["breakdown"]``) formatted for people: the PDF's and the admin's table."""
    return [
        {
            "tier": piece.get("tier"),
            "range": f"{format_decimal(Decimal(piece['first_unit']))} – "
            + ("∞" if piece.get("up_to") is None else format_decimal(Decimal(piece["up_to"]))),
            "units": format_decimal(Decimal(piece["units"])),
            "unit_amount": format_money(Decimal(piece["unit_amount"]), currency),
            "flat_amount": format_money(Decimal(piece["flat_amount"]), currency),
            "amount": format_money(Decimal(piece["amount"]), currency),
        }
        for piece in (details or {}).get("breakdown") or []
    ]


def _line_context(line, currency: str, zone: str = "UTC") -> dict:
    details = line.details or {}
    return {
        "description": line.description,
        "kind": line.get_kind_display() if hasattr(line, "get_kind_display") else line.kind,
        "period": period_label_of(line, timezone=zone),
        "quantity": format_decimal(line.quantity),
        "amount": format_money(line.amount, currency),
        "discount": format_money(-line.discount, currency) if getattr(line, "discount", 0) else "—",
        "discount_coupons": ", ".join(d.get("coupon", "") for d in details.get("discounts") or []),
        "tax": format_money(line.tax, currency),
        "explanation": details.get("explanation", ""),
        "plan_version": details.get("plan_version"),
        "meter": details.get("meter"),
        "proration": (details.get("proration") or {}).get("text"),
        "breakdown": breakdown_rows(details, currency),
    }


def invoice_bill_to(invoice) -> BillTo:
    """Who the document is addressed to: the finalization copy of a stored invoice, the live customer otherwise."""
    if isinstance(invoice, Invoice):
        return invoice.bill_to
    return BillTo.of_customer(invoice.customer)  # a preview: nothing issued yet


def seller() -> dict:
    """Who issues the invoices (settings): name, address lines (``SELLER_ADDRESS`` split at ``;``), tax id."""
    return {
        "name": settings.SELLER_NAME,
        "address_lines": [part.strip() for part in settings.SELLER_ADDRESS.split(";") if part.strip()],
        "tax_id": settings.SELLER_TAX_ID,
    }


def _deductions(invoice, currency: str) -> list[dict[str, str]]:
    """What comes off the total, only where something does: credits, notes to the invoice, payments."""
    rows = []
    for name, label in (
        ("credits_applied", "Credits applied"),
        ("credit_notes_total", "Credit notes"),
        ("amount_paid", "Paid"),
    ):
        value = getattr(invoice, name, None)
        if value:
            rows.append({"label": label, "amount": format_money(-value, currency)})
    return rows


def _coupons(invoice, currency: str, stored: bool) -> list[dict[str, str]]:
    """One "why" per coupon that discounted the invoice (``LAUNCH10: $10.00 fixed, once; $40.00 left``) and its
    amount; a preview carries its own list."""
    if not stored:
        return [
            {"explanation": c["explanation"], "amount": format_money(-Decimal(c["amount"]), currency)}
            for c in getattr(invoice, "coupons", None) or []
        ]
    return [
        {"explanation": row.explanation, "amount": format_money(-row.amount, currency)}
        for row in invoice.coupon_discounts.all()
    ]


def invoice_context(invoice) -> dict:
    """Template context for an invoice (stored, or an unsaved preview with ``lines`` as a list).

    ``customer`` is the live row (for links and previews); what the document prints is ``bill_to``.
    """
    currency = invoice.currency
    lines = invoice.lines.all() if hasattr(invoice.lines, "all") else invoice.lines
    money = {
        name: format_money(getattr(invoice, name), currency)
        for name in ("subtotal", "tax", "total", "credits_applied", "credit_notes_total", "amount_paid", "amount_due")
        if hasattr(invoice, name)
    }
    # Shown only when there is one (DESIGN.md's order: subtotal -> ... -> progressive billing credit -> tax).
    if invoice.progressive_billing_credit:
        money["progressive_billing_credit"] = format_money(invoice.progressive_billing_credit, currency)
    stored = isinstance(invoice, Invoice) and invoice.pk is not None
    status_words = "Preview (nothing issued)" if invoice.status == "preview" else invoice.get_status_display()
    taxes = [
        {
            "label": f"{t['code']} ({t['percentage']}%)",
            "taxable": format_money(Decimal(t["taxable"]), currency),
            "amount": format_money(Decimal(t["amount"]), currency),
        }
        for t in (invoice.tax_breakdown or [])
    ]
    discount = getattr(invoice, "discount", None) or Decimal(0)
    money["discount_off"] = format_money(-discount, currency)
    bill_to = invoice_bill_to(invoice)
    zone = zone_note(bill_to.timezone)
    return {
        "invoice": invoice,
        "zone": zone,
        "discounted": bool(discount),
        "coupons": _coupons(invoice, currency, stored),
        "number": invoice.number or ("Preview" if invoice.status == "preview" else "Draft"),
        "status": invoice.status,
        "status_words": status_words,
        # Not an issued document yet: every page says so across its face.
        "watermark": {"draft": "DRAFT", "preview": "PREVIEW"}.get(invoice.status, ""),
        "seller": seller(),
        "customer": invoice.customer,
        "bill_to": bill_to,
        "period": period_label_of(invoice, timezone=zone),
        "lines": [_line_context(line, currency, zone) for line in lines],
        "taxes": taxes,
        # One row per tax rate already says the tax; a total row only when several rates add up (or none applies).
        "tax_total_row": len(taxes) != 1,
        "deductions": _deductions(invoice, currency),
        "payments": [
            {
                "paid_at": p.paid_at,
                "method": p.get_method_display(),
                "reference": p.reference,
                "amount": format_money(p.amount, p.currency),
            }
            for p in invoice.payments.order_by("paid_at", "id")
        ]
        if stored
        else [],
        "credit_notes": [
            {
                "number": n.number,
                "created_at": n.created_at,
                "reason": n.reason,
                "effect": n.get_refund_to_display(),
                "amount": format_money(n.amount, n.currency),
            }
            for n in invoice.credit_notes.order_by("created_at", "id")
        ]
        if stored
        else [],
        "money": money,
    }


def invoice_html(invoice) -> str:
    return render_to_string("invoicing/invoice.html", invoice_context(invoice))


def invoice_pdf_filename(invoice: Invoice) -> str:
    """``INV-000042.pdf``, or ``draft-7.pdf`` before the invoice has a number."""
    return f"{invoice.number or f'draft-{invoice.pk}'}.pdf"


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice as a PDF document (bytes starting with ``%PDF``)."""
    from weasyprint import HTML

    return HTML(string=invoice_html(invoice)).write_pdf()
