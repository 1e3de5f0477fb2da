"""Meters (with filters as rows and a usage preview) and the read-only event log.

A meter in use (by a published plan version, or by lines of issued invoices) keeps its definition: a change
of its key, event name, aggregation, field, multiplier or filters is a validation error naming the field
(``metering.services.meter_lock_reason``); only its name may change.
"""

from __future__ import annotations

import json
from datetime import UTC

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from core.admin import ReadOnlyAdminMixin
from core.money import format_decimal

from .models import Event, Meter, MeterFilter
from .selectors import event_count_estimate, meter_usage, unknown_customer_event_count
from .services import (
    MAX_FILTER_VALUES,
    MAX_FILTERS,
    METER_DEFINITION_FIELDS,
    meter_definition_clean,
    meter_lock_reason,
    meter_locked_message,
    meter_rollup_reset,
)


def _lock_reason(meter: Meter) -> str | None:
    """Why the meter's definition is fixed (published versions, or issued invoices: admin may read invoicing)."""
    if meter.pk is None:
        return None
    from invoicing.models import Invoice, InvoiceLine

    invoiced = InvoiceLine.objects.filter(meter=meter).exclude(invoice__status=Invoice.Status.DRAFT).exists()
    return meter_lock_reason(meter=meter, invoiced=invoiced)


class MeterFilterForm(forms.ModelForm):
    class Meta:
        model = MeterFilter
        fields = ("property", "values")

    def clean_values(self):
        values = self.cleaned_data["values"]
        if values is not None and len(values) > MAX_FILTER_VALUES:
            raise forms.ValidationError(f"At most {MAX_FILTER_VALUES} values; got {len(values)}.")
        return values


class MeterFilterFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        touched = any(
            form.has_changed() or (self.can_delete and self._should_delete_form(form))
            for form in self.forms
            if not (form.instance.pk is None and not form.has_changed())
        )
        if touched:
            reason = _lock_reason(self.instance)
            if reason:
                raise forms.ValidationError(meter_locked_message("filters", reason))


class MeterFilterInline(admin.TabularInline):
    model = MeterFilter
    form = MeterFilterForm
    formset = MeterFilterFormSet
    extra = 1
    max_num = MAX_FILTERS
    fields = ("property", "values")

    def get_formset(self, request, obj=None, **kwargs):
        return super().get_formset(request, obj, validate_max=True, **kwargs)

    verbose_name = "filter (the property must be one of the values)"
    verbose_name_plural = "filters: an event counts only when every property below has one of its values"


class MeterForm(forms.ModelForm):
    class Meta:
        model = Meter
        fields = ("key", "name", "event_name", "aggregation", "field", "multiplier", "allow_negative")

    def clean(self):
        data = super().clean()
        from core.errors import ValidationFailed

        locked = [name for name in METER_DEFINITION_FIELDS if name in self.changed_data]
        reason = _lock_reason(self.instance) if locked else None
        if reason:
            for name in locked:
                self.add_error(name, meter_locked_message(name, reason))
            return data
        if "aggregation" in data:
            try:
                meter_definition_clean(
                    aggregation=data["aggregation"], field=data.get("field") or "", multiplier=data.get("multiplier")
                )
            except ValidationFailed as exc:
                self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


class PreviewForm(forms.Form):
    customer = forms.CharField(label="Customer external id", max_length=255)
    start = forms.DateTimeField(label="From (UTC)", help_text="e.g. 2026-01-01 00:00")
    end = forms.DateTimeField(label="To (UTC, exclusive)", help_text="e.g. 2026-02-01 00:00")

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            self.add_error("end", "Must be after From.")
        return data


@admin.register(Meter)
class MeterAdmin(admin.ModelAdmin):
    form = MeterForm
    list_display = ("key", "name", "event_name", "aggregation", "field", "multiplier_display", "filters_display")
    list_filter = ("aggregation", "allow_negative")
    search_fields = ("key", "name", "event_name")
    inlines = [MeterFilterInline]
    readonly_fields = ("in_use", "preview_link")
    fields = (
        "key",
        "name",
        "event_name",
        "aggregation",
        "field",
        "multiplier",
        "allow_negative",
        "in_use",
        "preview_link",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("filters")

    @admin.display(description="Multiplier")
    def multiplier_display(self, obj: Meter) -> str:
        return format_decimal(obj.multiplier) if obj.multiplier is not None else "—"

    @admin.display(description="Filters")
    def filters_display(self, obj: Meter) -> str:
        return "; ".join(str(f) for f in obj.filters.all()) or "—"

    @admin.display(description="In use")
    def in_use(self, obj: Meter) -> str:
        reason = _lock_reason(obj)
        if reason is None:
            return "No: its definition may still change."
        return f"Yes: {reason}. Only its name may change; the key, event name, aggregation, field, multiplier and filters are fixed."

    @admin.display(description="Preview")
    def preview_link(self, obj: Meter) -> str:
        if not obj.pk:
            return "Save the meter first."
        url = reverse("admin:metering_meter_preview", args=[obj.pk])
        return format_html('<a href="{}">What would this meter count for a customer and window?</a>', url)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if change and (form.has_changed() or any(f.has_changed() for f in formsets)):
            # The definition changed: the hourly rollup no longer matches it (docs/metering.md).
            meter_rollup_reset(meter=form.instance)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="metering_meter_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        meter = get_object_or_404(Meter.objects.prefetch_related("filters"), pk=object_id)
        form = PreviewForm(request.GET or None)
        value = None
        if form.is_bound and form.is_valid():
            start = form.cleaned_data["start"].astimezone(UTC)
            end = form.cleaned_data["end"].astimezone(UTC)
            value = format_decimal(
                meter_usage(meter=meter, customer_external_id=form.cleaned_data["customer"], start=start, end=end)
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": meter,
            "meter": meter,
            "form": form,
            "value": value,
            "title": f"Preview: {meter}",
        }
        return TemplateResponse(request, "admin/metering/meter/preview.html", context)


class EstimatedCountPaginator(Paginator):
    """The unfiltered event log shows PostgreSQL's row estimate instead of a COUNT(*) over millions of rows."""

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            return event_count_estimate()
        return super().count


class EventNameFilter(admin.SimpleListFilter):
    """Event names that meters read (cheap: no DISTINCT over the event table)."""

    title = "event name"
    parameter_name = "event_name"

    def lookups(self, request, model_admin):
        names = Meter.objects.order_by("event_name").values_list("event_name", flat=True).distinct()
        return [(n, n) for n in names]

    def queryset(self, request, queryset):
        return queryset.filter(event_name=self.value()) if self.value() else queryset


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("timestamp", "event_name", "customer_external_id", "event_id", "properties_display", "received_at")
    list_filter = (EventNameFilter,)
    search_fields = ("=customer_external_id", "=event_id")
    date_hierarchy = "timestamp"
    ordering = ("-timestamp", "-id")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    fields = ("event_id", "customer_external_id", "event_name", "timestamp", "received_at", "properties_table")
    readonly_fields = fields

    @admin.display(description="Properties")
    def properties_display(self, obj: Event) -> str:
        return ", ".join(f"{k} = {self._value(v)}" for k, v in (obj.properties or {}).items()) or "—"

    @admin.display(description="Properties")
    def properties_table(self, obj: Event) -> str:
        items = (obj.properties or {}).items()
        if not items:
            return "—"
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", ((k, self._value(v)) for k, v in items))
        return format_html("<table>{}</table>", rows)

    @staticmethod
    def _value(value) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    def changelist_view(self, request, extra_context=None):
        extra = {"unknown_customer_events": unknown_customer_event_count(), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)
