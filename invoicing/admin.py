"""Admin for finance: invoices (read-only documents changed only through actions), payments, credit notes.

Every action goes through a confirmation page (with a form for payments and credit notes), calls one
service per invoice, reports each success or failure with ``message_user`` and logs to ``LogEntry``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Sum
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from catalog.pricing import quantize_minor
from core.admin import ReadOnlyAdminMixin, currency_filter
from core.errors import BillingError
from core.instants import format_instant, validate_instant, zone_note
from core.money import format_decimal, format_money
from customers.models import Customer

from .admin_coupons import (
    AddonAdmin,
    AppliedCouponAdmin,
    CouponAdmin,
    apply_coupon_view,
    discount_block,
    one_off_invoice_view,
)
from .models import Addon, AppliedCoupon, BillingRun, Coupon, CreditNote, Invoice, InvoiceLine, Payment
from .pdf import breakdown_rows, invoice_context, invoice_pdf, invoice_pdf_filename
from .selectors import invoice_progressive_links, upcoming_invoice_preview
from .services import credit_note_issue, invoice_finalize, invoice_recalculate, invoice_void, payment_record
from .services.lines import period_label_of


def _currencies_in_use() -> list[str]:
    """The currencies documents can be in: the customers' and the wallets' (credit purchases), in one small query
    over those tables rather than a DISTINCT over every invoice or payment."""
    from wallets.models import Wallet

    customers = Customer.objects.order_by().values_list("currency", flat=True).distinct()
    return list(customers.union(Wallet.objects.order_by().values_list("currency", flat=True).distinct()))


def _links(invoices, link) -> str:
    return format_html_join(", ", "{}", ((link(inv),) for inv in invoices))


def line_explanation(details: dict, currency: str, *, facts: bool = True) -> str:
    """A line's "why" as HTML: the explanation, plan version, meter, proration (``facts``) and a small tier table
    (its "Flat" column only when a tier has a flat amount; numbers right-aligned, each on one line)."""
    if not details:
        return "—"
    notes = []
    if details.get("plan_version") is not None:
        notes.append(f"plan version {details['plan_version']}")
    if details.get("meter"):
        notes.append(f"meter {details['meter']}")
    if details.get("period"):
        notes.append(details["period"])
    if details.get("proration"):
        notes.append(details["proration"].get("text", ""))
    html = format_html("<div>{}</div>", details.get("explanation", ""))
    if details.get("progressive_billing_explanation"):  # the share of the progressive billing credit
        html += format_html("<div>{}</div>", details["progressive_billing_explanation"])
    if facts:
        html += format_html("<div class='line-facts' style='color:#666'>{}</div>", " · ".join(notes))
    pieces = breakdown_rows(details, currency)
    if pieces:
        flat = any(Decimal(str(piece.get("flat_amount") or 0)) for piece in details["breakdown"])
        cell = "<td class='num'>{}</td>"
        columns = ("range", "units", "unit_amount", *(("flat_amount",) if flat else ()), "amount")
        rows = format_html_join(
            "",
            "<tr><td>{}</td>" + cell * len(columns) + "</tr>",
            ((p["tier"], *(p[c] for c in columns)) for p in pieces),
        )
        titles = [t for t in ("Tier", "Range", "Units", "Unit price", "Flat", "Amount") if flat or t != "Flat"]
        head = format_html_join("", "<th>{}</th>", ((t,) for t in titles))
        html += format_html("<table class='tier-breakdown'><tr>{}</tr>{}</table>", head, rows)
    return html


def line_summary(line: InvoiceLine) -> str:
    """The line's first column on the invoice page: its description, then what it is and what priced it."""
    facts = [format_html("{}", line.get_kind_display())]
    if line.price_id:
        url = reverse("admin:catalog_price_change", args=[line.price_id])
        facts.append(format_html('price <a href="{}">{}</a>', url, line.price.name))
    if line.plan_version_id:
        facts.append(format_html("plan version {}", line.plan_version.number))
    if line.meter_id:
        facts.append(format_html("meter {}", line.meter.key))
    proration = (line.details or {}).get("proration")
    if proration and proration.get("text"):
        facts.append(format_html("{}", proration["text"]))
    return format_html(
        "<div>{}</div><div class='line-facts'>{}</div>",
        line.description,
        format_html_join(" · ", "{}", ((f,) for f in facts)),
    )


class InvoiceLineInline(admin.TabularInline):
    """The invoice's lines: what each is (description, kind, price, plan version, meter), its numbers, and why."""

    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = ("line", "quantity_display", "amount_display", "discount_display", "tax_display", "why")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("price", "plan_version", "meter", "invoice")

    def get_fields(self, request, obj=None):
        # The discount column only on an invoice that coupons discounted: other pages keep their width.
        if obj is not None and not obj.discount and not obj.coupon_discounts.exists():
            return [f for f in self.fields if f != "discount_display"]
        return self.fields

    @admin.display(description="Line")
    def line(self, line):
        return line_summary(line)

    @admin.display(description="Quantity")
    def quantity_display(self, line):
        return format_decimal(line.quantity)

    @admin.display(description="Amount")
    def amount_display(self, line):
        return format_money(line.amount, line.invoice.currency)

    @admin.display(description="Discount")
    def discount_display(self, line):
        shares = (line.details or {}).get("discounts") or []
        if not shares:
            return "—" if not line.discount else format_money(-line.discount, line.invoice.currency)
        return format_html(
            "<div>{}</div>{}",
            format_money(-line.discount, line.invoice.currency),
            format_html_join(
                "",
                "<div class='line-facts'>{}</div>",
                ((share["coupon"],) for share in shares),
            ),
        )

    @admin.display(description="Tax")
    def tax_display(self, line):
        return format_money(line.tax, line.invoice.currency)

    @admin.display(description="Why this amount")
    def why(self, line):
        return line_explanation(line.details, line.invoice.currency, facts=False)  # the facts: in the first column


def _due_in_minor_units(invoice: Invoice | None) -> Decimal | None:
    """What the invoice still asks for, as the payment form shows it (25.00, not the stored 25.0000)."""
    return quantize_minor(invoice.amount_due, invoice.currency) if invoice is not None else None


class IssuedMonthFilter(admin.SimpleListFilter):
    """Invoices issued in one UTC month (``?issued_month=2026-03``): the dashboard's "issued this month" links.

    The choices are the last twelve months, computed without a query; any other well-formed month works too.
    """

    title = "issued in"
    parameter_name = "issued_month"

    def lookups(self, request, model_admin):
        first = timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        months = []
        for back in range(12):
            index = first.year * 12 + first.month - 1 - back
            months.append(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC))
        return [(f"{m:%Y-%m}", f"{m:%B %Y}") for m in months]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            start = datetime.strptime(self.value(), "%Y-%m").replace(tzinfo=UTC)
            index = start.year * 12 + start.month  # the next month, counted from month 0 of year 0
            end = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
        except ValueError:
            raise IncorrectLookupParameters(f"issued_month must look like 2026-03, not {self.value()!r}") from None
        return queryset.filter(issued_at__gte=start, issued_at__lt=end)


class PaymentForm(forms.Form):
    amount = forms.DecimalField(max_digits=19, decimal_places=4, min_value=Decimal("0.0001"))
    paid_at = forms.DateTimeField(
        label="Received at",
        required=False,
        validators=[validate_instant],
        help_text="When the money arrived (UTC), e.g. 2026-03-01 14:05. Empty = now. Never in the future.",
    )
    method = forms.ChoiceField(
        choices=[(Payment.Method.OFFLINE, Payment.Method.OFFLINE.label)],
        initial=Payment.Method.OFFLINE,
        required=False,
        help_text="Wallet credits are applied by billing, never recorded here.",
    )
    reference = forms.CharField(
        max_length=200, required=False, help_text="The bank transfer or cheque reference, as on the statement."
    )


def payment_told(invoice: Invoice, payment: Payment) -> str:
    """ "Payment of $50.00 recorded on INV-000012; $74.00 still due." (or "...; INV-000012 is paid in full.")."""
    recorded = f"Payment of {format_money(payment.amount, payment.currency)} recorded on {invoice}"
    if invoice.amount_due > 0:
        return f"{recorded}; {format_money(invoice.amount_due, invoice.currency)} still due."
    return f"{recorded}; {invoice} is paid in full."


def credit_note_told(invoice: Invoice, note: CreditNote) -> str:
    amount = format_money(note.amount, note.currency)
    if note.refund_to == CreditNote.RefundTo.WALLET:
        return (
            f"Credit note {note.number} of {amount} issued on {invoice}: refunded to the customer's "
            f"{note.currency} wallet as credits; what the invoice owes is unchanged."
        )
    still = (
        f"{format_money(invoice.amount_due, invoice.currency)} still due"
        if invoice.amount_due > 0
        else "nothing left to pay"
    )
    return f"Credit note {note.number} of {amount} issued on {invoice}: credited to the invoice; {still}."


class CreditNoteForm(forms.Form):
    amount = forms.DecimalField(max_digits=19, decimal_places=4, min_value=Decimal("0.0001"))
    reason = forms.CharField(max_length=500)
    refund_to = forms.ChoiceField(choices=CreditNote.RefundTo.choices, initial=CreditNote.RefundTo.INVOICE)


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    show_full_result_count = False  # a large table: a search counts its matches only
    list_display = (  # credits applied and the issue date: on the invoice's page
        "number_display",
        "billed_to",
        "status",
        "period_display",
        "total_display",
        "amount_due_display",
        "due_at",
    )
    list_filter = (
        "status",
        IssuedMonthFilter,
        ("period_start", admin.DateFieldListFilter),
        currency_filter("customer__currency", lambda: _currencies_in_use()),
        "kind",
        "reason",
    )
    search_fields = ("number", "customer__external_id", "customer__name", "bill_to_name")
    list_select_related = ("customer",)
    date_hierarchy = "period_start"
    inlines = [InvoiceLineInline]
    actions = ["recalculate_action", "finalize_action", "void_action", "record_payment_action", "credit_note_action"]
    change_list_template = "admin/invoicing/invoice/change_list.html"
    change_form_template = "admin/invoicing/invoice/change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "number",
                    "status",
                    "kind",
                    "reason",
                    "bill_to_block",
                    "subscription",
                    "currency",
                    "pdf_link",
                    "progressive_links",
                )
            },
        ),
        (
            "Period and dates",
            {
                "fields": (
                    "period_start",
                    "period_end",
                    "billing_boundary_at",
                    "issued_at",
                    "due_at",
                    "finalize_after",
                    "paid_at",
                    "voided_at",
                )
            },
        ),
        (
            "Totals",
            {
                "fields": (
                    "subtotal_display",
                    "discount_display",
                    "progressive_credit_display",
                    "tax_display_block",
                    "total_display",
                    "credits_display",
                    "credit_notes_display",
                    "amount_paid_display",
                    "amount_due_display",
                )
            },
        ),
        ("Payments and credit notes", {"fields": ("payments_table", "credit_notes_table")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # Invoices are documents: every field is computed by services and never edited by hand here.
        return [f for block in self.fieldsets for f in block[1]["fields"]]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_finalize_permission(self, request) -> bool:
        # Irreversible documents (finalize, void, credit notes) need the finance admin's permission.
        return request.user.has_perm("invoicing.finalize_invoice")

    def has_change_permission(self, request, obj=None):
        # Finalized invoices never change: their page is view-only (actions re-check state in services).
        if obj is not None and obj.status != Invoice.Status.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    @admin.display(description="Number", ordering="number")
    def number_display(self, obj):
        return str(obj)  # the number, or "Draft #7"

    # Who the invoice is addressed to: the copy taken at finalization for issued invoices (Invoice.bill_to).
    @admin.display(description="Customer", ordering="customer__name")
    def billed_to(self, obj):
        bill_to = obj.bill_to
        return f"{bill_to.name} ({bill_to.external_id})"

    @admin.display(description="Billed to")
    def bill_to_block(self, obj):
        bill_to = obj.bill_to
        url = reverse("admin:customers_customer_change", args=[obj.customer_id])
        details = format_html_join("", "<br>{}", ((line,) for line in [*bill_to.address_lines, bill_to.email] if line))
        note = (
            "The customer as it is now; copied onto the invoice when it is finalized."
            if obj.status == Invoice.Status.DRAFT
            else "As at finalization: later edits of the customer do not change it."
        )
        return format_html(
            '<a href="{}">{} ({})</a>{}<div class="help">{}</div>',
            url,
            bill_to.name,
            bill_to.external_id,
            details,
            note,
        )

    @admin.display(description="Period", ordering="period_start")
    def period_display(self, obj):
        # The customer's days (the zone copied at finalization; a draft's customer as it is now), named unless UTC.
        zone = zone_note(obj.bill_to.timezone)
        label = period_label_of(obj, "—", timezone=zone)
        return label if zone == "UTC" or not obj.period_start else f"{label} ({zone})"

    @admin.display(description="Total", ordering="total")
    def total_display(self, obj):
        return format_money(obj.total, obj.currency)

    @admin.display(description="Credits applied")
    def credits_display(self, obj):
        return format_money(obj.credits_applied, obj.currency)

    @admin.display(description="Amount due", ordering="amount_due")
    def amount_due_display(self, obj):
        return format_money(obj.amount_due, obj.currency)

    # Money on the invoice page carries its currency symbol, rounded to the minor unit ($25.00, not 25.0000).
    @admin.display(description="Subtotal")
    def subtotal_display(self, obj):
        return format_money(obj.subtotal, obj.currency)

    @admin.display(description="Discount (coupons)")
    def discount_display(self, obj):
        return discount_block(obj)

    @admin.display(description="Progressive billing credit")
    def progressive_credit_display(self, obj):
        if not obj.progressive_billing_credit:
            return "None"
        return format_html(
            "− {} already billed by this period's progressive invoices (deducted before tax)",
            format_money(obj.progressive_billing_credit, obj.currency),
        )

    @admin.display(description="Progressive billing")
    def progressive_links(self, obj):
        """A progressive invoice links to its period invoice; a period invoice to its progressive invoices."""
        closing, progressive = invoice_progressive_links(invoice=obj)

        def link(invoice):
            url = reverse("admin:invoicing_invoice_change", args=[invoice.pk])
            return format_html(
                '<a href="{}">{}</a> ({}, {})',
                url,
                invoice,
                format_money(invoice.total, invoice.currency),
                invoice.get_status_display().lower(),
            )

        parts = []
        if obj.reason == Invoice.Reason.PROGRESSIVE:
            parts.append(
                format_html(
                    "Threshold {} reached (usage billed so far this period). Period invoice: {}",
                    format_money(obj.progressive_threshold_reached, obj.currency),
                    link(closing) if closing else "not issued yet (it deducts this invoice at the period's end)",
                )
            )
            if progressive:
                parts.append(format_html("Other progressive invoices of the period: {}", _links(progressive, link)))
        elif progressive:
            parts.append(format_html("Progressive invoices of this period: {}", _links(progressive, link)))
        return format_html_join("", "<div>{}</div>", ((p,) for p in parts)) if parts else "—"

    @admin.display(description="Credit notes")
    def credit_notes_display(self, obj):
        """Both kinds of note: what reduced the amount due, and what went back to the wallet (which does not)."""
        refunded = sum(
            (n.amount for n in obj.credit_notes.all() if n.refund_to == CreditNote.RefundTo.WALLET), Decimal(0)
        )
        if not refunded:
            if not obj.credit_notes_total:
                return "None"
            return format_money(obj.credit_notes_total, obj.currency) + " credited to the invoice"
        return format_html(
            "{} credited to the invoice<br>{} refunded to the customer's wallet (as credits; the amount due is "
            "unchanged)",
            format_money(obj.credit_notes_total, obj.currency),
            format_money(refunded, obj.currency),
        )

    @admin.display(description="Payments")
    def payments_table(self, obj):
        payments = list(obj.payments.order_by("paid_at", "id")) if obj.pk else []
        if not payments:
            return "None."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td style='text-align:right'>{}</td></tr>",
            (
                (
                    format_instant(p.paid_at),
                    p.get_method_display(),
                    p.reference or "—",
                    format_money(p.amount, p.currency),
                )
                for p in payments
            ),
        )
        return format_html(
            "<table class='invoice-payments'><thead><tr><th>Received</th><th>Method</th><th>Reference</th>"
            "<th>Amount</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Credit notes issued")
    def credit_notes_table(self, obj):
        notes = list(obj.credit_notes.order_by("created_at", "id")) if obj.pk else []
        if not notes:
            return "None."
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td "
            "style='text-align:right'>{}</td></tr>",
            (
                (
                    reverse("admin:invoicing_creditnote_change", args=[n.pk]),
                    n.number,
                    format_instant(n.created_at),
                    n.get_refund_to_display(),
                    n.reason,
                    format_money(n.amount, n.currency),
                )
                for n in notes
            ),
        )
        return format_html(
            "<table class='invoice-credit-notes'><thead><tr><th>Number</th><th>Issued</th><th>Effect</th>"
            "<th>Reason</th><th>Amount</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Amount paid")
    def amount_paid_display(self, obj):
        return format_money(obj.amount_paid, obj.currency)

    @admin.display(description="Tax")
    def tax_display_block(self, obj):
        if not obj.tax_breakdown:
            return format_money(obj.tax, obj.currency)
        return format_html_join(
            "",
            "<div>{} ({}%) on {}: {}</div>",
            (
                (
                    t["code"],
                    t["percentage"],
                    format_money(Decimal(t["taxable"]), obj.currency),
                    format_money(Decimal(t["amount"]), obj.currency),
                )
                for t in obj.tax_breakdown
            ),
        )

    @admin.display(description="PDF")
    def pdf_link(self, obj):
        if not obj.pk:
            return "—"
        return format_html(
            '<a class="button" href="{}">Download PDF</a>', reverse("admin:invoicing_invoice_pdf", args=[obj.pk])
        )

    # ---- extra views -----------------------------------------------------------------------------
    def get_urls(self):
        return [
            path("<int:invoice_id>/pdf/", self.admin_site.admin_view(self.pdf_view), name="invoicing_invoice_pdf"),
            path(
                "upcoming/<int:customer_id>/",
                self.admin_site.admin_view(self.upcoming_view),
                name="invoicing_invoice_upcoming",
            ),
            path(
                "one-off/<int:customer_id>/",
                self.admin_site.admin_view(
                    lambda request, customer_id: one_off_invoice_view(self, request, customer_id)
                ),
                name="invoicing_invoice_one_off",
            ),
            path(
                "apply-coupon/<int:customer_id>/",
                self.admin_site.admin_view(lambda request, customer_id: apply_coupon_view(self, request, customer_id)),
                name="invoicing_invoice_apply_coupon",
            ),
            *super().get_urls(),
        ]

    def pdf_view(self, request, invoice_id):
        invoice = get_object_or_404(Invoice, pk=invoice_id)
        if not self.has_view_permission(request, invoice):
            raise PermissionDenied
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_pdf_filename(invoice)}"'
        return response

    def upcoming_view(self, request, customer_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        customer = get_object_or_404(Customer, pk=customer_id)
        preview = upcoming_invoice_preview(customer=customer, now=timezone.now())
        context = {
            **self.admin_site.each_context(request),
            **invoice_context(preview),
            "opts": self.model._meta,
            "title": f"Upcoming invoice for {customer}",
            "preview_lines": [
                {
                    "line": line,
                    "why": line_explanation(line.details, preview.currency),
                    "period": period_label_of(line, timezone=customer.timezone),
                    "amount": format_money(line.amount, preview.currency),
                    "quantity": format_decimal(line.quantity),
                }
                for line in preview.lines
            ],
        }
        return TemplateResponse(request, "admin/invoicing/invoice/upcoming.html", context)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = getattr(response, "context_data", {}).get("cl")  # a redirect (after an action) has no context
        if cl is not None:
            rows = (
                cl.queryset.order_by()
                .values("currency")
                .annotate(n=Count("id"), total=Sum("total"), due=Sum("amount_due"), paid=Sum("amount_paid"))
                .order_by("currency")
            )
            response.context_data["invoice_totals"] = [
                {
                    "currency": r["currency"],
                    "count": r["n"],
                    "total": format_money(r["total"], r["currency"]),
                    "due": format_money(r["due"], r["currency"]),
                    "paid": format_money(r["paid"], r["currency"]),
                }
                for r in rows
            ]
        return response

    # ---- actions ---------------------------------------------------------------------------------
    # Started from an invoice's own page (its buttons post ``_return_to_object``), an action ends back on that
    # page; from the list, on the list. Each success is told per invoice, with what changed.
    RETURN_TO_OBJECT = "_return_to_object"

    def _from_object(self, request, queryset) -> Invoice | None:
        if request.POST.get(self.RETURN_TO_OBJECT) and queryset.count() == 1:
            return queryset.first()
        return None

    def _back(self, request, queryset):
        invoice = self._from_object(request, queryset)
        if invoice is None:
            return None  # the list, as Django does after an action
        return HttpResponseRedirect(reverse("admin:invoicing_invoice_change", args=[invoice.pk]))

    def _confirm(self, request, queryset, *, action, title, explanation, form=None):
        invoice = self._from_object(request, queryset)
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "explanation": explanation,
            "queryset": queryset,
            "action": action,
            "form": form,
            "opts": self.model._meta,
            "rows": [
                {
                    "invoice": inv,
                    "total": format_money(inv.total, inv.currency),
                    "due": format_money(inv.amount_due, inv.currency),
                }
                for inv in queryset.select_related("customer")
            ],
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "return_to_object": invoice is not None,
            "back_url": reverse("admin:invoicing_invoice_change", args=[invoice.pk])
            if invoice is not None
            else reverse("admin:invoicing_invoice_changelist"),
        }
        return TemplateResponse(request, "admin/invoicing/invoice/action_confirm.html", context)

    def _run(self, request, queryset, *, verb, call):
        """Call the service for each invoice: an error is told for its invoice, the invoices done together."""
        done = []
        for invoice in queryset:
            try:
                call(invoice)
            except BillingError as exc:
                self.message_user(request, f"{invoice}: not {verb}: {exc.message}", level=messages.ERROR)
                continue
            invoice.refresh_from_db()
            self.log_change(request, invoice, f"{verb.capitalize()} in the admin")
            done.append(str(invoice))
        if done:
            self.message_user(request, f"{', '.join(done)} {verb}.", level=messages.SUCCESS)

    def _simple_action(self, request, queryset, *, action, verb, title, explanation, service):
        if request.POST.get("confirm") != "yes":
            return self._confirm(request, queryset, action=action, title=title, explanation=explanation)
        self._run(request, queryset, verb=verb, call=lambda inv: service(invoice=inv, now=timezone.now()))
        return self._back(request, queryset)

    @admin.action(description="Recalculate selected drafts from events", permissions=["change"])
    def recalculate_action(self, request, queryset):
        return self._simple_action(
            request,
            queryset,
            action="recalculate_action",
            verb="recalculated",
            title="Recalculate drafts",
            explanation="Each draft's lines are rebuilt from the events stored now. Finalized invoices are refused.",
            service=invoice_recalculate,
        )

    @admin.action(description="Finalize selected drafts (assigns numbers)", permissions=["finalize"])
    def finalize_action(self, request, queryset):
        return self._simple_action(
            request,
            queryset,
            action="finalize_action",
            verb="finalized",
            title="Finalize invoices",
            explanation=(
                "Finalizing assigns the next invoice number and makes the invoice unchangeable. This cannot be undone."
            ),
            service=invoice_finalize,
        )

    @admin.action(description="Void selected unpaid invoices", permissions=["finalize"])
    def void_action(self, request, queryset):
        return self._simple_action(
            request,
            queryset,
            action="void_action",
            verb="voided",
            title="Void invoices",
            explanation="Voiding cancels what a finalized, unpaid invoice asks for. This cannot be undone.",
            service=invoice_void,
        )

    def _form_action(
        self, request, queryset, *, action, form_class, title, explanation, verb, call, told, initial=None
    ):
        """One invoice, a form. A refusal that names one of the form's fields is shown beside that field, on
        the form again (nothing was done); any other refusal is told in a message."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one invoice.", level=messages.WARNING)
            return None
        form = form_class(request.POST if request.POST.get("confirm") == "yes" else None, initial=initial)
        if request.POST.get("confirm") != "yes" or not form.is_valid():
            return self._confirm(request, queryset, action=action, title=title, explanation=explanation, form=form)
        invoice = queryset.get()
        try:
            result = call(invoice, form.cleaned_data)
        except BillingError as exc:
            if exc.field in form.fields:
                form.add_error(exc.field, exc.message)
                return self._confirm(request, queryset, action=action, title=title, explanation=explanation, form=form)
            self.message_user(request, f"{invoice}: not {verb}: {exc.message}", level=messages.ERROR)
            return self._back(request, queryset)
        invoice.refresh_from_db()
        self.log_change(request, invoice, f"{verb.capitalize()} in the admin")
        self.message_user(request, told(invoice, result), level=messages.SUCCESS)
        return self._back(request, queryset)

    @admin.action(description="Record an offline payment", permissions=["change"])
    def record_payment_action(self, request, queryset):
        return self._form_action(
            request,
            queryset,
            action="record_payment_action",
            form_class=PaymentForm,
            title="Record a payment",
            # The usual case is a payment of everything still due: offered, and editable for a partial one.
            initial={"amount": _due_in_minor_units(queryset.first())},
            explanation=(
                "Record money received outside the system (bank transfer, cheque). Partial payments are allowed."
            ),
            verb="paid",
            call=lambda inv, data: payment_record(
                invoice=inv,
                amount=data["amount"],
                reference=data["reference"],
                paid_at=data["paid_at"],
                now=timezone.now(),
            ),
            told=payment_told,
        )

    @admin.action(description="Issue a credit note", permissions=["finalize"])
    def credit_note_action(self, request, queryset):
        return self._form_action(
            request,
            queryset,
            action="credit_note_action",
            form_class=CreditNoteForm,
            title="Issue a credit note",
            explanation="A numbered credit note reduces what the invoice owes, or refunds what was received for it "
            "to the customer's wallet in the invoice's currency (it must have one). This cannot be undone.",
            verb="credited",
            call=lambda inv, data: credit_note_issue(
                invoice=inv,
                amount=data["amount"],
                reason=data["reason"],
                refund_to=data["refund_to"],
                now=timezone.now(),
            ),
            told=credit_note_told,
        )

    def response_change(self, request, obj):
        return HttpResponseRedirect(request.path)


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("paid_at", "invoice", "amount_display", "method", "reference")
    list_filter = ("method", currency_filter("currency", lambda: _currencies_in_use()))
    search_fields = ("invoice__number", "reference", "invoice__customer__external_id")
    list_select_related = ("invoice",)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj):
        return format_money(obj.amount, obj.currency)


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("number", "invoice", "amount_display", "refund_to", "reason", "created_at")
    list_filter = ("refund_to", currency_filter("currency", lambda: _currencies_in_use()))
    search_fields = ("number", "invoice__number", "invoice__customer__external_id", "reason")
    list_select_related = ("invoice",)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj):
        return format_money(obj.amount, obj.currency)


@admin.register(BillingRun)
class BillingRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("started_at", "as_of", "trigger", "customer_external_id", "status", "summary")
    list_filter = ("status", "trigger")
    search_fields = ("customer_external_id", "summary")


admin.site.register(Coupon, CouponAdmin)
admin.site.register(AppliedCoupon, AppliedCouponAdmin)
admin.site.register(Addon, AddonAdmin)
