"""Catalog endpoints (API.md "Catalog"): thin views that parse, call one service or selector, render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import selectors, services
from catalog.models import Feature, Plan
from core.api import error_responses, paginate, paginated_schema
from core.errors import NotFound
from core.fields import CurrencyField, FlagField, KeyField, TextField, WholeNumberField

from .serializers import (
    FeatureOutputSerializer,
    PlanOutputSerializer,
    VersionInputDocSerializer,
    VersionSerializer,
)

_ERRORS = error_responses(400)
# The path takes any segment so that a non-number is a JSON 404 like any unknown version, not Django's HTML page.
_NUMBER = OpenApiParameter("number", int, OpenApiParameter.PATH, description="The version number (1, 2, ...).")
_PAGE = [OpenApiParameter("limit", int), OpenApiParameter("offset", int)]


def _number(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise NotFound(f"No version '{value}'.")
    return int(value)


class FeaturesApi(APIView):
    """``POST /features`` creates a feature; ``GET /features`` lists them."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "FeatureCreateInput"

        key = KeyField(max_length=100)
        name = TextField(max_length=200)
        type = serializers.ChoiceField(choices=Feature.Type.values)
        meter = TextField(required=False, allow_null=True, allow_blank=True, max_length=100, help_text="Metered only.")
        unit_name = TextField(required=False, allow_blank=True, default="", max_length=50)
        description = TextField(required=False, allow_blank=True, default="")

    OutputSerializer = FeatureOutputSerializer

    @extend_schema(
        operation_id="features_list",
        parameters=_PAGE,
        responses=paginated_schema("PaginatedFeatureList", FeatureOutputSerializer),
    )
    def get(self, request):
        return paginate(request, self, selectors.feature_list(), self.OutputSerializer)

    @extend_schema(
        operation_id="features_create", request=InputSerializer, responses={201: FeatureOutputSerializer, **_ERRORS}
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        feature = services.feature_create(**data.validated_data)
        return Response(self.OutputSerializer(feature).data, status=status.HTTP_201_CREATED)


class FeatureDetailApi(APIView):
    @extend_schema(operation_id="features_retrieve", responses={200: FeatureOutputSerializer, **error_responses(404)})
    def get(self, request, key: str):
        return Response(FeatureOutputSerializer(selectors.feature_get(key=key)).data)


class PlansApi(APIView):
    """``POST /plans`` creates a plan (no versions yet); ``GET /plans`` lists them with their versions."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PlanCreateInput"

        key = KeyField(max_length=100)
        name = TextField(max_length=200)
        description = TextField(required=False, allow_blank=True, default="")
        currency = CurrencyField(help_text="ISO 4217, one of the configured currencies.")
        interval = serializers.ChoiceField(choices=Plan.Interval.values, required=False, default=Plan.Interval.MONTH)

    OutputSerializer = PlanOutputSerializer

    @extend_schema(
        operation_id="plans_list",
        parameters=_PAGE,
        responses=paginated_schema("PaginatedPlanList", PlanOutputSerializer),
    )
    def get(self, request):
        return paginate(request, self, selectors.plan_list(), self.OutputSerializer)

    @extend_schema(
        operation_id="plans_create", request=InputSerializer, responses={201: PlanOutputSerializer, **_ERRORS}
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        plan = services.plan_create(**data.validated_data)
        return Response(self.OutputSerializer(selectors.plan_get(key=plan.key)).data, status=status.HTTP_201_CREATED)


class PlanDetailApi(APIView):
    @extend_schema(operation_id="plans_retrieve", responses={200: PlanOutputSerializer, **error_responses(404)})
    def get(self, request, key: str):
        return Response(PlanOutputSerializer(selectors.plan_get(key=key)).data)


class PlanVersionsApi(APIView):
    """``POST /plans/{key}/versions`` creates the plan's next version; ``GET`` lists its versions in full."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PlanVersionCreateInput"

        # Lists are checked item by item by the service, which names each bad field by its path.
        prices = serializers.ListField(child=serializers.DictField(), required=False, default=list)
        entitlements = serializers.ListField(child=serializers.DictField(), required=False, default=list)
        credit_grants = serializers.ListField(child=serializers.DictField(), required=False, default=list)
        # Checked by the service (catalog.commitments), which names the field in its 400.
        minimum_commitment = serializers.JSONField(required=False, allow_null=True, default=None)
        progressive_thresholds = serializers.JSONField(required=False, allow_null=True, default=list)
        publish = FlagField(required=False, default=False)
        effective_from = serializers.DateTimeField(required=False, allow_null=True, default=None)
        trial_days = WholeNumberField(required=False, default=0, max_value=365)

    OutputSerializer = VersionSerializer

    @extend_schema(
        operation_id="plan_versions_list", responses={200: VersionSerializer(many=True), **error_responses(404)}
    )
    def get(self, request, key: str):
        versions = selectors.plan_version_list(plan=selectors.plan_get(key=key))
        return Response([VersionSerializer.shape(v) for v in versions])

    @extend_schema(
        operation_id="plan_versions_create",
        request=VersionInputDocSerializer,
        responses={201: VersionSerializer, **error_responses(400, 404)},
    )
    def post(self, request, key: str):
        plan = selectors.plan_get(key=key)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.plan_version_create(plan=plan, **data.validated_data)
        version = selectors.plan_version_get(plan=plan, number=version.number)
        return Response(VersionSerializer.shape(version), status=status.HTTP_201_CREATED)


class PlanVersionDetailApi(APIView):
    """``GET`` one version; ``PATCH`` edits a draft (each list given replaces that list; published: 409)."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PlanVersionUpdateInput"

        prices = serializers.ListField(child=serializers.DictField(), required=False)
        entitlements = serializers.ListField(child=serializers.DictField(), required=False)
        credit_grants = serializers.ListField(child=serializers.DictField(), required=False)
        effective_from = serializers.DateTimeField(required=False, allow_null=True)
        minimum_commitment = serializers.JSONField(required=False, allow_null=True)
        progressive_thresholds = serializers.JSONField(required=False, allow_null=True)
        # Absent: unchanged. A JSON integer 0-365 (the field's own 400 names ``trial_days`` otherwise).
        trial_days = WholeNumberField(required=False, max_value=365)

    @extend_schema(
        operation_id="plan_versions_retrieve",
        parameters=[_NUMBER],
        responses={200: VersionSerializer, **error_responses(404)},
    )
    def get(self, request, key: str, number: str):
        number = _number(number)
        version = selectors.plan_version_get(plan=selectors.plan_get(key=key), number=number)
        return Response(VersionSerializer.shape(version))

    @extend_schema(
        operation_id="plan_versions_update",
        parameters=[_NUMBER],
        request=VersionInputDocSerializer,
        responses={200: VersionSerializer, **error_responses(400, 404, 409)},
    )
    def patch(self, request, key: str, number: str):
        number = _number(number)
        plan = selectors.plan_get(key=key)
        version = selectors.plan_version_get(plan=plan, number=number)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.plan_version_update(version=version, **data.validated_data)
        return Response(VersionSerializer.shape(selectors.plan_version_get(plan=plan, number=number)))


class PlanVersionPublishApi(APIView):
    """``POST /plans/{key}/versions/{number}/publish``: draft -> published; a published version is a 409, a draft
    with an incomplete or invalid price, entitlement or credit grant a 400 naming it."""

    @extend_schema(
        operation_id="plan_versions_publish",
        parameters=[_NUMBER],
        request=None,
        responses={200: VersionSerializer, **error_responses(400, 404, 409)},
    )
    def post(self, request, key: str, number: str):
        number = _number(number)
        plan = selectors.plan_get(key=key)
        version = selectors.plan_version_get(plan=plan, number=number)
        services.plan_version_publish(version=version)
        return Response(VersionSerializer.shape(selectors.plan_version_get(plan=plan, number=number)))
