"""Admin for finance: invoices (read-only documents changed only through actions), payments, credit notes.

Every action goes through a confirmation page (with a form for payments and credit notes), calls one
service per invoice, reports each success or failure with ``message_user`` and logs to ``LogEntry``.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Sum
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from catalog.pricing import quantize_minor
from core.admin import ReadOnlyAdminMixin
from core.errors import BillingError
from core.money import format_decimal, format_money
from customers.models import Customer

from .models import BillingRun, CreditNote, Invoice, InvoiceLine, Payment
from .pdf import breakdown_rows, invoice_context, invoice_pdf, invoice_pdf_filename
from .selectors import upcoming_invoice_preview
from .services import credit_note_issue, invoice_finalize, invoice_recalculate, invoice_void, payment_record
from .services.lines import period_label_of


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
    fields = ("line", "quantity_display", "amount_display", "tax_display", "why")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("price", "plan_version", "meter", "invoice")

    @admin.display(description="Line")
    def line(self, line):
        return line_summary(line)

    @admin.display(description="Quantity")
    def quantity_display(self, line):
        return format_decimal(line.quantity)

    @admin.display(description="Amount")
    def amount_display(self, line):
        return format_money(line.amount, line.invoice.currency)

    @admin.display(description="Tax")
    def tax_display(self, line):
        return format_money(line.tax, line.invoice.currency)

    @admin.display(description="Why this amount")
    def why(self, line):
        return line_explanation(line.details, line.invoice.currency, facts=False)  # the facts: in the first column


def _due_in_minor_units(invoice: Invoice | None) -> Decimal | None:
    """What the invoice still asks for, as the payment form shows it (25.00, not the stored 25.0000)."""
    return quantize_minor(invoice.amount_due, invoice.currency) if invoice is not None else None


class PaymentForm(forms.Form):
    amount = forms.DecimalField(max_digits=19, decimal_places=4, min_value=Decimal("0.0001"))
    reference = forms.CharField(max_length=200, required=False)


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
    list_filter = ("status", ("period_start", admin.DateFieldListFilter), "customer__currency", "kind", "reason")
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
            {"fields": ("number", "status", "kind", "reason", "bill_to_block", "subscription", "currency", "pdf_link")},
        ),
        (
            "Period and dates (UTC)",
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
                    "tax_display_block",
                    "total_display",
                    "credits_display",
                    "credit_notes_display",
                    "amount_paid_display",
                    "amount_due_display",
                )
            },
        ),
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
        email = format_html("<br>{}", bill_to.email) if bill_to.email else ""
        note = (
            "The customer as it is now; copied onto the invoice when it is finalized."
            if obj.status == Invoice.Status.DRAFT
            else "As at finalization: later edits of the customer do not change it."
        )
        return format_html(
            '<a href="{}">{} ({})</a>{}<div class="help">{}</div>', url, bill_to.name, bill_to.external_id, email, note
        )

    @admin.display(description="Period", ordering="period_start")
    def period_display(self, obj):
        return period_label_of(obj, "—")

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

    @admin.display(description="Credit notes")
    def credit_notes_display(self, obj):
        return format_money(obj.credit_notes_total, obj.currency)

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
                    "period": period_label_of(line),
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
    def _confirm(self, request, queryset, *, action, title, explanation, form=None):
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
        }
        return TemplateResponse(request, "admin/invoicing/invoice/action_confirm.html", context)

    def _run(self, request, queryset, *, verb, call):
        done = 0
        for invoice in queryset:
            try:
                call(invoice)
            except BillingError as exc:
                self.message_user(request, f"{invoice}: not {verb}: {exc.message}", level=messages.ERROR)
                continue
            invoice.refresh_from_db()
            self.log_change(request, invoice, f"{verb.capitalize()} in the admin")
            done += 1
        if done:
            self.message_user(request, f"{done} invoice(s) {verb}.", level=messages.SUCCESS)

    def _simple_action(self, request, queryset, *, action, verb, title, explanation, service):
        if request.POST.get("confirm") != "yes":
            return self._confirm(request, queryset, action=action, title=title, explanation=explanation)
        self._run(request, queryset, verb=verb, call=lambda inv: service(invoice=inv, now=timezone.now()))
        return None

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
            explanation="Finalizing assigns the next invoice number and makes the invoice unchangeable. This cannot be undone.",
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

    def _form_action(self, request, queryset, *, action, form_class, title, explanation, verb, call, initial=None):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one invoice.", level=messages.WARNING)
            return None
        form = form_class(request.POST if request.POST.get("confirm") == "yes" else None, initial=initial)
        if request.POST.get("confirm") != "yes" or not form.is_valid():
            return self._confirm(request, queryset, action=action, title=title, explanation=explanation, form=form)
        self._run(request, queryset, verb=verb, call=lambda inv: call(inv, form.cleaned_data))
        return None

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
            explanation="Record money received outside the system (bank transfer, cheque). Partial payments are allowed.",
            verb="paid",
            call=lambda inv, data: payment_record(
                invoice=inv, amount=data["amount"], reference=data["reference"], now=timezone.now()
            ),
        )

    @admin.action(description="Issue a credit note", permissions=["finalize"])
    def credit_note_action(self, request, queryset):
        return self._form_action(
            request,
            queryset,
            action="credit_note_action",
            form_class=CreditNoteForm,
            title="Issue a credit note",
            explanation="A numbered credit note reduces what the invoice owes, or refunds credits to the wallet. This cannot be undone.",
            verb="credited",
            call=lambda inv, data: credit_note_issue(
                invoice=inv,
                amount=data["amount"],
                reason=data["reason"],
                refund_to=data["refund_to"],
                now=timezone.now(),
            ),
        )

    def response_change(self, request, obj):
        return HttpResponseRedirect(request.path)


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("paid_at", "invoice", "amount_display", "method", "reference")
    list_filter = ("method", "currency")
    search_fields = ("invoice__number", "reference", "invoice__customer__external_id")
    list_select_related = ("invoice",)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj):
        return format_money(obj.amount, obj.currency)


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("number", "invoice", "amount_display", "refund_to", "reason", "created_at")
    list_filter = ("refund_to", "currency")
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
