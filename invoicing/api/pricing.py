"""Pricing operations endpoints (shared/API.md "Pricing operations"): backtest and migration of a plan version.

Thin: they parse, call one service, render. The plan and version come from the path (catalog selectors).
"""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import selectors as catalog_selectors
from catalog.models import PlanVersion
from core.api import error_responses
from core.errors import NotFound, ValidationFailed
from core.fields import FlagField
from core.instants import validate_instant

from ..services.backtest import plan_version_backtest
from ..services.migration import plan_version_migrate

CSV_HEADER = ("customer", "subscription", "periods", "actual", "simulated", "delta")
_NUMBER = OpenApiParameter("number", int, OpenApiParameter.PATH, description="The version number (1, 2, ...).")
_FORMAT = OpenApiParameter("format", str, enum=["json", "csv"], description="csv: one line per customer row.")


def _version(key: str, number: str) -> PlanVersion:
    if not (number.isascii() and number.isdigit()) or len(number) > 9:
        raise NotFound(f"No version '{number}'.")
    return catalog_selectors.plan_version_get(plan=catalog_selectors.plan_get(key=key), number=int(number))


def backtest_csv(result: dict) -> str:
    """The backtest's customer rows as CSV: a header line, one line per row, no totals line (API.md)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in result["customers"]:
        writer.writerow([row[name] for name in CSV_HEADER])
    return out.getvalue()


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, str | bytes) else JSONRenderer().render(data)


class BacktestOutputSerializer(serializers.Serializer):
    """API.md's backtest shape (documentation of the response)."""

    class Row(serializers.Serializer):
        customer = serializers.CharField()
        subscription = serializers.CharField()
        periods = serializers.IntegerField()
        actual = serializers.CharField()
        simulated = serializers.CharField()
        delta = serializers.CharField()

    class Totals(serializers.Serializer):
        actual = serializers.CharField()
        simulated = serializers.CharField()
        delta = serializers.CharField()
        customers = serializers.IntegerField()
        up = serializers.IntegerField()
        down = serializers.IntegerField()
        unchanged = serializers.IntegerField()

    version = serializers.IntegerField()
    # "from" is a Python keyword: the field is declared through the class namespace.
    locals()["from"] = serializers.DateTimeField()
    to = serializers.DateTimeField()
    currency = serializers.CharField()
    customers = Row(many=True)
    totals = Totals()


class PlanVersionBacktestApi(APIView):
    """``POST /plans/{key}/versions/{number}/backtest``: what the plan's subscriptions would have paid in their
    periods billed in ``[from, to)`` under this version (default window: the last calendar month). Saves nothing."""

    renderer_classes = [JSONRenderer, CsvRenderer]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BacktestInput"

        locals()["from"] = serializers.DateTimeField(
            required=False, allow_null=True, default=None, validators=[validate_instant]
        )
        to = serializers.DateTimeField(required=False, allow_null=True, default=None, validators=[validate_instant])

    def handle_exception(self, exc):
        # An error is a JSON body whatever format was asked for.
        response = super().handle_exception(exc)
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return response

    @extend_schema(
        operation_id="plan_versions_backtest",
        parameters=[_NUMBER, _FORMAT],
        request=InputSerializer,
        responses={
            200: BacktestOutputSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
            **error_responses(400, 404),
        },
    )
    def post(self, request, key: str, number: str):
        version = _version(key, number)
        wanted = request.query_params.get("format")
        if wanted not in (None, "json", "csv"):
            raise ValidationFailed("Must be json or csv.", field="format")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = plan_version_backtest(
            version=version, start=data.validated_data["from"], end=data.validated_data["to"], now=timezone.now()
        ).as_dict()
        # ?format=csv (the project's one query-string format switch, API.md), or an Accept: text/csv header.
        if wanted == "csv" or (wanted is None and request.accepted_renderer.format == "csv"):
            response = HttpResponse(backtest_csv(result), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="backtest-{key}-v{version.number}.csv"'
            return response
        return Response(result)


class PlanVersionMigrateApi(APIView):
    """``POST /plans/{key}/versions/{number}/migrate``: pin the active subscriptions pinned to ``from_versions``
    (``[]``: every other version) to this published version from their next period; ``dry_run`` saves nothing."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MigrateInput"

        from_versions = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=999_999_999),
            required=False,
            default=list,
            max_length=1000,
        )
        dry_run = FlagField(required=False, default=False)

    class OutputSerializer(serializers.Serializer):
        count = serializers.IntegerField()
        subscriptions = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        operation_id="plan_versions_migrate",
        parameters=[_NUMBER],
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 404)},
    )
    def post(self, request, key: str, number: str):
        version = _version(key, number)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = plan_version_migrate(
            version=version,
            from_versions=data.validated_data["from_versions"],
            dry_run=data.validated_data["dry_run"],
            now=timezone.now(),
            actor=f"api:{getattr(request.auth, 'name', '')}",
        )
        return Response(result.as_dict())
