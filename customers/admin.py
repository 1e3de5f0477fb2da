"""Customers, tax rates and subscriptions in the admin (finance's screens).

Subscriptions: rows are read-only here; they change only through the rules.
* Adding one goes through its own form, outside the admin's change-form transaction, and calls the same
  entry point as the API (``invoicing.services.subscription_start``), so the first period's start work
  (plan credits, the in-advance invoice) happens at once, exactly as for ``POST /subscriptions``.
* "Cancel" (list action, or the link on a subscription's page) asks for confirmation and for when (at the
  period's end, or now), then calls ``invoicing.services.subscription_cancel`` for each subscription and
  logs each cancellation to the admin history.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import F, Func, IntegerField, OuterRef, Subquery
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from catalog.models import Plan, PlanVersion
from core.admin import adopt, currency_filter, service_error_to_form
from core.errors import BillingError
from core.instants import format_instant, format_instant_in, validate_instant, zone_note
from core.money import decimal_text, format_percent
from core.numbers import NumberInvalid, decimal_parse

from .models import Customer, Subscription, TaxRate
from .overrides import subscription_override_lines
from .periods import timezone_valid
from .selectors import subscription_periods
from .services import (
    DAYS_MAX,
    customer_check,
    customer_create_in_transaction,
    customer_update_in_transaction,
    tax_rate_delete,
)


def _when(value) -> str:
    return format_instant(value)


def _catalog_fields_for(request, fields: tuple[str, ...]) -> tuple[str, ...]:
    """``fields`` with the plan and pinned version shown as text for users who may not open catalog pages.

    Django links every read-only foreign key to its admin page without asking whether the user may open it; a
    Support user would land on a 403. Those users get the ``*_text`` display instead.
    """
    if request.user.has_perm("catalog.view_plan") and request.user.has_perm("catalog.view_planversion"):
        return fields
    swap = {"plan": "plan_text", "pinned_version": "pinned_version_text"}
    return tuple(swap.get(name, name) for name in fields)


def period_text(start, end, timezone: str | None = None) -> str:
    """``15 Jan 2026, 00:00 → 1 Feb 2026, 00:00`` (UTC, half-open: the end belongs to the next period); with a
    customer's ``timezone`` other than UTC, its local times and the zone named:
    ``7 Feb 2023, 16:00 → 1 Mar 2023, 00:00 (America/Los_Angeles)``."""
    zone = zone_note(timezone)
    if zone == "UTC":
        return f"{_when(start)} → {_when(end)}"
    return f"{format_instant_in(start, zone)} → {format_instant_in(end, zone)} ({zone})"


def _zoned(value, subscription: Subscription) -> str:
    """An instant of a subscription in its customer's timezone, the zone named unless UTC."""
    zone = zone_note(subscription.customer.timezone)
    return _when(value) if zone == "UTC" else f"{format_instant_in(value, zone)} ({zone})"


def _zone_choices() -> list[tuple[str, str]]:
    from zoneinfo import available_timezones

    return [(name, name) for name in sorted(n for n in available_timezones() if timezone_valid(n))]


class PercentageFilter(admin.SimpleListFilter):
    """The rates in use, written as percentages (``20%``; Django's own filter lists the column's ``20.0000``)."""

    title = "rate"
    parameter_name = "percentage"

    def lookups(self, request, model_admin):
        values = TaxRate.objects.order_by("percentage").values_list("percentage", flat=True).distinct()
        return [(decimal_text(value), format_percent(value)) for value in values]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            return queryset.filter(percentage=decimal_parse(value, max_digits=7, decimal_places=4))
        except NumberInvalid:
            return queryset.none()


@admin.register(TaxRate)
class TaxRateAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "percentage_display")
    search_fields = ("code", "name")
    list_filter = (PercentageFilter,)
    list_select_related = ()
    ordering = ("code",)

    @admin.display(description="Rate", ordering="percentage")
    def percentage_display(self, obj: TaxRate) -> str:
        return format_percent(obj.percentage)

    # A rate in use is never deleted (customers.services.tax_rate_delete): the delete page and the "delete
    # selected" action list its customers as protected and refuse, and the delete itself goes through the rule.
    def get_deleted_objects(self, objs, request):
        to_delete, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        codes = [rate.code for rate in objs]
        users = (
            Customer.tax_rates.through.objects.filter(taxrate__code__in=codes)
            .select_related("customer", "taxrate")
            .order_by("taxrate__code", "customer__external_id")[:21]
        )
        rows = [f"Customer {link.customer} uses tax rate {link.taxrate.code}" for link in users]
        if len(rows) > 20:
            rows[20:] = ["… and more customers: remove the rate from them first"]
        return to_delete, model_count, perms_needed, [*protected, *rows]

    def delete_model(self, request, obj):
        tax_rate_delete(rate=obj)

    def delete_queryset(self, request, queryset):
        for rate in queryset:
            tax_rate_delete(rate=rate)


class CustomerAdminForm(forms.ModelForm):
    """Checked by ``customers.services.customer_check`` (the API's rules) and saved by the customer services."""

    class Meta:
        model = Customer
        fields = (
            "external_id",
            "name",
            "email",
            "currency",
            "tax_rates",
            "net_payment_terms",
            "invoice_grace_days",
            "timezone",
            *Customer.ADDRESS_FIELDS,
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "timezone" in self.fields:
            self.fields["timezone"] = forms.ChoiceField(
                choices=_zone_choices(),
                initial="UTC",
                required=False,
                help_text="Calendar periods and proration follow its local midnight. A change applies from the next "
                "period.",
            )

    def clean_address_country(self):
        return (self.cleaned_data.get("address_country") or "").upper()

    def clean_timezone(self):
        return self.cleaned_data.get("timezone") or "UTC"

    def service_values(self) -> dict:
        """The form's fields as the services take them (tax rates by code)."""
        values = {name: self.cleaned_data[name] for name in self.fields if name in self.cleaned_data}
        if "tax_rates" in values:
            values["tax_rates"] = [rate.code for rate in values["tax_rates"]]
        return values

    def clean(self):
        data = super().clean()
        values = self.service_values()
        if "currency" in values:
            stored = Customer.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
            try:
                customer_check(customer=stored, data=values)
            except BillingError as exc:
                service_error_to_form(self, exc)
        return data

    def clean_net_payment_terms(self):
        return self._days("net_payment_terms")

    def clean_invoice_grace_days(self):
        return self._days("invoice_grace_days")

    def _days(self, name: str) -> int:
        value = self.cleaned_data[name]
        if value is not None and not 0 <= value <= DAYS_MAX:
            raise forms.ValidationError(f"Must be a whole number of days from 0 to {DAYS_MAX}.")
        return value


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    fk_name = "customer"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("subscription_link", "plan", "version_number", "billing", "current_period", "status_display")
    readonly_fields = (*fields, "plan_text")
    verbose_name_plural = "Subscriptions"

    def get_fields(self, request, obj=None):
        return _catalog_fields_for(request, self.fields)

    @admin.display(description="Plan")
    def plan_text(self, obj: Subscription) -> str:
        return str(obj.plan)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("customer", "plan", "plan_version")

    @admin.display(description="Subscription")
    def subscription_link(self, obj: Subscription) -> str:
        url = reverse("admin:customers_subscription_change", args=[obj.pk])
        return format_html('<a href="{}">#{}</a>', url, obj.pk)

    @admin.display(description="Version")
    def version_number(self, obj: Subscription) -> str:
        pinned = " (pinned)" if obj.pinned_version_id else ""
        return f"v{obj.plan_version.number}{pinned}"

    @admin.display(description="Current period")
    def current_period(self, obj: Subscription) -> str:
        return period_text(obj.current_period_start, obj.current_period_end, obj.customer.timezone)

    @admin.display(description="Status")
    def status_display(self, obj: Subscription) -> str:
        return SubscriptionAdmin.status_display(None, obj)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    form = CustomerAdminForm
    list_display = (
        "external_id",
        "name",
        "email",
        "currency",
        "tax_rates_display",
        "active_subscriptions",
        "created_at",
    )
    list_filter = (
        currency_filter("currency", lambda: Customer.objects.order_by().values_list("currency", flat=True).distinct()),
        "tax_rates",
    )
    search_fields = ("external_id", "name", "email")
    list_select_related = ()
    filter_horizontal = ("tax_rates",)
    readonly_fields = ("created_at",)
    inlines = [SubscriptionInline]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "external_id",
                    "name",
                    "email",
                    "currency",
                    "tax_rates",
                    "net_payment_terms",
                    "invoice_grace_days",
                    "timezone",
                    "created_at",
                )
            },
        ),
        (
            "Billing address (printed on invoices; copied onto each invoice when it is finalized)",
            {"fields": Customer.ADDRESS_FIELDS},
        ),
    )

    show_full_result_count = False  # a search counts its matches only, not every customer again

    def get_queryset(self, request):
        # The active count is a correlated subquery for the customers shown, not a join grouped over every
        # customer and subscription (which the list's count query would repeat).
        active = (
            Subscription.objects.filter(customer=OuterRef("pk"), status=Subscription.Status.ACTIVE)
            .order_by()
            .annotate(n=Func(F("pk"), function="COUNT"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .prefetch_related("tax_rates")
            .annotate(_active=Subquery(active, output_field=IntegerField()))
        )

    def get_readonly_fields(self, request, obj=None):
        # The external id addresses the customer in the API and in events: fixed once created.
        return ("external_id", "created_at") if obj else ("created_at",)

    def save_model(self, request, obj, form, change):
        # Inside the admin's change-form transaction: the non-durable variants of the API's services.
        values = form.service_values()
        if change:
            saved = customer_update_in_transaction(customer=obj, data=values)
        else:
            saved = customer_create_in_transaction(**values)
        adopt(obj, saved)

    def save_related(self, request, form, formsets, change):
        # The tax rates were set by the service (no form.save_m2m); the subscriptions inline is read-only.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The customer 360 panel above the form: subscriptions, usage vs entitlements, wallets, invoices (amounts
        # only for users who may see invoices: Support gets the rest).
        from backoffice.customer_360 import customer_overview

        extra_context = dict(extra_context or {})
        customer = self.get_object(request, object_id)
        if customer is not None:
            extra_context["c360"] = customer_overview(
                customer=customer, now=timezone.now(), invoicing=request.user.has_perm("invoicing.view_invoice")
            )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Tax rates")
    def tax_rates_display(self, obj: Customer) -> str:
        return ", ".join(rate.code for rate in obj.tax_rates.all()) or "—"

    @admin.display(description="Active subscriptions", ordering="_active")
    def active_subscriptions(self, obj: Customer) -> int:
        return obj._active


class SubscriptionAddForm(forms.Form):
    customer = forms.ModelChoiceField(queryset=Customer.objects.order_by("external_id"))
    plan = forms.ModelChoiceField(queryset=Plan.objects.order_by("key"))
    start_at = forms.DateTimeField(
        required=False,
        validators=[validate_instant],
        help_text="UTC, e.g. 2026-01-15 00:00. Empty = now. May be in the past (only the first period is billed "
        "now; billing runs bill the later ones), not before the plan's first published version.",
    )
    billing = forms.ChoiceField(choices=Subscription.Billing.choices, initial=Subscription.Billing.CALENDAR)
    pinned_version = forms.ModelChoiceField(
        queryset=PlanVersion.objects.filter(status=PlanVersion.Status.PUBLISHED).select_related("plan"),
        required=False,
        help_text="Optional: bill every period with this version (grandfathered).",
    )
    trial_days = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=365,
        help_text="Free trial in days. Empty = the plan version's trial days; 0 = no trial.",
    )


class PriceOverridesForm(forms.Form):
    """One optional field per value of each price of the version billing the current period (tiers excepted: the
    API sets those, and a saved tier override is kept). Values are text, read by the price model's own parser."""

    def __init__(self, *args, prices, current, **kwargs):
        from catalog.overrides import OVERRIDABLE_FIELDS
        from catalog.price_models import price_model
        from catalog.quote import price_terms

        super().__init__(*args, **kwargs)
        self.prices = prices
        self.kept_tiers = {o["price"]: o["tiers"] for o in current if "tiers" in o}
        given = {o["price"]: o for o in current}
        for price in prices:
            plan = price_terms(price)
            for name in price_model(price.model).fields:
                if name not in OVERRIDABLE_FIELDS or name == "tiers":
                    continue
                self.fields[self.key(price, name)] = forms.CharField(
                    required=False,
                    label=f"{price.name}: {name.replace('_', ' ')}",
                    initial=given.get(price.name, {}).get(name, ""),
                    help_text=f"The plan's value: {decimal_text(plan[name])}. Empty: the plan's value.",
                )

    @staticmethod
    def key(price, name: str) -> str:
        return f"price_{price.pk}__{name}"

    def overrides(self) -> tuple[list[dict], dict[str, str]]:
        """The overrides as the service takes them, and each API path mapped to its form field."""
        result, paths = [], {}
        for price in self.prices:
            values = {
                name.split("__", 1)[1]: value.strip()
                for name, value in self.cleaned_data.items()
                if name.startswith(f"price_{price.pk}__") and value.strip()
            }
            if price.name in self.kept_tiers:
                values["tiers"] = self.kept_tiers[price.name]
            if values:
                for name in values:
                    paths[f"price_overrides[{len(result)}].{name}"] = self.key(price, name)
                result.append({"price": price.name, **values})
        return result, paths


class CancelForm(forms.Form):
    at = forms.ChoiceField(
        choices=[
            ("period_end", "At the end of the current period (stays active until then)"),
            ("now", "Now (ends at once; the part of the period that ran is billed)"),
        ],
        widget=forms.RadioSelect,
        initial="period_end",
        label="When",
    )


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("id", "customer", "version_number", "current_period", "status_display")
    list_filter = ("status", "billing", "cancel_at_period_end", "plan")
    search_fields = ("=id", "customer__external_id", "customer__name", "plan__key", "plan__name")
    list_select_related = ("customer", "plan", "plan_version", "pinned_version")
    date_hierarchy = "start_at"
    actions = ["cancel_subscriptions"]
    fields = (
        "customer",
        "plan",
        "version_number",
        "pinned_version",
        "billing",
        "start_at",
        "status_display",
        "current_period",
        "canceled_at",
        "ended_at",
        "cancel_link",
        "price_overrides_display",
        "price_overrides_link",
        "trial_text",
        "plan_change",
        "chain",
        "periods_table",
    )
    readonly_fields = (*fields, "plan_text", "pinned_version_text")

    def get_fields(self, request, obj=None):
        fields = _catalog_fields_for(request, self.fields)
        if not self.has_cancel_permission(request):
            # their pages would answer 403
            hidden = ("cancel_link", "price_overrides_link", "plan_change")
            fields = tuple(name for name in fields if name not in hidden)
        return fields

    @admin.display(description="Plan")
    def plan_text(self, obj: Subscription) -> str:
        return str(obj.plan)

    @admin.display(description="Pinned version")
    def pinned_version_text(self, obj: Subscription) -> str:
        return str(obj.pinned_version) if obj.pinned_version_id else "—"

    # --- read-only rows: changes go through the rules -------------------------------------------
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("customers.change_subscription")

    # --- display -------------------------------------------------------------------------------
    @admin.display(description="Plan and version")
    def version_number(self, obj: Subscription) -> str:
        pinned = " (pinned)" if obj.pinned_version_id else ""
        return f"{obj.plan.name} v{obj.plan_version.number}{pinned}"

    @admin.display(description="Current period", ordering="current_period_start")
    def current_period(self, obj: Subscription) -> str:
        return period_text(obj.current_period_start, obj.current_period_end, obj.customer.timezone)

    @admin.display(description="Negotiated prices (overrides)")
    def price_overrides_display(self, obj: Subscription) -> str:
        lines = subscription_override_lines(obj) if obj.pk else []
        if not lines:
            return "None: the plan's prices."
        return format_html_join("", "<div>{}</div>", ((line,) for line in lines))

    @admin.display(description="Change negotiated prices")
    def price_overrides_link(self, obj: Subscription) -> str:
        if obj.pk is None or obj.status == Subscription.Status.ENDED:
            return "—"
        url = reverse("admin:customers_subscription_price_overrides", args=[obj.pk])
        return format_html('<a class="button" href="{}">Change negotiated prices…</a>', url)

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: Subscription) -> str:
        if obj.status == Subscription.Status.ENDED:
            return f"Ended {_when(obj.ended_at)}"
        if obj.cancel_at_period_end:
            return f"Active, ends {_when(obj.current_period_end)}"
        return "Active"

    @admin.display(description="Cancel")
    def cancel_link(self, obj: Subscription) -> str:
        if obj.pk is None or obj.status == Subscription.Status.ENDED:
            return "—"
        url = reverse("admin:customers_subscription_cancel", args=[obj.pk])
        return format_html('<a class="button" href="{}">Cancel this subscription…</a>', url)

    @admin.display(description="Trial")
    def trial_text(self, obj: Subscription) -> str:
        if obj.trial_end is None:
            return "No trial"
        state = "in trial" if obj.status == Subscription.Status.ACTIVE and obj.in_trial_at(timezone.now()) else "over"
        return f"Until {_when(obj.trial_end)} ({state}): no fixed fees before it"

    @admin.display(description="Plan change")
    def plan_change(self, obj: Subscription) -> str:
        """The "Change plan..." button, or the scheduled change with its cancel button (backoffice.plan_change)."""
        if obj.pk is None or obj.status == Subscription.Status.ENDED:
            return "—"
        if obj.scheduled_plan_id:
            url = reverse("admin:customers_subscription_cancel_scheduled_change", args=[obj.pk])
            return format_html(
                'Changes to <strong>{}</strong> on {} (the period\'s end). <a class="button" href="{}">'
                "Cancel the scheduled change…</a>",
                obj.scheduled_plan.name,
                _when(obj.current_period_end),
                url,
            )
        url = reverse("admin:customers_subscription_change_plan", args=[obj.pk])
        return format_html('<a class="button" href="{}">Change plan…</a>', url)

    @admin.display(description="Plan changes (chain)")
    def chain(self, obj: Subscription) -> str:
        if obj.pk is None:
            return "—"
        links = []
        for label, other in (("Replaced", obj.previous_subscription), ("Replaced by", obj.next_subscription_or_none)):
            if other is not None:
                url = reverse("admin:customers_subscription_change", args=[other.pk])
                links.append(format_html('{} <a href="{}">#{} ({})</a>', label, url, other.pk, other.plan.name))
        return format_html_join("; ", "{}", ((link,) for link in links)) if links else "—"

    @admin.display(description="Billing periods (past and current)")
    def periods_table(self, obj: Subscription) -> str:
        if obj.pk is None:
            return "—"
        rows = subscription_periods(subscription=obj, until=timezone.now())
        if not rows:
            return "No period has started yet."
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    _zoned(r.start, obj),
                    _zoned(r.end, obj),
                    r.days,
                    f"v{r.plan_version.number}" if r.plan_version else "—",
                    "current" if r.is_current else (f"ended {_when(r.ended_at)}" if r.ended_at else "past"),
                )
                for r in rows
            ),
        )
        return format_html(
            '<table class="subscription-periods"><thead><tr><th>Start</th><th>End</th><th>Days</th>'
            "<th>Version</th><th>State</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    # --- add: through the same entry point as the API ------------------------------------------
    def add_view(self, request, form_url="", extra_context=None):
        """Not the admin's change form (it runs in a transaction); calls the durable ``subscription_start``."""
        from invoicing.services import subscription_start

        if not self.has_add_permission(request):
            raise PermissionDenied
        form = SubscriptionAddForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            now = timezone.now()
            try:
                subscription = subscription_start(
                    customer=data["customer"],
                    plan=data["plan"],
                    start_at=data["start_at"] or now,
                    billing=data["billing"],
                    pinned_version=data["pinned_version"],
                    now=now,
                    trial_days=data["trial_days"],
                )
            except BillingError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                self.log_addition(request, subscription, "Created (first period started)")
                later = (
                    " The periods after it are billed by the next billing run."
                    if subscription.current_period_end <= now
                    else ""
                )
                self.message_user(
                    request,
                    f"Subscription #{subscription.pk} created; its first period "
                    f"{period_text(subscription.current_period_start, subscription.current_period_end)} has started."
                    f"{later}",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:customers_subscription_change", args=[subscription.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "title": "Add subscription",
            "media": self.media + form.media,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/customers/subscription/add.html", context)

    # --- cancel ---------------------------------------------------------------------------------
    def get_urls(self):
        urls = super().get_urls()
        custom = [
            path(
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="customers_subscription_cancel",
            ),
            path(
                "<path:object_id>/prices/",
                self.admin_site.admin_view(self.price_overrides_view),
                name="customers_subscription_price_overrides",
            ),
            path(
                "<path:object_id>/change_plan/",
                self.admin_site.admin_view(self.change_plan_view),
                name="customers_subscription_change_plan",
            ),
            path(
                "<path:object_id>/cancel_scheduled_change/",
                self.admin_site.admin_view(self.cancel_scheduled_change_view),
                name="customers_subscription_cancel_scheduled_change",
            ),
        ]
        return custom + urls

    def price_overrides_view(self, request, object_id):
        """Negotiated prices from the next period, through the API's entry point (outside the change-form
        transaction, like the cancel page)."""
        from invoicing.services import subscription_price_overrides_update

        if not self.has_cancel_permission(request):
            raise PermissionDenied
        subscription = get_object_or_404(self.get_queryset(request), pk=object_id)
        current = (
            subscription.pending_price_overrides
            if subscription.pending_price_overrides is not None
            else subscription.price_overrides
        )
        prices = list(subscription.plan_version.prices.order_by("position", "id"))
        form = PriceOverridesForm(request.POST or None, prices=prices, current=current)
        if request.method == "POST" and form.is_valid():
            overrides, paths = form.overrides()
            try:
                subscription_price_overrides_update(subscription=subscription, price_overrides=overrides)
            except BillingError as exc:
                for path_, messages_ in getattr(exc, "errors", {exc.field: [exc.message]}).items():
                    for message in messages_:
                        form.add_error(paths.get(path_), message)
            else:
                self.log_change(request, subscription, "Negotiated prices changed (from the next period)")
                self.message_user(
                    request, "Negotiated prices saved; they apply from the next period.", messages.SUCCESS
                )
                return HttpResponseRedirect(reverse("admin:customers_subscription_change", args=[subscription.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "subscription": subscription,
            "title": f"Negotiated prices of {subscription}",
            "tier_note": "Tier overrides are set through the API; those saved are kept."
            if any(p.model == "tiered" for p in prices)
            else "",
        }
        return TemplateResponse(request, "admin/customers/subscription/price_overrides.html", context)

    def change_plan_view(self, request, object_id):
        """ "Change plan...": form, preview, confirmation (``backoffice.plan_change``, the API's service)."""
        from backoffice.plan_change import change_plan_view

        if not self.has_cancel_permission(request):
            raise PermissionDenied
        return change_plan_view(self, request, get_object_or_404(self.get_queryset(request), pk=object_id))

    def cancel_scheduled_change_view(self, request, object_id):
        from backoffice.plan_change import cancel_scheduled_change_view

        if not self.has_cancel_permission(request):
            raise PermissionDenied
        subscription = get_object_or_404(self.get_queryset(request), pk=object_id)
        return cancel_scheduled_change_view(self, request, subscription)

    def cancel_view(self, request, object_id):
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        subscription = get_object_or_404(self.get_queryset(request), pk=object_id)
        queryset = self.get_queryset(request).filter(pk=subscription.pk)
        response = self.cancel_subscriptions(request, queryset)
        if response is None:
            return HttpResponseRedirect(reverse("admin:customers_subscription_change", args=[subscription.pk]))
        return response

    @admin.action(description="Cancel selected subscriptions…", permissions=["cancel"])
    def cancel_subscriptions(self, request, queryset):
        """Confirmation page first; on confirm, cancel each through invoicing's entry point and log it."""
        from invoicing.services import subscription_cancel

        form = CancelForm(request.POST if request.POST.get("confirm") == "yes" else None)
        if form.is_bound and form.is_valid():
            at = form.cleaned_data["at"]
            done, failed = 0, []
            for subscription in queryset:
                try:
                    subscription_cancel(subscription=subscription, at=at, now=timezone.now())
                except BillingError as exc:
                    failed.append(f"#{subscription.pk}: {exc.message}")
                    continue
                done += 1
                self.log_change(
                    request, subscription, "Canceled at period end" if at == "period_end" else "Canceled now"
                )
            if done:
                when = "at the end of their current period" if at == "period_end" else "now"
                self.message_user(request, f"Canceled {done} subscription(s) {when}.", messages.SUCCESS)
            if failed:
                self.message_user(request, "Not canceled: " + "; ".join(failed), messages.ERROR)
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Cancel subscriptions",
            "subscriptions": list(queryset.select_related("customer", "plan", "plan_version")),
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "action": "cancel_subscriptions",
        }
        return TemplateResponse(request, "admin/customers/subscription/cancel_confirmation.html", context)
