"""Catalog admin for finance staff: features, plans with their version history, versions with their
prices, entitlements and credit grants, and each price's tiers as rows.

Published versions are read-only here, children included (DESIGN.md: "read-only forever"): every
change/add/delete permission is false once a version is published, so a POST to its change page is
refused (403). Drafts are edited freely; publishing goes through a confirmation page that lists what
changes against the version in effect and from when. Every catalog model keeps simple_history
records, shown under "History" (who, when, what changed).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, F, Func, IntegerField, OuterRef, Prefetch, Q, Subquery
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal
from simple_history.admin import SimpleHistoryAdmin

from billing_project.admin import currency_filter
from billing_project.errors import BillingError
from billing_project.instants import format_instant, validate_instant
from billing_project.money import currency_allowed

from . import pricing, services
from .display import entitlement_summary, grant_summary, price_summary, tiers_summary
from .models import Entitlement, Feature, Plan, PlanCreditGrant, PlanVersion, Price, Tier
from .selectors import plan_version_in_effect


def _plan_currencies():
    """The currencies plans are priced in (the currency filters list only these)."""
    return Plan.objects.order_by().values_list("currency", flat=True).distinct()


def _published(version: PlanVersion | None) -> bool:
    return version is not None and version.pk is not None and version.is_published


def _row_count(queryset) -> Subquery:
    """``(SELECT COUNT(*) FROM <rows> WHERE <fk> = outer.pk)`` for a queryset filtered on ``OuterRef("pk")``.

    A correlated subquery per row shown, instead of a ``COUNT`` over a join: a join multiplies the rows by
    every child (prices x entitlements x grants) before grouping, and drags the children into the changelist's
    count, search and date queries too.
    """
    counted = queryset.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Subquery(counted, output_field=IntegerField())


def _link(obj: Any, text: str) -> str:
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text)


# --------------------------------------------------------------------------- features


class FeatureForm(forms.ModelForm):
    class Meta:
        model = Feature
        fields = ["key", "name", "type", "meter", "unit_name", "description"]

    def clean(self):
        data = super().clean()
        if data.get("type") == Feature.Type.METERED and not data.get("meter"):
            self.add_error("meter", "A metered feature needs a meter.")
        if data.get("type") in (Feature.Type.BOOLEAN, Feature.Type.STATIC) and data.get("meter"):
            self.add_error("meter", "Only metered features have a meter.")
        return data


@admin.register(Feature)
class FeatureAdmin(SimpleHistoryAdmin):
    form = FeatureForm
    list_display = ("key", "name", "type", "meter", "unit_name", "created_at")
    list_filter = ("type",)
    search_fields = ("key", "name", "meter__key")
    list_select_related = ("meter",)


# --------------------------------------------------------------------------- plans


class PlanForm(forms.ModelForm):
    class Meta:
        model = Plan
        fields = ["key", "name", "description", "currency", "interval"]

    def clean_currency(self):
        currency = self.cleaned_data["currency"]
        if not currency_allowed(currency):
            raise ValidationError(f"{currency} is not one of this installation's currencies.")
        return currency


class PlanVersionSummaryInline(admin.TabularInline):
    """The plan's version history: one read-only row per version, linking to its page."""

    model = PlanVersion
    verbose_name = "version"
    verbose_name_plural = "Version history (open a version to see or edit its prices)"
    fields = ("version_link", "status", "effective_from", "published_at", "contents")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-number",)
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            n_prices=_row_count(Price.objects.filter(plan_version=OuterRef("pk"))),
            n_entitlements=_row_count(Entitlement.objects.filter(plan_version=OuterRef("pk"))),
            n_grants=_row_count(PlanCreditGrant.objects.filter(plan_version=OuterRef("pk"))),
        )

    @admin.display(description="Version")
    def version_link(self, obj):
        return _link(obj, f"v{obj.number}")

    @admin.display(description="Contents")
    def contents(self, obj):
        return f"{obj.n_prices} price(s), {obj.n_entitlements} entitlement(s), {obj.n_grants} credit grant(s)"


@admin.register(Plan)
class PlanAdmin(SimpleHistoryAdmin):
    form = PlanForm
    list_display = ("key", "name", "currency", "interval", "version_count", "latest_published")
    list_filter = (currency_filter("currency", _plan_currencies), "interval")
    search_fields = ("key", "name", "description")
    inlines = [PlanVersionSummaryInline]

    def get_queryset(self, request):
        published = PlanVersion.objects.filter(status=PlanVersion.Status.PUBLISHED).order_by("-number")
        return (
            super()
            .get_queryset(request)
            .annotate(n_versions=Count("versions"))
            .prefetch_related(Prefetch("versions", queryset=published, to_attr="published_versions"))
        )

    @admin.display(description="Versions", ordering="n_versions")
    def version_count(self, obj):
        return obj.n_versions

    @admin.display(description="Latest published version")
    def latest_published(self, obj):
        version = next(iter(obj.published_versions), None)
        if version is None:
            return "—"
        # format_html escapes its arguments to text first, so the date is formatted before it is passed.
        return format_html("{} (from {})", _link(version, f"v{version.number}"), format_instant(version.effective_from))


# --------------------------------------------------------------------------- plan versions and their rows


class _VersionChildInline(admin.TabularInline):
    """Rows of a version: editable while it is a draft, read-only (no add/change/delete) once published.

    ``max_num`` is the API's bound on the list (catalog.services), enforced on POST too (``validate_max``).
    """

    extra = 0

    def get_formset(self, request, obj=None, **kwargs):
        return super().get_formset(request, obj, validate_max=True, **kwargs)

    def has_add_permission(self, request, obj=None):
        return not _published(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not _published(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not _published(obj) and super().has_delete_permission(request, obj)


class PriceInlineForm(forms.ModelForm):
    """Checks a price row as the API does (meter for usage, none for flat fees, the right amounts).

    Tiers are entered on the price's own page, so a missing tier table is not an error here; the
    whole version is checked again when it is published.
    """

    class Meta:
        model = Price
        fields = ["position", "name", "model", "meter", "timing", "amount", "unit_amount", "package_size",
                  "package_amount", "tier_mode"]

    def clean(self):
        data = super().clean()
        if self.errors or not data.get("model"):
            return data
        errors = services._Errors()
        payload = {name: data.get(name) for name in self.Meta.fields if name != "position"}
        payload["tier_mode"] = payload.get("tier_mode") or None
        if self.instance.pk:
            payload["tiers"] = services.price_as_input(self.instance)["tiers"] if data["model"] == Price.Model.TIERED else []
        spec = services.price_validate(payload, errors=errors)
        for field, problems in errors.items.items():
            if field.startswith("tiers"):
                continue
            target = field if field in self.fields else None
            for problem in problems:
                self.add_error(target, problem)
        if spec is not None and not data.get("timing"):
            data["timing"] = spec.timing
        return data


class PriceInline(_VersionChildInline):
    model = Price
    max_num = services.MAX_PRICES
    form = PriceInlineForm
    fields = ("position", "name", "model", "meter", "timing", "amount", "unit_amount", "package_size",
              "package_amount", "tier_mode", "tiers_link")
    readonly_fields = ("tiers_link",)
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("meter", "plan_version__plan").prefetch_related("tiers")

    @admin.display(description="Tiers")
    def tiers_link(self, obj):
        if obj.pk is None or obj.model != Price.Model.TIERED:
            return "—"
        summary = tiers_summary(obj.tiers.all(), obj.plan_version.plan.currency)
        # A published version never changes: its price page is read-only, and the link says so.
        verb = "edit" if obj.plan_version.status == obj.plan_version.Status.DRAFT else "view"
        return format_html('{} <a href="{}">({} tiers)</a>', summary, reverse("admin:catalog_price_change", args=[obj.pk]),
                           verb)


class EntitlementInline(_VersionChildInline):
    model = Entitlement
    max_num = services.MAX_ENTITLEMENTS
    fields = ("feature", "enabled", "limit", "reset", "soft", "value")


class PlanCreditGrantInline(_VersionChildInline):
    model = PlanCreditGrant
    max_num = services.MAX_CREDIT_GRANTS
    fields = ("name", "credits", "cadence", "rollover_cap", "expire_after_periods", "forfeit_on_end", "priority")


class PlanVersionForm(forms.ModelForm):
    class Meta:
        model = PlanVersion
        fields = ["plan", "effective_from", "notes"]
        help_texts = {
            "effective_from": "UTC. Billing periods starting at or after this instant use this version once it is "
                              "published. May be in the past (to bill past periods); between 2000-01-01 and 2100-01-01.",
        }

    def clean_effective_from(self):
        value = self.cleaned_data["effective_from"]
        validate_instant(value)  # periods are computed from it (billing_project.instants)
        return value


def _changes(current: PlanVersion | None, new: PlanVersion) -> dict[str, list[str]]:
    """What publishing ``new`` changes against ``current``, row by row, for the confirmation page."""
    currency = new.plan.currency

    def rows(version, related, key, summary):
        if version is None:
            return {}
        return {key(r): summary(r) for r in getattr(version, related).all()}

    result: dict[str, list[str]] = {}
    for title, related, key, summary in (
        ("Prices", "prices", lambda p: p.name, lambda p: price_summary(p, currency)),
        ("Entitlements", "entitlements", lambda e: e.feature.name, entitlement_summary),
        ("Credit grants", "credit_grants", lambda g: g.name, grant_summary),
    ):
        old, fresh = rows(current, related, key, summary), rows(new, related, key, summary)
        lines = []
        for name, text in fresh.items():
            if name not in old:
                lines.append(f"New — {name}: {text}")
            elif old[name] != text:
                lines.append(f"Changed — {name}: {old[name]} → {text}")
            else:
                lines.append(f"Unchanged — {name}: {text}")
        lines += [f"Removed — {name}: {text}" for name, text in old.items() if name not in fresh]
        result[title] = lines or ["none"]
    return result


@admin.register(PlanVersion)
class PlanVersionAdmin(SimpleHistoryAdmin):
    """Versions of every plan. The list reads no price rows but the shown versions' counts: search looks at the
    version's and its plan's own fields and at price names through ``EXISTS`` (no join, so no fan-out
    whatever a version holds), and the count is a correlated subquery."""

    form = PlanVersionForm
    list_display = ("__str__", "plan", "number", "status", "effective_from", "published_at", "price_count")
    list_filter = ("status", currency_filter("plan__currency", _plan_currencies), "plan__interval", "plan")
    search_fields = ("plan__key", "plan__name", "notes")
    search_help_text = "Plan key or name, notes, or the name of one of the version's prices."
    list_select_related = ("plan",)
    readonly_fields = ("number", "status", "published_at", "created_at")
    inlines = [PriceInline, EntitlementInline, PlanCreditGrantInline]
    actions = ["publish_versions", "new_draft_from_versions"]
    date_hierarchy = "effective_from"
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            n_prices=_row_count(Price.objects.filter(plan_version=OuterRef("pk")))
        )

    def get_search_results(self, request, queryset, search_term):
        """Each word must match a plan key or name, the notes, or a price name (``EXISTS``): never a join."""
        for bit in smart_split(search_term or ""):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
                bit = unescape_string_literal(bit)
            queryset = queryset.filter(
                Q(plan__key__icontains=bit) | Q(plan__name__icontains=bit) | Q(notes__icontains=bit)
                | Q(Exists(Price.objects.filter(plan_version=OuterRef("pk"), name__icontains=bit)))
            )
        return queryset, False

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["plan", "effective_from", "notes"]
        return ["plan", "number", "status", "effective_from", "published_at", "notes", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["plan", *self.readonly_fields] if obj is not None else []

    @admin.display(description="Prices", ordering="n_prices")
    def price_count(self, obj):
        return obj.n_prices

    def has_change_permission(self, request, obj=None):
        return not _published(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not _published(obj) and super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        # Runs inside the admin's own transaction, so only non-durable services are used here.
        if change:
            services.plan_version_assert_draft(obj)
        else:
            obj.number = services.plan_version_next_number(plan=obj.plan)
            obj.status = PlanVersion.Status.DRAFT
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        if change:
            services.plan_version_assert_draft(form.instance)
        super().save_formset(request, form, formset, change)

    @admin.action(description="Publish selected draft versions…", permissions=["change"])
    def publish_versions(self, request, queryset):
        versions = list(
            queryset.select_related("plan").prefetch_related("prices__tiers", "prices__meter", "entitlements__feature",
                                                              "credit_grants")
        )
        if request.POST.get("confirm") != "yes":
            items = []
            for version in versions:
                current = plan_version_in_effect(plan=version.plan, at=version.effective_from)
                problem = None
                if version.is_published:
                    problem = "Already published: it will be skipped."
                else:
                    try:
                        services.plan_version_check(version=version)
                    except BillingError as exc:
                        problem = "Cannot be published yet: " + "; ".join(
                            f"{field}: {' '.join(msgs)}" for field, msgs in getattr(exc, "errors", {exc.field: [exc.message]}).items()
                        )
                items.append({"version": version, "current": current, "changes": _changes(current, version),
                              "problem": problem})
            return TemplateResponse(
                request,
                "admin/catalog/planversion/publish_confirmation.html",
                {**self.admin_site.each_context(request), "title": "Publish plan versions?", "items": items,
                 "queryset": queryset, "opts": self.model._meta,
                 "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME},
            )
        published = 0
        for version in versions:
            try:
                with transaction.atomic():
                    services.plan_version_publish_in_transaction(version=version)
            except BillingError as exc:
                self.message_user(request, f"{version}: {exc.message}", level=messages.ERROR)
                continue
            published += 1
            self.log_change(request, version, f"Published v{version.number}, effective from {version.effective_from:%Y-%m-%d %H:%M} UTC.")
        if published:
            self.message_user(request, f"Published {published} version(s). They are read-only from now on.")
        return None

    @admin.action(description="New draft from selected versions", permissions=["add"])
    def new_draft_from_versions(self, request, queryset):
        for version in queryset.select_related("plan"):
            with transaction.atomic():
                draft = services.plan_version_draft_from_in_transaction(version=version)
            self.log_addition(request, draft, f"New draft copied from v{version.number}.")
            self.message_user(
                request,
                format_html("Created {} from v{}: edit its prices, then publish it.", _link(draft, str(draft)), version.number),
            )


# --------------------------------------------------------------------------- a price and its tiers


class TierFormSet(forms.BaseInlineFormSet):
    """The tier table must rise and end unbounded (catalog.pricing.validate_tiers)."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        rows = [
            f.cleaned_data for f in self.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE", False)
        ]
        if self.instance.model != Price.Model.TIERED:
            if rows:
                raise ValidationError("Only tiered prices have tiers.")
            return
        rows.sort(key=lambda r: r.get("position") or 0)
        tiers = [pricing.Tier(up_to=r.get("up_to"), unit_amount=r.get("unit_amount") or 0,
                              flat_amount=r.get("flat_amount") or 0) for r in rows]
        try:
            pricing.validate_tiers(tiers)
        except pricing.PricingError as exc:
            raise ValidationError(exc.message[:1].upper() + exc.message[1:] + ".") from None


class TierInline(admin.TabularInline):
    model = Tier
    formset = TierFormSet
    fields = ("position", "up_to", "unit_amount", "flat_amount")
    extra = 1

    def _published(self, obj):
        return obj is not None and _published(obj.plan_version)

    def has_add_permission(self, request, obj=None):
        return not self._published(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not self._published(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._published(obj) and super().has_delete_permission(request, obj)


@admin.register(Price)
class PriceAdmin(SimpleHistoryAdmin):
    """A price's own page: its tiers as editable rows (Django has no nested inlines on the version page)."""

    list_display = ("name", "version_link", "model", "meter", "timing", "summary")
    list_filter = ("model", "timing", "tier_mode", "plan_version__status",
                   currency_filter("plan_version__plan__currency", _plan_currencies))
    search_fields = ("name", "plan_version__plan__key", "plan_version__plan__name", "meter__key")
    list_select_related = ("plan_version__plan", "meter")
    fields = ("version_link", "name", "model", "meter", "timing", "amount", "unit_amount", "package_size",
              "package_amount", "tier_mode", "summary")
    readonly_fields = ("version_link", "name", "model", "meter", "timing", "amount", "unit_amount", "package_size",
                       "package_amount", "tier_mode", "summary")
    inlines = [TierInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tiers")

    @admin.display(description="Plan version")
    def version_link(self, obj):
        return _link(obj.plan_version, str(obj.plan_version))

    @admin.display(description="Price")
    def summary(self, obj):
        return price_summary(obj, obj.plan_version.plan.currency)

    def has_add_permission(self, request):
        return False  # prices are added on their version's page

    def has_change_permission(self, request, obj=None):
        return not (obj is not None and _published(obj.plan_version)) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not (obj is not None and _published(obj.plan_version)) and super().has_delete_permission(request, obj)

    def save_formset(self, request, form, formset, change):
        services.plan_version_assert_draft(form.instance.plan_version)
        super().save_formset(request, form, formset, change)

