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
from django.template.response import TemplateResponse
from django.utils import timezone

from core.admin import ReadOnlyAdminMixin, adopt, service_error_to_form
from core.errors import BillingError
from core.instants import validate_instant
from core.money import format_decimal, format_money

from .models import CreditGrant, LedgerEntry, LowBalanceAlert, Wallet
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


class CreditGrantInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CreditGrant
    fields = ("kind", "name", "credits", "remaining", "priority", "effective_at", "expires_at", "status")
    readonly_fields = fields
    extra = 0
    show_change_link = True


class LedgerEntryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = LedgerEntry
    fields = ("created_at", "type", "credits", "balance_after", "grant", "reference", "description")
    readonly_fields = fields
    extra = 0
    ordering = ("-id",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("grant")  # each row shows its grant


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
    list_filter = ("status", "currency", "applies_to")
    search_fields = ("name", "customer__external_id", "customer__name", "customer__email")
    list_select_related = ("customer",)
    autocomplete_fields = ("customer",)
    readonly_fields = ("balance_display", "real_time_balance_display", "below_threshold", "created_at")
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
                    self.message_user(request, f"{wallet}: {exc.message}", level=messages.ERROR)
                    continue
                self.log_change(
                    request, wallet, f"Granted {format_decimal(grant.credits)} {grant.kind} credits (grant {grant.pk})"
                )
                done += 1
            self.message_user(request, f"Granted {format_decimal(data['credits'])} credits to {done} wallet(s).")
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


@admin.register(LowBalanceAlert)
class LowBalanceAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "wallet", "balance", "threshold", "emailed_at", "top_up_grant")
    list_filter = ("created_at",)
    search_fields = ("wallet__customer__external_id", "wallet__name")
    list_select_related = ("wallet__customer", "top_up_grant")
