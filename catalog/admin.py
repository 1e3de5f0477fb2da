"""Catalog admin for finance staff: features, plans with their version history, versions with their
prices, entitlements and credit grants, and each price's tiers as rows.

Published versions are read-only here, children included (DESIGN.md: "read-only forever"): every
change/add/delete permission is false once a version is published, so a POST to its change page is
refused (403). Drafts are edited freely; publishing goes through a confirmation page that lists what
changes against the version in effect and from when. Every catalog model keeps simple_history
records, shown under "History" (who, when, what changed).

One write path: every form here is checked by the service's own validation (``catalog.services.*_validate``,
errors next to their fields) and saved by the service the API uses (``save_model`` / ``save_formset``), inside
the admin's change-form transaction, so through the non-durable variants.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, F, Func, IntegerField, OuterRef, Prefetch, Q, Subquery
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal
from simple_history.admin import SimpleHistoryAdmin

from core.admin import adopt, currency_filter, errors_to_form
from core.errors import BillingError
from core.forms import DecimalInput
from core.instants import format_instant, validate_instant
from core.money import decimal_text, format_money

from . import services
from .commitments import THRESHOLDS, Threshold, thresholds_of, version_terms_validate
from .display import entitlement_summary, grant_summary, price_summary, tiers_summary
from .models import Entitlement, Feature, Plan, PlanCreditGrant, PlanVersion, Price, Tier
from .price_models import PRICE_COLUMNS, PRICE_FIELDS, PRICE_MODELS
from .selectors import plan_version_in_effect
from .validation import FieldErrors


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


def _form_values(form) -> dict[str, Any]:
    """The form's fields as a service takes them (only the fields the form has, e.g. not read-only ones)."""
    return {name: form.cleaned_data[name] for name in form.fields if name in form.cleaned_data}


class FeatureForm(forms.ModelForm):
    class Meta:
        model = Feature
        fields = ["key", "name", "type", "meter", "unit_name", "description"]

    def clean(self):
        data = super().clean()
        errors = FieldErrors()
        services.feature_validate({name: data.get(name) for name in self.Meta.fields}, errors=errors)
        if self.instance.pk is not None:
            given = {name: data[name] for name in services.FEATURE_FIXED_ONCE_PUBLISHED if name in data}
            services.feature_fixed_fields_check(feature=self.instance, data=given, errors=errors)
        errors_to_form(self, errors.items)
        return data


@admin.register(Feature)
class FeatureAdmin(SimpleHistoryAdmin):
    form = FeatureForm
    list_display = ("key", "name", "type", "meter", "unit_name")
    list_filter = ("type",)
    search_fields = ("key", "name", "meter__key")
    list_select_related = ("meter",)

    def save_model(self, request, obj, form, change):
        values = _form_values(form)
        saved = (
            services.feature_update(feature=obj, data=values)
            if change
            else services.feature_create_in_transaction(**values)
        )
        adopt(obj, saved)


# --------------------------------------------------------------------------- plans


class PlanForm(forms.ModelForm):
    class Meta:
        model = Plan
        fields = ["key", "name", "description", "currency", "interval"]

    def clean(self):
        data = super().clean()
        errors = FieldErrors()
        services.plan_validate({name: data.get(name) for name in self.Meta.fields}, errors=errors)
        if self.instance.pk is not None:
            given = {name: data[name] for name in services.PLAN_FIXED_ONCE_PUBLISHED if name in data}
            services.plan_fixed_fields_check(plan=self.instance, data=given, errors=errors)
        errors_to_form(self, errors.items)
        return data


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
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_prices=_row_count(Price.objects.filter(plan_version=OuterRef("pk"))),
                n_entitlements=_row_count(Entitlement.objects.filter(plan_version=OuterRef("pk"))),
                n_grants=_row_count(PlanCreditGrant.objects.filter(plan_version=OuterRef("pk"))),
            )
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

    def save_model(self, request, obj, form, change):
        values = _form_values(form)
        saved = services.plan_update(plan=obj, data=values) if change else services.plan_create_in_transaction(**values)
        adopt(obj, saved)

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


_ROW_PATH = re.compile(r"^(\w+)\[(\d+)\](?:\.(\w+))?")


def _errors_to_forms(items: dict[str, list[str]], kind: str, forms_in_order: list) -> list[str]:
    """Put ``kind[i].field`` errors on the i-th form (next to the field when it has one); the rest are returned."""
    rest: list[str] = []
    for path, texts in items.items():
        match = _ROW_PATH.match(path)
        if match is None or match[1] != kind or int(match[2]) >= len(forms_in_order):
            rest += texts
            continue
        errors_to_form(forms_in_order[int(match[2])], {match[3] or "": texts})
    return rest


class _ServiceRowsFormSet(forms.BaseInlineFormSet):
    """Rows edited in the admin and written by a catalog service, row by row (changed, added, deleted).

    ``clean`` checks the rows as they will be with the service's rules; ``save_with`` hands the edits to the
    service and records what it stored for the change message (as ``BaseModelFormSet.save`` would)."""

    def row_input(self, form) -> dict[str, Any]:
        raise NotImplementedError

    def live_forms(self) -> list:
        """The forms of the rows as they will be: kept stored rows and new ones, in the formset's order."""
        return [
            f
            for f in self.forms
            if not (self.can_delete and self._should_delete_form(f)) and (f.instance.pk is not None or f.has_changed())
        ]

    def rows_are_clean(self) -> bool:
        return not self.non_form_errors() and not any(f.errors for f in self.live_forms())

    def save_with(self, service, **kwargs) -> None:
        save, edited, deleted = [], [], []
        for index, form in enumerate(self.forms):
            is_new = index >= self.initial_form_count()
            if self.can_delete and self._should_delete_form(form):
                if not is_new and form.instance.pk is not None:
                    deleted.append(form.instance)
                continue
            if form.has_changed():
                save.append(
                    services.RowEdit(
                        row=None if is_new else form.instance,
                        data=self.row_input(form),
                        position=form.cleaned_data.get("position"),
                    )
                )
                edited.append(form)
        stored = service(save=save, delete=deleted, **kwargs) if save or deleted else []
        self.new_objects = [row for row, edit in zip(stored, save, strict=True) if edit.row is None]
        self.changed_objects = [
            (row, form.changed_data)
            for row, edit, form in zip(stored, save, edited, strict=True)
            if edit.row is not None
        ]
        self.deleted_objects = deleted


class VersionRowsFormSet(_ServiceRowsFormSet):
    """One list of a version (``kind``), checked by ``services.plan_version_children_validate`` as the API checks
    it, and saved by ``services.plan_version_rows_save_in_transaction``."""

    kind = ""
    input_fields: tuple[str, ...] = ()

    def row_input(self, form) -> dict[str, Any]:
        return {name: form.cleaned_data.get(name) for name in self.input_fields}

    def clean(self):
        super().clean()
        if not self.rows_are_clean():
            return
        live = self.live_forms()
        errors = FieldErrors()
        services.plan_version_children_validate(
            **{self.kind: [self.row_input(f) for f in live]}, partial=True, errors=errors
        )
        rest = _errors_to_forms(errors.items, self.kind, live)
        if rest:
            raise ValidationError(rest)


class _VersionChildMixin:
    """Rows of a version: editable while it is a draft, read-only (no add/change/delete) once published.

    ``max_num`` is the API's bound on the list (catalog.services), enforced on POST too (``validate_max``). A row
    picks its meter or feature from a list; meters and features are edited on their own pages, so the row shows no
    add/change/delete buttons beside the list.
    """

    extra = 0

    def get_formset(self, request, obj=None, **kwargs):
        return super().get_formset(request, obj, validate_max=True, **kwargs)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if isinstance(getattr(field, "widget", None), RelatedFieldWidgetWrapper):
            widget = field.widget
            widget.can_add_related = widget.can_change_related = widget.can_delete_related = False
            widget.can_view_related = False
        return field

    def has_add_permission(self, request, obj=None):
        return not _published(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not _published(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not _published(obj) and super().has_delete_permission(request, obj)


class _VersionChildInline(_VersionChildMixin, admin.TabularInline):
    """A version's short rows (entitlements, credit grants): one table row each."""


class PriceInlineForm(forms.ModelForm):
    class Meta:
        model = Price
        fields = ["position", "name", "model", "meter", "timing", *PRICE_COLUMNS]


class PriceFormSet(VersionRowsFormSet):
    """Checks each price as the API does (meter for usage, none for flat fees, the right amounts).

    Tiers are entered on the price's own page, so a missing tier table is not an error here (``partial``);
    the whole version is checked again when it is published.
    """

    kind = "prices"
    input_fields = ("name", "model", "meter", "timing", *PRICE_COLUMNS)

    def row_input(self, form) -> dict[str, Any]:
        data = super().row_input(form)
        for column in PRICE_COLUMNS:
            if PRICE_FIELDS[column].kind == "choice":
                data[column] = data[column] or None  # an empty choice is "not given", as in the API
        return data


class PriceInline(_VersionChildMixin, admin.StackedInline):
    """A version's prices, one block each with its fields on four lines (what, when and on which meter, the
    amounts, the tiers): a row of eleven fields does not fit a laptop's screen."""

    model = Price
    max_num = services.MAX_PRICES
    form = PriceInlineForm
    formset = PriceFormSet
    fields = (
        ("position", "name"),
        ("model", "timing", "meter"),
        tuple(c for c in PRICE_COLUMNS if PRICE_FIELDS[c].kind != "choice"),
        (*(c for c in PRICE_COLUMNS if PRICE_FIELDS[c].kind == "choice"), "tiers_link"),
    )
    readonly_fields = ("tiers_link",)
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("meter", "plan_version__plan").prefetch_related("tiers")

    @admin.display(description="Tiers")
    def tiers_link(self, obj):
        if obj.pk is None or not (obj.model in PRICE_MODELS and PRICE_MODELS[obj.model].uses_tiers):
            return "—"
        summary = tiers_summary(obj.tiers.all(), obj.plan_version.plan.currency)
        # A published version never changes: its price page is read-only, and the link says so.
        verb = "edit" if obj.plan_version.status == obj.plan_version.Status.DRAFT else "view"
        return format_html(
            '{} <a href="{}">({} tiers)</a>', summary, reverse("admin:catalog_price_change", args=[obj.pk]), verb
        )


class EntitlementFormSet(VersionRowsFormSet):
    kind = "entitlements"
    input_fields = ("feature", "enabled", "limit", "reset", "soft", "value")


class PlanCreditGrantFormSet(VersionRowsFormSet):
    kind = "credit_grants"
    input_fields = ("name", "credits", "cadence", "rollover_cap", "expire_after_periods", "forfeit_on_end", "priority")


class EntitlementInline(_VersionChildInline):
    model = Entitlement
    max_num = services.MAX_ENTITLEMENTS
    formset = EntitlementFormSet
    fields = EntitlementFormSet.input_fields


class PlanCreditGrantInline(_VersionChildInline):
    model = PlanCreditGrant
    max_num = services.MAX_CREDIT_GRANTS
    formset = PlanCreditGrantFormSet
    fields = PlanCreditGrantFormSet.input_fields


class PlanVersionForm(forms.ModelForm):
    # Progressive thresholds as people write them (stored as JSON: catalog.commitments).
    fixed_thresholds = forms.CharField(
        required=False,
        label="Progressive billing thresholds",
        help_text="Lifetime usage amounts in the plan's currency, increasing, separated by commas (e.g. 200, 500, "
        "1000). Each one reached invoices the period's usage so far at once, once in the subscription's life. "
        "Empty: usage is billed at the period's end only. Needs a usage price on the version.",
    )
    recurring_threshold = forms.DecimalField(
        required=False,
        min_value=0,
        widget=DecimalInput,
        label="Recurring threshold",
        help_text="Optional, above the last threshold: after the highest fixed threshold, usage is invoiced again "
        "at every multiple of this amount (fixed 200 and recurring 1000: 200, 1200, 2200, ...).",
    )
    trial_days = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=365,
        initial=0,
        help_text="Free trial of new subscriptions in days (empty or 0 = none): no fixed fees for trial days.",
    )

    class Meta:
        model = PlanVersion
        fields = ["plan", "effective_from", "trial_days", "notes", "minimum_commitment"]
        help_texts = {
            "effective_from": "UTC. Billing periods starting at or after this instant use this version once it is "
            "published. May be in the past (to bill past periods); between 2000-01-01 and 2100-01-01.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and not self.is_bound:
            stored = thresholds_of(self.instance.progressive_thresholds)
            self.initial["fixed_thresholds"] = ", ".join(decimal_text(t.amount) for t in stored if not t.recurring)
            recurring = [t.amount for t in stored if t.recurring]
            self.initial["recurring_threshold"] = recurring[0] if recurring else None

    def clean_effective_from(self):
        value = self.cleaned_data["effective_from"]
        validate_instant(value)  # periods are computed from it (core.instants)
        return value

    def clean_trial_days(self):
        return self.cleaned_data["trial_days"] or 0

    def clean(self):
        data = super().clean()
        thresholds: list[dict[str, Any]] = []
        for index, text in enumerate(t.strip() for t in (data.get("fixed_thresholds") or "").split(",")):
            if text:
                thresholds.append({"amount": text, "recurring": False})
            elif index or (data.get("fixed_thresholds") or "").strip():
                self.add_error("fixed_thresholds", "Separate the amounts by single commas (e.g. 200, 500, 1000).")
                return data
        if data.get("recurring_threshold") is not None:
            thresholds.append(Threshold(data["recurring_threshold"], True).as_json())
        errors = FieldErrors()
        # Prices are saved after the version's own fields here: publishing checks that a usage price exists.
        _, data["progressive_thresholds"] = version_terms_validate(
            minimum_commitment=data.get("minimum_commitment"),
            progressive_thresholds=thresholds,
            has_usage_prices=None,
            errors=errors,
        )
        for path, messages_ in errors.items.items():
            for message in messages_:
                self.add_error("fixed_thresholds" if path == THRESHOLDS else path, message)
        return data


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
    list_display = ("__str__", "plan", "effective_from", "published_at", "price_count")  # status: in the version's name
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
        return (
            super()
            .get_queryset(request)
            .annotate(n_prices=_row_count(Price.objects.filter(plan_version=OuterRef("pk"))))
        )

    def get_search_results(self, request, queryset, search_term):
        """Each word must match a plan key or name, the notes, or a price name (``EXISTS``): never a join."""
        for bit in smart_split(search_term or ""):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
                bit = unescape_string_literal(bit)
            queryset = queryset.filter(
                Q(plan__key__icontains=bit)
                | Q(plan__name__icontains=bit)
                | Q(notes__icontains=bit)
                | Q(Exists(Price.objects.filter(plan_version=OuterRef("pk"), name__icontains=bit)))
            )
        return queryset, False

    def get_fields(self, request, obj=None):
        terms = ["minimum_commitment", "fixed_thresholds", "recurring_threshold"]
        if obj is None:
            return ["plan", "effective_from", "trial_days", "notes", *terms]
        if not self.has_change_permission(request, obj):  # read-only page: the thresholds in words
            terms = ["minimum_commitment", "thresholds_text"]
        return [
            "plan",
            "number",
            "status",
            "effective_from",
            "trial_days",
            "published_at",
            "notes",
            *terms,
            "created_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return ["plan", *self.readonly_fields, "minimum_commitment", "thresholds_text"]
        return ["plan", *self.readonly_fields] if obj is not None else []

    @admin.display(description="Progressive billing thresholds")
    def thresholds_text(self, obj):
        stored = thresholds_of(obj.progressive_thresholds)
        if not stored:
            return "None: usage is billed at the period's end"
        currency = obj.plan.currency
        return ", ".join(
            format_money(t.amount, currency) + (" (recurring: every further multiple)" if t.recurring else "")
            for t in stored
        )

    @admin.display(description="Prices", ordering="n_prices")
    def price_count(self, obj):
        return obj.n_prices

    def has_change_permission(self, request, obj=None):
        return not _published(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not _published(obj) and super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        # Runs inside the admin's own transaction, so only non-durable services are used here.
        names = ("effective_from", "notes", "trial_days", "minimum_commitment", "progressive_thresholds")
        values = {name: form.cleaned_data[name] for name in names if name in form.cleaned_data}
        if change:
            saved = services.plan_version_update_in_transaction(version=obj, check_usage_prices=False, **values)
        else:
            saved = services.plan_version_create_in_transaction(
                plan=form.cleaned_data["plan"], now=timezone.now(), check_usage_prices=False, **values
            )
        adopt(obj, saved)

    def save_formset(self, request, form, formset, change):
        formset.save_with(services.plan_version_rows_save_in_transaction, version=form.instance, kind=formset.kind)

    @admin.action(description="Publish selected draft versions…", permissions=["change"])
    def publish_versions(self, request, queryset):
        versions = list(
            queryset.select_related("plan").prefetch_related(
                "prices__tiers", "prices__meter", "entitlements__feature", "credit_grants"
            )
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
                            f"{field}: {' '.join(msgs)}"
                            for field, msgs in getattr(exc, "errors", {exc.field: [exc.message]}).items()
                        )
                items.append(
                    {"version": version, "current": current, "changes": _changes(current, version), "problem": problem}
                )
            return TemplateResponse(
                request,
                "admin/catalog/planversion/publish_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Publish plan versions?",
                    "items": items,
                    "queryset": queryset,
                    "opts": self.model._meta,
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
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
            self.log_change(
                request,
                version,
                f"Published v{version.number}, effective from {version.effective_from:%Y-%m-%d %H:%M} UTC.",
            )
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
                format_html(
                    "Created {} from v{}: edit its prices, then publish it.", _link(draft, str(draft)), version.number
                ),
            )


# --------------------------------------------------------------------------- a price and its tiers


class TierFormSet(_ServiceRowsFormSet):
    """The tier table must rise and end unbounded (``services.price_tiers_validate``, the API's rule)."""

    def row_input(self, form) -> dict[str, Any]:
        return {name: form.cleaned_data.get(name) for name in ("up_to", "unit_amount", "flat_amount")}

    def clean(self):
        super().clean()
        if not self.rows_are_clean():
            return
        live = sorted(self.live_forms(), key=lambda f: f.cleaned_data.get("position") or 0)
        errors = FieldErrors()
        services.price_tiers_validate(price=self.instance, tiers=[self.row_input(f) for f in live], errors=errors)
        rest = _errors_to_forms(errors.items, "tiers", live)
        if rest:
            raise ValidationError(rest)


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
    list_filter = (
        "model",
        "timing",
        *(c for c in PRICE_COLUMNS if PRICE_FIELDS[c].kind == "choice"),
        "plan_version__status",
        currency_filter("plan_version__plan__currency", _plan_currencies),
    )
    search_fields = ("name", "plan_version__plan__key", "plan_version__plan__name", "meter__key")
    list_select_related = ("plan_version__plan", "meter")
    fields = ("version_link", "name", "model", "meter", "timing", *PRICE_COLUMNS, "summary")
    readonly_fields = fields
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

    def save_model(self, request, obj, form, change):
        """Nothing: the price's own fields are edited on its version's page; this page saves its tiers."""

    def save_formset(self, request, form, formset, change):
        formset.save_with(services.price_tiers_save_in_transaction, price=form.instance)
