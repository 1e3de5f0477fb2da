"""Webhook endpoints, the delivery log and alerts in the admin.

* Endpoints: saved through the services (the same URL and event checks as the API). A new endpoint's secret,
  and the new secret of a "roll secret" action, are shown once, on the page that answers (``no-store``).
* Deliveries: read-only, with status, tries, the last status code and the start of the last answer; "resend"
  and "resend all failed" need the ``core.resend_webhookdelivery`` permission (Finance admin).
* Alerts: created through ``webhooks.alerts.alert_create`` rules; their triggers are listed on the alert.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Q
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from core.admin import ReadOnlyAdminMixin
from core.errors import BillingError
from core.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from core.outbox import ALL_EVENTS, EVENT_TYPES

from . import alerts, services
from .models import Alert, AlertTrigger

EVENT_CHOICES = [(ALL_EVENTS, "* (every event)"), *[(t, t) for t in EVENT_TYPES]]


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https", help_text="Where deliveries are POSTed.")
    events = forms.MultipleChoiceField(
        choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple, help_text="Tick * to receive every event."
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "events", "enabled", "description")

    def clean(self):
        data = super().clean()
        try:
            if "url" in data:
                services.endpoint_url_check(data["url"])
            if "events" in data:
                data["events"] = services.endpoint_events_check(data["events"])
        except BillingError as exc:
            raise DjangoValidationError({exc.field or "url": exc.message}) from None
        return data


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("url", "events_display", "enabled", "description", "pending", "failed", "created_at")
    list_filter = ("enabled",)
    search_fields = ("url", "description")
    readonly_fields = ("created_at", "secret_state")
    actions = ["roll_secret"]

    def get_fields(self, request, obj=None):
        base = ["url", "events", "enabled", "description"]
        return base if obj is None else [*base, "secret_state", "created_at"]

    @admin.display(description="Events")
    def events_display(self, obj):
        return ", ".join(obj.events)

    def get_queryset(self, request):
        status = WebhookDelivery.Status
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending_count=Count("deliveries", filter=Q(deliveries__status=status.PENDING)),
                failed_count=Count("deliveries", filter=Q(deliveries__status=status.FAILED)),
            )
        )

    @admin.display(description="Pending deliveries", ordering="pending_count")
    def pending(self, obj):
        return obj.pending_count

    @admin.display(description="Failed deliveries", ordering="failed_count")
    def failed(self, obj):
        return obj.failed_count

    @admin.display(description="Signing secret")
    def secret_state(self, obj):
        text = "Set (shown once, when created or rolled)."
        if obj.previous_secret_expires_at and obj.previous_secret_expires_at > timezone.now():
            text += f" The previous secret is valid until {obj.previous_secret_expires_at:%d %b %Y, %H:%M} UTC."
        return text

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in ("url", "events", "enabled", "description")}
        if change:
            saved = services.endpoint_update_in_transaction(endpoint=obj, data=data)
        else:
            saved = services.endpoint_create_in_transaction(**data)
        obj.pk, obj.secret = saved.pk, saved.secret

    def response_add(self, request, obj, post_url_continue=None):
        return self._secrets_page(request, [obj], title="New webhook endpoint", rolled=False)

    def _secrets_page(self, request, endpoints, *, title: str, rolled: bool):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "endpoints": endpoints,
            "rolled": rolled,
        }
        response = TemplateResponse(request, "admin/core/webhookendpoint/secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Roll the signing secret (the old one stays valid 24 h)", permissions=["change"])
    def roll_secret(self, request, queryset):
        rolled = []
        for endpoint in queryset:
            rolled.append(services.endpoint_secret_roll(endpoint=endpoint, now=timezone.now()))
            self.log_change(request, endpoint, "Rolled the signing secret")
        return self._secrets_page(request, rolled, title="New signing secrets", rolled=True)


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "type", "webhook_id", "created_at")
    list_filter = ("type",)
    search_fields = ("=uuid",)
    fields = ("type", "webhook_id", "created_at", "data_display")
    readonly_fields = fields
    show_full_result_count = False

    @admin.display(description="Data (as the API shows the object)")
    def data_display(self, obj):
        import json

        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, sort_keys=True))


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "response_excerpt",
        "last_attempt_at",
        "next_attempt_at",
    )
    list_filter = ("status", "endpoint", "event__type")
    list_select_related = ("event", "endpoint")
    search_fields = ("endpoint__url", "event__type")
    fields = (
        "event",
        "endpoint",
        "webhook_id",
        "status",
        "attempts",
        "last_attempt_at",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "last_response",
        "delivered_at",
        "created_at",
    )
    readonly_fields = fields
    actions = ["resend", "resend_all_failed"]
    show_full_result_count = False

    @admin.display(description="Event", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.display(description="webhook-id")
    def webhook_id(self, obj):
        return obj.event.webhook_id

    @admin.display(description="Last answer")
    def response_excerpt(self, obj):
        text = obj.last_response or obj.last_error
        return text[:80] + ("…" if len(text) > 80 else "")

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("core.resend_webhookdelivery")

    @admin.action(description="Resend the selected deliveries", permissions=["resend"])
    def resend(self, request, queryset):
        now = timezone.now()
        for delivery in queryset:
            services.delivery_resend(delivery=delivery, now=now)
            self.log_change(request, delivery, "Resent")
        self.message_user(request, f"{queryset.count()} delivery(ies) will be sent again within a minute.")

    @admin.action(description="Resend every failed delivery", permissions=["resend"])
    def resend_all_failed(self, request, queryset):
        count = services.deliveries_resend_failed(now=timezone.now())
        self.message_user(request, f"{count} failed delivery(ies) will be sent again within a minute.")


class AlertForm(forms.ModelForm):
    levels = forms.CharField(
        label="Thresholds",
        help_text="Values reached once per period, comma-separated, e.g. 1000, 3000.",
        required=False,
    )
    recurring = forms.DecimalField(
        label="Recurring every",
        required=False,
        help_text="Optional: triggers again at the highest threshold plus each multiple of this value.",
    )

    class Meta:
        model = Alert
        fields = ("customer", "name", "kind", "meter")

    def clean(self):
        data = super().clean()
        try:
            values = [Decimal(v.strip()) for v in (data.get("levels") or "").split(",") if v.strip()]
        except InvalidOperation:
            raise DjangoValidationError({"levels": "Numbers separated by commas, e.g. 1000, 3000."}) from None
        thresholds = [{"value": v, "recurring": False} for v in values]
        if data.get("recurring"):
            thresholds.append({"value": data["recurring"], "recurring": True})
        try:
            data["thresholds"] = alerts.alert_check(data.get("kind", ""), data.get("meter"), thresholds)
        except BillingError as exc:
            field = {"thresholds": "levels"}.get(exc.field, exc.field) or "levels"
            raise DjangoValidationError({field: exc.message}) from None
        return data


class AlertTriggerInline(admin.TabularInline):
    model = AlertTrigger
    fields = ("period_start", "threshold", "value", "triggered_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-triggered_at", "-threshold")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    form = AlertForm
    list_display = ("name", "customer", "kind", "meter", "thresholds_display", "created_at")
    list_filter = ("kind",)
    search_fields = ("name", "customer__external_id", "customer__name")
    list_select_related = ("customer", "meter")
    autocomplete_fields = ("customer",)
    inlines = [AlertTriggerInline]

    @admin.display(description="Thresholds")
    def thresholds_display(self, obj):
        return ", ".join(("every " if t["recurring"] else "") + t["value"] for t in obj.thresholds)

    def get_readonly_fields(self, request, obj=None):
        return ("customer", "kind", "meter", "thresholds_display") if obj else ()

    def get_fields(self, request, obj=None):
        if obj:
            return ("customer", "name", "kind", "meter", "thresholds_display")
        return ("customer", "name", "kind", "meter", "levels", "recurring")

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None:
            kwargs["form"] = forms.ModelForm
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            Alert.objects.filter(pk=obj.pk).update(name=obj.name)
            return
        saved = alerts.alert_create_in_transaction(
            customer=obj.customer,
            name=obj.name,
            kind=obj.kind,
            meter=obj.meter,
            thresholds=form.cleaned_data["thresholds"],
        )
        obj.pk = saved.pk
