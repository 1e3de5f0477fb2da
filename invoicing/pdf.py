"""Invoice PDFs: ``templates/invoicing/invoice.html`` rendered by WeasyPrint. Dates are shown in UTC."""

from __future__ import annotations

from decimal import Decimal

from django.template.loader import render_to_string

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


def _line_context(line, currency: str) -> dict:
    details = line.details or {}
    return {
        "description": line.description,
        "kind": line.get_kind_display() if hasattr(line, "get_kind_display") else line.kind,
        "period": period_label_of(line),
        "quantity": format_decimal(line.quantity),
        "amount": format_money(line.amount, currency),
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
    customer = invoice.customer  # a preview: nothing issued yet
    return BillTo(name=customer.name, email=customer.email, external_id=customer.external_id)


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
    return {
        "invoice": invoice,
        "number": invoice.number or ("Preview" if invoice.status == "preview" else "Draft"),
        "status": invoice.status,
        "customer": invoice.customer,
        "bill_to": invoice_bill_to(invoice),
        "period": period_label_of(invoice),
        "lines": [_line_context(line, currency) for line in lines],
        "taxes": [
            {
                "label": f"{t['code']} ({t['percentage']}%)",
                "taxable": format_money(Decimal(t["taxable"]), currency),
                "amount": format_money(Decimal(t["amount"]), currency),
            }
            for t in (invoice.tax_breakdown or [])
        ],
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
