"""Pricing operations screens (DESIGN.md "Pricing operations"): backtest a plan version, migrate pinned subscriptions.

Reached from a plan version's page ("Backtest…", "Migrate subscriptions…"). Thin: each screen calls the
invoicing services (``plan_version_backtest`` through a :class:`~invoicing.models.BacktestRun`,
``plan_version_migrate``) and renders what they return.

* Backtest: a window form (default the last calendar month); a run of at most ``INLINE_SUBSCRIPTIONS``
  subscriptions is priced in the request, a larger one on a Celery worker while its page shows the progress
  stored on the run's row (the page reloads itself every two seconds). The result page shows the totals, the
  20 biggest movers both ways, a histogram of the deltas (SVG) and a CSV download.
* Migration: pick the versions to move from, see the dry run (how many, which customers, each one's backtest
  delta over the last calendar month under the target version), then confirm.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from catalog.models import PlanVersion
from core.errors import BillingError
from core.money import format_money
from customers.periods import add_months
from invoicing.models import BacktestRun
from invoicing.services.backtest import (
    INLINE_SUBSCRIPTIONS,
    backtest_run_create,
    backtest_run_execute,
    backtest_window,
    plan_version_backtest,
)
from invoicing.services.migration import plan_version_migrate, plan_version_migration_candidates
from invoicing.tasks import backtest_run_task

MOVERS = 20
HISTOGRAM_BINS = 20
CSV_COLUMNS = ("customer", "customer_name", "subscription", "periods", "actual", "simulated", "delta")


class BacktestForm(forms.Form):
    start = forms.DateField(label="From (first day, included)", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (day after the last, excluded)", widget=forms.DateInput(attrs={"type": "date"}))


def _midnight(day) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    label: str
    positive: bool


def delta_histogram(deltas: list[Decimal], currency: str, *, bins: int = HISTOGRAM_BINS) -> dict:
    """Bars of an SVG histogram of the rows' deltas: equal-width bins from the smallest to the largest delta.

    Geometry in SVG units (600 x 160 plot); Decimal arithmetic for the bin edges, floats only for drawing."""
    width, height = 600, 160
    if not deltas:
        return {"bars": [], "width": width, "height": height}
    low, high = min(deltas), max(deltas)
    if low == high:
        counts = [len(deltas)]
        edges = [low, high]
    else:
        step = (high - low) / bins
        counts = [0] * bins
        for d in deltas:
            counts[min(int((d - low) / step), bins - 1)] += 1
        edges = [low + step * i for i in range(bins + 1)]
    top = max(counts)
    slot = width / len(counts)
    bars = []
    for i, count in enumerate(counts):
        h = height * count / top if top else 0
        label = f"{format_money(edges[i], currency)} to {format_money(edges[i + 1], currency)}: {count}"
        middle = (edges[i] + edges[i + 1]) / 2
        bars.append(Bar(i * slot + 1, height - h, max(slot - 2, 1), h, count, label, middle >= 0))
    return {
        "bars": bars,
        "width": width,
        "height": height,
        "low": format_money(low, currency),
        "high": format_money(high, currency),
    }


def _result_context(run: BacktestRun) -> dict:
    result = run.result or {}
    currency = result.get("currency", run.plan_version.plan.currency)
    rows = result.get("customers", [])

    def shown(row: dict) -> dict:
        return {
            **row,
            "actual_text": format_money(Decimal(row["actual"]), currency),
            "simulated_text": format_money(Decimal(row["simulated"]), currency),
            "delta_text": format_money(Decimal(row["delta"]), currency),
        }

    up = sorted((r for r in rows if Decimal(r["delta"]) > 0), key=lambda r: -Decimal(r["delta"]))[:MOVERS]
    down = sorted((r for r in rows if Decimal(r["delta"]) < 0), key=lambda r: Decimal(r["delta"]))[:MOVERS]
    totals = result.get("totals", {})
    money = {k: format_money(Decimal(totals[k]), currency) for k in ("actual", "simulated", "delta") if k in totals}
    return {
        "totals": totals,
        "money": money,
        "up": [shown(r) for r in up],
        "down": [shown(r) for r in down],
        "histogram": delta_histogram([Decimal(r["delta"]) for r in rows], currency),
    }


class BacktestRunAdmin(admin.ModelAdmin):
    """Backtests run from a plan version's page: read-only; each run's page shows its progress, then its result."""

    list_display = ("__str__", "window_start", "window_end", "status", "total", "requested_by", "created_at")
    list_filter = ("status",)
    list_select_related = ("plan_version__plan",)
    search_fields = ("plan_version__plan__key", "requested_by")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("new/<int:version_id>/", wrap(self.new_view), name="invoicing_backtestrun_new"),
            path("<int:run_id>/result/", wrap(self.result_view), name="invoicing_backtestrun_result"),
            path("<int:run_id>/csv/", wrap(self.csv_view), name="invoicing_backtestrun_csv"),
            path("migrate/<int:version_id>/", wrap(self.migrate_view), name="invoicing_backtestrun_migrate"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:invoicing_backtestrun_result", args=[object_id]))

    def _context(self, request, title: str, version: PlanVersion | None = None) -> dict:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, "version": version}

    # ---- backtest ---------------------------------------------------------------------------------
    def new_view(self, request, version_id):
        if not request.user.has_perm("invoicing.add_backtestrun"):
            raise PermissionDenied
        version = get_object_or_404(PlanVersion.objects.select_related("plan"), pk=version_id)
        now = timezone.now()
        if request.method == "POST":
            form = BacktestForm(request.POST)
            if form.is_valid():
                try:
                    run = backtest_run_create(
                        version=version,
                        start=_midnight(form.cleaned_data["start"]),
                        end=_midnight(form.cleaned_data["end"]),
                        now=now,
                        requested_by=request.user.get_username(),
                    )
                except BillingError as exc:
                    form.add_error("end" if exc.field == "to" else "start", exc.message)
                else:
                    if run.total <= INLINE_SUBSCRIPTIONS:
                        backtest_run_execute(run_id=run.pk, now=now)
                    else:
                        transaction.on_commit(lambda: backtest_run_task.delay(run.pk, now.isoformat()))
                    return HttpResponseRedirect(reverse("admin:invoicing_backtestrun_result", args=[run.pk]))
        else:
            start, end = backtest_window(start=None, end=None, now=now)
            form = BacktestForm(initial={"start": start.date(), "end": end.date()})
        context = {**self._context(request, f"Backtest {version}", version), "form": form}
        return TemplateResponse(request, "admin/backoffice/backtest_form.html", context)

    def result_view(self, request, run_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(BacktestRun.objects.select_related("plan_version__plan"), pk=run_id)
        context = {**self._context(request, f"Backtest of {run.plan_version}", run.plan_version), "run": run}
        if run.status == BacktestRun.Status.DONE:
            context.update(_result_context(run))
        return TemplateResponse(request, "admin/backoffice/backtest_run.html", context)

    def csv_view(self, request, run_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(BacktestRun.objects.select_related("plan_version__plan"), pk=run_id)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in (run.result or {}).get("customers", []):
            writer.writerow([row.get(name, "") for name in CSV_COLUMNS])
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        version = run.plan_version
        response["Content-Disposition"] = (
            f'attachment; filename="backtest-{version.plan.key}-v{version.number}-{run.window_start:%Y-%m-%d}.csv"'
        )
        return response

    # ---- migration --------------------------------------------------------------------------------
    def migrate_view(self, request, version_id):
        if not request.user.has_perm("customers.change_subscription"):
            raise PermissionDenied
        version = get_object_or_404(PlanVersion.objects.select_related("plan"), pk=version_id)
        others = list(PlanVersion.objects.filter(plan_id=version.plan_id).exclude(pk=version.pk).order_by("number"))
        try:
            chosen = sorted({int(n) for n in request.POST.getlist("from_versions")})
        except (TypeError, ValueError, InvalidOperation):
            chosen = []
        context = {
            **self._context(request, f"Migrate subscriptions to {version}", version),
            "others": others,
            "chosen": chosen,
        }
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            try:
                result = plan_version_migrate(
                    version=version,
                    from_versions=chosen,
                    now=timezone.now(),
                    actor=request.user.get_username(),
                )
            except BillingError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Moved {result.count} subscription(s) to v{version.number} from their next period. "
                    "Invoices already issued did not change.",
                )
                return HttpResponseRedirect(reverse("admin:catalog_planversion_change", args=[version.pk]))
        if request.method == "POST":
            try:
                candidates = plan_version_migration_candidates(version=version, from_versions=chosen)
            except BillingError as exc:
                context["error"] = exc.message
            else:
                context["dry_run"] = self._dry_run_rows(version, candidates)
        return TemplateResponse(request, "admin/backoffice/migrate.html", context)

    def _dry_run_rows(self, version: PlanVersion, candidates) -> dict:
        """The subscriptions a migration would move, each with its backtest delta over the last calendar month
        (that month's billed periods priced with the target version)."""
        now = timezone.now()
        currency = version.plan.currency
        deltas: dict[int, Decimal] = {}
        window = backtest_window(start=None, end=None, now=now)
        if candidates:
            backtest = plan_version_backtest(
                version=version, start=window[0], end=window[1], now=now, subscription_ids=[s.pk for s in candidates]
            )
            deltas = {row.subscription: row.delta for row in backtest.rows}
        rows = [
            {
                "subscription": s,
                "from_version": s.pinned_version.number,
                "next_period": s.current_period_end,
                "delta": format_money(deltas[s.pk], currency) if s.pk in deltas else "— (no billed period)",
            }
            for s in candidates
        ]
        total = sum(deltas.values(), Decimal(0))
        return {
            "rows": rows,
            "count": len(rows),
            "window": f"{window[0]:%d %b %Y} to {add_months(window[0], 1):%d %b %Y}",
            "total_delta": format_money(total, currency),
        }


class SubscriptionMigrationAdmin(admin.ModelAdmin):
    """The audit rows of migrations: read-only, one per moved subscription."""

    list_display = ("subscription", "from_version", "to_version", "effective_at", "migrated_at", "actor")
    list_select_related = ("subscription__customer", "from_version__plan", "to_version__plan")
    list_filter = ("to_version__plan",)
    search_fields = ("subscription__customer__external_id", "actor")
    readonly_fields = list_display

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
