"""Wallet admin: balances, lots and the read-only ledger; grant and void actions with confirmation pages.

Credits change in the admin only through the grant action (capped for Support), the void action (finance
admins) and an invoice's credit note to the wallet (finance admins, invoicing admin); grants and ledger rows
are read-only everywhere. A wallet's terms decide what its credits are worth and what the billing run grants
by itself, so they are credit-changing too: only users with ``wallets.change_wallet_terms`` may edit them
(read-only fields for everyone else: a forged POST of them is ignored by the form).
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import BigIntegerField, Case, OuterRef, Subquery, Sum, When
from django.db.models.functions import Cast, Substr
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from core.admin import ReadOnlyAdminMixin, adopt, currency_filter, service_error_to_form
from core.errors import BillingError
from core.instants import validate_instant
from core.money import format_decimal, format_money

from .models import CreditGrant, CreditHold, LedgerEntry, LowBalanceAlert, Wallet
from .selectors import wallet_real_time_balance
from .services import (
    MANUAL_KINDS,
    wallet_check,
    wallet_create_locked,
    wallet_grant_create_locked,
    wallet_grant_void_locked,
    wallet_update_locked,
)


class GrantCreditsForm(forms.Form):
    """What finance fills in to grant credits to the selected wallets."""

    credits = forms.DecimalField(min_value=Decimal("0.000000000001"), max_digits=28, decimal_places=12)
    kind = forms.ChoiceField(choices=[(k, CreditGrant.Kind(k).label) for k in MANUAL_KINDS])
    priority = forms.IntegerField(min_value=0, initial=10, help_text="Lower numbers are spent first.")
    expires_at = forms.DateTimeField(
        required=False, validators=[validate_instant], help_text="UTC, e.g. 2026-12-31 00:00. Empty = never."
    )
    name = forms.CharField(required=False, max_length=200)

    def __init__(self, *args, limit: Decimal | None = None, wallet_count: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.limit = limit
        self.wallet_count = wallet_count
        if limit is not None:
            self.fields["credits"].help_text = (
                f"Your role may grant at most {format_decimal(limit)} credits in one action, all selected wallets "
                f"together ({wallet_count} selected)."
            )

    def clean_expires_at(self):
        """The service's rule, on the form: the field says what is wrong and nothing is granted."""
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("Must be in the future (UTC), e.g. 2026-12-31 00:00; empty = never.")
        return expires_at

    def clean_credits(self):
        """The limit bounds the whole action: credits x the number of wallets selected."""
        credits = self.cleaned_data["credits"]
        total = credits * self.wallet_count
        if self.limit is not None and total > self.limit:
            together = (
                f" ({self.wallet_count} wallets x {format_decimal(credits)} = {format_decimal(total)})"
                if self.wallet_count > 1
                else ""
            )
            raise forms.ValidationError(
                f"Support may grant at most {format_decimal(self.limit)} credits in one action{together}; "
                "ask a finance admin."
            )
        return credits


def grant_limit_for(user) -> Decimal | None:
    """The most credits this user may grant in one action: none for finance admins, the support limit otherwise."""
    if user.has_perm("wallets.grant_credits_unlimited"):
        return None
    return settings.SUPPORT_GRANT_LIMIT


# What a wallet's credits are worth and what billing runs do with it on their own (auto top-ups).
WALLET_TERMS = ("conversion_rate", "applies_to", "low_balance_threshold", "auto_top_up_credits", "status")


def may_change_wallet_terms(user) -> bool:
    return user.has_perm("wallets.change_wallet_terms")


# --- ledger references: what caused a row, named as finance knows it ------------------------------------------
# ``LedgerEntry.reference`` is "kind:id" ("invoice:31", "credit_note:4", "subscription:7", "grant:12",
# "alert:3", "admin:2"). The admin shows the invoice's number ("INV-000012", or "Draft #31"), the note's number,
# the user's name, each a link to its page for users who may open it. The numbers are read with the rows
# (subqueries), never one query per row.
REFERENCE_PAGES = {
    "invoice": ("invoicing.view_invoice", "admin:invoicing_invoice_change"),
    "credit_note": ("invoicing.view_creditnote", "admin:invoicing_creditnote_change"),
    "subscription": ("customers.view_subscription", "admin:customers_subscription_change"),
    "grant": ("wallets.view_creditgrant", "admin:wallets_creditgrant_change"),
    "alert": ("wallets.view_lowbalancealert", "admin:wallets_lowbalancealert_change"),
}


def _reference_id(kind: str):
    """The id in a "kind:id" reference, as a number; NULL for any other reference."""
    return Case(
        When(
            reference__regex=rf"^{kind}:[0-9]{{1,18}}$",
            then=Cast(Substr("reference", len(kind) + 2), BigIntegerField()),
        ),
        default=None,
        output_field=BigIntegerField(),
    )


def with_reference_names(queryset):
    """Ledger rows with the names their references point to (``ref_invoice_number``, ``ref_credit_note_number``,
    ``ref_username``)."""
    from django.contrib.auth import get_user_model

    from invoicing.models import CreditNote, Invoice  # outer shell: the admin may read invoicing

    def first(model, field: str, kind: str):
        return Subquery(model.objects.filter(pk=OuterRef(f"ref_{kind}_id")).values(field)[:1])

    return queryset.annotate(
        ref_invoice_id=_reference_id("invoice"),
        ref_credit_note_id=_reference_id("credit_note"),
        ref_admin_id=_reference_id("admin"),
    ).annotate(
        ref_invoice_number=first(Invoice, "number", "invoice"),
        ref_credit_note_number=first(CreditNote, "number", "credit_note"),
        ref_username=first(get_user_model(), "username", "admin"),
    )


def reference_text(entry) -> tuple[str, str | None, str | None]:
    """(text, kind, id) for a ledger row's reference, from :func:`with_reference_names`'s annotations."""
    kind, _, ident = (entry.reference or "").partition(":")
    if not ident.isdigit():
        return entry.reference or "—", None, None
    if kind == "invoice":
        return getattr(entry, "ref_invoice_number", None) or f"Draft #{ident}", kind, ident
    if kind == "credit_note":
        return getattr(entry, "ref_credit_note_number", None) or f"Credit note #{ident}", kind, ident
    if kind == "admin":
        name = getattr(entry, "ref_username", None)
        return (f"Granted in the admin by {name}" if name else "Granted in the admin"), None, None
    label = {"subscription": "Subscription", "grant": "Grant", "alert": "Low-balance alert"}.get(kind)
    return (f"{label} #{ident}", kind, ident) if label else (entry.reference, None, None)


def reference_link(entry, user) -> str:
    text, kind, ident = reference_text(entry)
    page = REFERENCE_PAGES.get(kind or "")
    if page is None or not user.has_perm(page[0]):
        return text
    return format_html('<a href="{}">{}</a>', reverse(page[1], args=[ident]), text)


def reference_column(user):
    """The "Reference" column for ``user``: a display callable (Django admin display methods get no request, so
    each request builds the column for its user's permissions)."""

    @admin.display(description="Reference")
    def reference(entry):
        return reference_link(entry, user)

    return reference


class CreditGrantInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CreditGrant
    fields = ("kind", "name", "credits", "remaining", "held", "priority", "effective_at", "expires_at", "status")
    readonly_fields = fields
    extra = 0
    show_change_link = True


class LedgerEntryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = LedgerEntry
    fields = ("created_at", "type", "credits", "balance_after", "grant", "reference_display", "description")
    readonly_fields = fields
    extra = 0
    ordering = ("-id",)

    def get_queryset(self, request):
        # each row shows its grant, and its reference by name (invoice numbers, not internal ids)
        return with_reference_names(super().get_queryset(request).select_related("grant"))

    def get_formset(self, request, obj=None, **kwargs):
        # Django builds the inlines afresh for each request: the user kept here is this request's.
        self.user = request.user
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="Reference")
    def reference_display(self, entry):
        return reference_link(entry, self.user)


def _pending(wallet: Wallet):
    from invoicing.selectors import customer_pending_payable  # outer shell: admin may read invoicing

    return customer_pending_payable(customer=wallet.customer, currency=wallet.currency, now=timezone.now())


class WalletForm(forms.ModelForm):
    """Checked by ``wallets.services.wallet_check`` (the API's rules) and saved by the wallet services."""

    class Meta:
        model = Wallet
        fields = (
            "customer",
            "name",
            "currency",
            "conversion_rate",
            "applies_to",
            "low_balance_threshold",
            "auto_top_up_credits",
            "status",
        )

    def service_values(self) -> dict:
        """The fields this form has (terms are left out for users who may not change them), as posted."""
        return {name: self.cleaned_data[name] for name in self.fields if name in self.cleaned_data}

    def clean(self):
        data = super().clean()
        values = self.service_values()
        values.pop("customer", None)
        try:
            wallet_check(values)
        except BillingError as exc:
            service_error_to_form(self, exc)
        return data


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    form = WalletForm
    list_display = ("name", "customer", "currency", "balance_display", "rate_display", "applies_to", "status")
    list_filter = (
        "status",
        currency_filter("currency", lambda: Wallet.objects.order_by().values_list("currency", flat=True).distinct()),
        "applies_to",
    )
    search_fields = ("name", "customer__external_id", "customer__name", "customer__email")
    list_select_related = ("customer",)
    autocomplete_fields = ("customer",)
    readonly_fields = (
        "balance_display",
        "held_display",
        "real_time_balance_display",
        "below_threshold",
        "created_at",
    )
    fields = (
        "customer",
        "name",
        "currency",
        "conversion_rate",
        "applies_to",
        "low_balance_threshold",
        "auto_top_up_credits",
        "status",
        "balance_display",
        "held_display",
        "real_time_balance_display",
        "below_threshold",
        "created_at",
    )
    inlines = [CreditGrantInline, LedgerEntryInline]
    actions = ["grant_credits", "void_remaining_credits"]

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        fields = [*self.readonly_fields]
        if obj is not None:
            fields += ["customer", "currency"]
        if not may_change_wallet_terms(request.user):
            fields += WALLET_TERMS  # excluded from the form: posted values are never read
        return fields

    def save_model(self, request, obj, form, change):
        # Inside the admin's change-form transaction: the non-durable services. Only the form's own fields are
        # passed, so terms a user may not change (read-only, left out of the form) are never written.
        values = form.service_values()
        if change:
            saved = wallet_update_locked(wallet=obj, data=values)
        else:
            saved = wallet_create_locked(**values)
        adopt(obj, saved)

    @admin.display(description="Balance (credits)")
    def balance_display(self, obj):
        return format_decimal(obj.balance) if obj.pk else "—"

    @admin.display(description="Held for draft invoices (credits)")
    def held_display(self, obj):
        """Credits reserved for draft invoices: still in the balance, spent when the draft is finalized, freed
        when it is recalculated or voided (docs/billing-rules.md, Wallet credits)."""
        if not obj.pk:
            return "—"
        holds = obj.holds.filter(status=CreditHold.Status.HELD)
        total = holds.aggregate(total=Sum("credits"))["total"] or Decimal(0)
        if not total:
            return "0 (none held)"
        drafts = holds.values("invoice_id").distinct().count()
        return f"{format_decimal(total)} for {drafts} draft invoice{'s' if drafts != 1 else ''} (spent when finalized)"

    @admin.display(description="Real-time balance (credits)")
    def real_time_balance_display(self, obj):
        if not obj.pk:
            return "—"
        return format_decimal(wallet_real_time_balance(wallet=obj, pending=_pending(obj)))

    @admin.display(description="1 credit =")
    def rate_display(self, obj):
        return format_money(obj.conversion_rate, obj.currency)

    def has_grant_permission(self, request) -> bool:
        return request.user.has_perm("wallets.grant_credits") or request.user.has_perm(
            "wallets.grant_credits_unlimited"
        )

    def has_void_permission(self, request) -> bool:
        return request.user.has_perm("wallets.void_credits")

    @admin.action(description="Grant credits…", permissions=["grant"])
    def grant_credits(self, request, queryset):
        queryset = queryset.select_related("customer")  # each wallet is named with its customer
        form = GrantCreditsForm(
            request.POST if "confirm" in request.POST else None,
            limit=grant_limit_for(request.user),
            wallet_count=queryset.count(),
        )
        if "confirm" in request.POST and form.is_valid():
            data = form.cleaned_data
            done = 0
            for wallet in queryset:
                try:
                    with transaction.atomic():
                        grant, _ = wallet_grant_create_locked(
                            wallet=wallet,
                            credits=data["credits"],
                            kind=data["kind"],
                            priority=data["priority"],
                            expires_at=data["expires_at"],
                            name=data["name"],
                            now=timezone.now(),
                            reference=f"admin:{request.user.pk}",
                        )
                except BillingError as exc:
                    field = f"{exc.field}: " if exc.field else ""
                    self.message_user(request, f"{wallet}: not granted: {field}{exc.message}", level=messages.ERROR)
                    continue
                self.log_change(
                    request, wallet, f"Granted {format_decimal(grant.credits)} {grant.kind} credits (grant {grant.pk})"
                )
                done += 1
            if done:  # a refused grant shows its error alone, never beside "granted to 0 wallets"
                wallets = "1 wallet" if done == 1 else f"{done} wallets"
                self.message_user(
                    request, f"Granted {format_decimal(data['credits'])} credits to {wallets}.", level=messages.SUCCESS
                )
            return None
        return TemplateResponse(
            request,
            "admin/wallets/grant_credits.html",
            {
                **self.admin_site.each_context(request),
                "title": "Grant credits",
                "form": form,
                "wallets": queryset,
                "opts": self.model._meta,
                "action": "grant_credits",
            },
        )

    @admin.action(description="Void remaining credits…", permissions=["void"])
    def void_remaining_credits(self, request, queryset):
        grants = CreditGrant.objects.filter(wallet__in=queryset, remaining__gt=0).select_related("wallet__customer")
        if "confirm" in request.POST:
            total = Decimal(0)
            for grant in grants:
                with transaction.atomic():
                    voided = wallet_grant_void_locked(
                        grant=grant, now=timezone.now(), reason=f"Voided by {request.user}"
                    )
                if voided:
                    self.log_change(
                        request, grant.wallet, f"Voided {format_decimal(voided)} credits of grant {grant.pk}"
                    )
                    total += voided
            self.message_user(request, f"Voided {format_decimal(total)} credits.")
            return None
        return TemplateResponse(
            request,
            "admin/wallets/void_credits.html",
            {
                **self.admin_site.each_context(request),
                "title": "Void remaining credits",
                "grants": grants,
                "wallets": queryset,
                "opts": self.model._meta,
                "action": "void_remaining_credits",
            },
        )


@admin.register(CreditGrant)
class CreditGrantAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "wallet", "kind", "credits", "remaining", "priority", "expires_at", "status")
    list_filter = ("kind", "status")
    search_fields = ("wallet__customer__external_id", "name", "idempotency_key")
    list_select_related = ("wallet__customer",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    show_full_result_count = False  # a large table: a search counts its matches only
    # The grant: on the row's page.
    list_display = ("created_at", "wallet", "type", "credits", "balance_after", "reference", "description")
    list_filter = ("type",)
    search_fields = ("wallet__customer__external_id", "reference", "idempotency_key")
    list_select_related = ("wallet__customer", "grant")

    def get_queryset(self, request):
        return with_reference_names(super().get_queryset(request))

    def get_list_display(self, request):
        column = reference_column(request.user)
        return [column if name == "reference" else name for name in self.list_display]


@admin.register(LowBalanceAlert)
class LowBalanceAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "wallet", "balance", "threshold", "emailed_at", "top_up_grant")
    list_filter = ("created_at",)
    search_fields = ("wallet__customer__external_id", "wallet__name")
    list_select_related = ("wallet__customer", "top_up_grant")
