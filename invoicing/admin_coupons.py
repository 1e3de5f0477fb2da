"""Admin for coupons, applied coupons, add-ons and one-off invoices (DESIGN.md "Coupons, one-off invoices").

Coupons are created through ``services.coupons.coupon_create`` (the form checks the same rules first, so a refusal
is shown beside its field) and never edited afterwards: customers hold them. Applied coupons are applied from the
customer's page ("Apply a coupon") and ended by finance with the ``expire`` and ``remove`` actions (future invoices
only; each through a confirmation page). One-off invoices are written from the customer's page ("New one-off
invoice"): free lines, or add-ons from the catalog, through ``services.one_off``.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.forms import formset_factory
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from catalog.models import Plan
from core.errors import BillingError
from core.money import format_money
from customers.models import Customer

from .models import Addon, AppliedCoupon, Coupon, Invoice
from .selectors import applied_coupon_remaining_amount
from .services.coupons import applied_coupon_end, coupon_create, coupon_terms_check, customer_coupon_apply
from .services.one_off import OneOffLine, one_off_invoice_create


def discount_block(invoice: Invoice) -> str:
    """The invoice's discount and one "why" per coupon (``LAUNCH10: $10.00 fixed, once; $40.00 left``)."""
    rows = list(invoice.coupon_discounts.select_related("applied_coupon__coupon")) if invoice.pk else []
    if not rows and not invoice.discount:
        return "None"
    why = format_html_join(
        "",
        "<div class='line-facts'>{}: −{}{}</div>",
        (
            (
                row.explanation or row.applied_coupon.coupon.code,
                format_money(row.amount, invoice.currency),
                " (given back to the coupon when the invoice was voided)" if row.given_back_at else "",
            )
            for row in rows
        ),
    )
    return format_html("<div>−{}</div>{}", format_money(invoice.discount, invoice.currency), why)


# -- coupons ---------------------------------------------------------------------------------------------------------


class CouponForm(forms.ModelForm):
    plans = forms.ModelMultipleChoiceField(
        queryset=Plan.objects.order_by("key"),
        required=False,
        help_text="The plans whose lines it discounts; none: every line of the customer's subscription invoices.",
    )

    class Meta:
        model = Coupon
        fields = ("code", "name", "kind", "amount", "currency", "percentage", "duration", "periods", "expires_at")
        help_texts = {
            "amount": "Fixed coupons: the amount off (a once coupon keeps what an invoice did not use).",
            "currency": "Fixed coupons: the customers' currency.",
            "percentage": "Percentage coupons: above 0 and at most 100.",
            "name": "Shown to finance; the code when left empty.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "name" in self.fields:
            self.fields["name"].required = False

    def clean(self):
        data = super().clean()
        try:
            coupon_terms_check(
                code=data.get("code") or "",
                kind=data.get("kind") or "",
                amount=data.get("amount"),
                currency=data.get("currency") or "",
                percentage=data.get("percentage"),
                duration=data.get("duration") or "",
                periods=data.get("periods"),
                plans=[p.key for p in data.get("plans") or []],
            )
        except BillingError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data

    def _post_clean(self):
        pass  # the model's own checks run in the service (coupon_create), not on a half-built instance


class CouponAdmin(admin.ModelAdmin):
    form = CouponForm
    list_display = ("code", "name", "terms", "plans_display", "expires_at", "applied_count")
    list_filter = ("kind", "duration")
    search_fields = ("code", "name")
    readonly_fields = ("terms", "plans_display", "created_at")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("plans", "applications")

    def get_fields(self, request, obj=None):
        if obj is None:
            return [*CouponForm.Meta.fields, "plans"]
        return ["code", "name", "terms", "plans_display", "expires_at", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj is not None else ()

    def has_change_permission(self, request, obj=None):
        # Customers hold a coupon on its terms: it is never edited once created (create another one).
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Terms")
    def terms(self, obj):
        return obj.terms_text

    @admin.display(description="Plans")
    def plans_display(self, obj):
        return ", ".join(p.key for p in obj.plans.all()) or "Every plan"

    @admin.display(description="Applied to")
    def applied_count(self, obj):
        n = len(obj.applications.all())
        return f"{n} customer{'s' if n != 1 else ''}"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        created = coupon_create(
            code=data["code"],
            name=data.get("name") or "",
            kind=data["kind"],
            amount=data.get("amount"),
            currency=data.get("currency") or "",
            percentage=data.get("percentage"),
            duration=data["duration"],
            periods=data.get("periods"),
            plans=[p.key for p in data.get("plans") or []],
            expires_at=data.get("expires_at"),
        )
        obj.pk = created.pk

    def save_related(self, request, form, formsets, change):
        pass  # the service set the plans


# -- applied coupons -------------------------------------------------------------------------------------------------


class ApplyCouponForm(forms.Form):
    coupon = forms.ModelChoiceField(queryset=Coupon.objects.order_by("code"))


class AppliedCouponAdmin(admin.ModelAdmin):
    list_display = ("coupon", "customer", "status", "remaining_display", "applied_at", "ended_at")
    list_filter = ("status", "coupon__kind", "coupon__duration")
    search_fields = ("coupon__code", "customer__external_id", "customer__name")
    list_select_related = ("coupon", "customer")
    actions = ["expire_action", "remove_action"]
    fields = ("customer", "coupon", "status", "remaining_display", "remaining_periods", "applied_at", "ended_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # applied from the customer's page ("Apply a coupon"), through the service

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_end_permission(self, request) -> bool:
        return request.user.has_perm("invoicing.change_appliedcoupon")

    @admin.display(description="Remaining")
    def remaining_display(self, obj):
        amount = applied_coupon_remaining_amount(obj)
        parts = []
        if amount is not None:
            parts.append(format_money(amount, obj.coupon.currency))
        if obj.remaining_periods is not None:
            parts.append(f"{obj.remaining_periods} invoice{'s' if obj.remaining_periods != 1 else ''}")
        return ", ".join(parts) or ("Unlimited" if obj.status == AppliedCoupon.Status.ACTIVE else "—")

    def _end(self, request, queryset, *, status, verb):
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": f"{verb.capitalize()} applied coupons",
                "explanation": (
                    f"{verb.capitalize()}d coupons apply to no invoice created from now on. Invoices already created "
                    "(drafts included) keep their discount. This cannot be undone."
                ),
                "rows": [
                    f"{a.coupon.code} for {a.customer.name} ({a.get_status_display()})"
                    for a in queryset.select_related("coupon", "customer")
                ],
                "queryset": queryset,
                "action": f"{status}_action" if status != "expired" else "expire_action",
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "back_url": reverse("admin:invoicing_appliedcoupon_changelist"),
            }
            return TemplateResponse(request, "admin/invoicing/appliedcoupon/action_confirm.html", context)
        done = []
        for applied in queryset.select_related("coupon", "customer"):
            try:
                applied_coupon_end(applied=applied, status=status, now=timezone.now())
            except BillingError as exc:
                self.message_user(request, f"{applied}: not {verb}d: {exc.message}", level=messages.ERROR)
                continue
            self.log_change(request, applied, f"{verb.capitalize()}d in the admin")
            done.append(str(applied))
        if done:
            self.message_user(request, f"{', '.join(done)}: {verb}d.", level=messages.SUCCESS)
        return None

    @admin.action(description="Expire selected coupons (future invoices only)", permissions=["end"])
    def expire_action(self, request, queryset):
        return self._end(request, queryset, status=AppliedCoupon.Status.EXPIRED, verb="expire")

    @admin.action(description="Remove selected coupons (future invoices only)", permissions=["end"])
    def remove_action(self, request, queryset):
        return self._end(request, queryset, status=AppliedCoupon.Status.REMOVED, verb="remove")


def apply_coupon_view(model_admin, request, customer_id):
    """``Apply a coupon`` from the customer's page: choose a coupon; a refusal is shown beside the field."""
    if not request.user.has_perm("invoicing.add_appliedcoupon"):
        raise PermissionDenied
    customer = get_object_or_404(Customer, pk=customer_id)
    form = ApplyCouponForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            applied = customer_coupon_apply(customer=customer, coupon=form.cleaned_data["coupon"], now=timezone.now())
        except BillingError as exc:
            form.add_error("coupon" if exc.field == "coupon" else None, exc.message)
        else:
            model_admin.log_addition(request, applied, "Applied in the admin")
            model_admin.message_user(
                request, f"{applied.coupon.code} applied to {customer.name}: {applied.coupon.terms_text}."
            )
            return HttpResponseRedirect(reverse("admin:customers_customer_change", args=[customer.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Apply a coupon to {customer.name}",
        "customer": customer,
        "form": form,
        "opts": AppliedCoupon._meta,
        "explanation": (
            "The coupon discounts the customer's subscription invoices created from now on (not one-off or credit "
            "purchase invoices), on the lines of its plans, after the coupons applied earlier."
        ),
    }
    return TemplateResponse(request, "admin/invoicing/customer_form.html", context)


# -- add-ons and one-off invoices ------------------------------------------------------------------------------------


class AddonAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "amount_display", "currency")
    list_filter = ("currency",)
    search_fields = ("key", "name")

    @admin.display(description="Default amount", ordering="amount")
    def amount_display(self, obj):
        return format_money(obj.amount, obj.currency)


class OneOffLineForm(forms.Form):
    description = forms.CharField(max_length=500, required=False)
    addon = forms.ModelChoiceField(
        queryset=Addon.objects.order_by("key"), required=False, help_text="Fills the description and amount left out."
    )
    amount = forms.DecimalField(max_digits=19, decimal_places=4, required=False, label="Unit amount")
    quantity = forms.DecimalField(max_digits=28, decimal_places=12, required=False, initial=Decimal(1))

    def line(self) -> OneOffLine | None:
        data = self.cleaned_data
        if not data or not (data.get("description") or data.get("addon") or data.get("amount") is not None):
            return None  # an empty row
        return OneOffLine(
            description=data.get("description") or "",
            amount=data.get("amount"),
            quantity=data.get("quantity") or Decimal(1),
            addon=data["addon"].key if data.get("addon") else None,
        )


OneOffLineFormSet = formset_factory(OneOffLineForm, extra=4, max_num=50)


class OneOffInvoiceForm(forms.Form):
    finalize = forms.BooleanField(
        required=False, initial=True, help_text="Finalize now (numbered); else it stays a draft to finalize later."
    )


def one_off_invoice_view(model_admin, request, customer_id):
    """``New one-off invoice`` from the customer's page: lines (free or add-ons), taxed with the customer's rates."""
    if not (request.user.has_perm("invoicing.add_invoice") or request.user.has_perm("invoicing.change_invoice")):
        raise PermissionDenied
    customer = get_object_or_404(Customer, pk=customer_id)
    posted = request.method == "POST"
    form = OneOffInvoiceForm(request.POST if posted else None)
    lines = OneOffLineFormSet(request.POST if posted else None, prefix="lines")
    if posted and form.is_valid() and lines.is_valid():
        asked = [line for f in lines.forms if (line := f.line()) is not None]
        finalize = form.cleaned_data["finalize"]
        if finalize and not request.user.has_perm("invoicing.finalize_invoice"):
            form.add_error("finalize", "Your role cannot finalize invoices: leave it a draft.")
        else:
            try:
                invoice = one_off_invoice_create(customer=customer, lines=asked, finalize=finalize, now=timezone.now())
            except BillingError as exc:
                form.add_error(None, exc.message)
            else:
                model_admin.log_addition(request, invoice, "One-off invoice written in the admin")
                model_admin.message_user(
                    request,
                    f"One-off invoice {invoice} for {customer.name}: {format_money(invoice.total, invoice.currency)}.",
                )
                return HttpResponseRedirect(reverse("admin:invoicing_invoice_change", args=[invoice.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"New one-off invoice for {customer.name}",
        "customer": customer,
        "form": form,
        "formset": lines,
        "opts": Invoice._meta,
        "explanation": (
            f"Lines billed once (services, add-ons, a settlement) in {customer.currency}, taxed with the customer's "
            "rates. A line is its unit amount × quantity; coupons do not apply."
        ),
    }
    return TemplateResponse(request, "admin/invoicing/customer_form.html", context)
