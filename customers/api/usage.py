"""Usage and entitlement endpoints of a customer (API.md "Events and usage"): what the customer used of each meter
in a window, and what its subscriptions entitle it to right now (customers.entitlements)."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import error_responses
from core.errors import NotFound, ValidationFailed
from core.instants import instant_check
from core.money import decimal_text
from customers import entitlements
from customers.models import Customer
from metering.ingest import timestamp_parse

# --- Usage and entitlements -----------------------------------------------------------------------------------


def _customer(external_id: str) -> Customer:
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise NotFound(f"No customer '{external_id}'.")
    return customer


def _time_param(request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value is None:  # absent: the default window; present but empty is not a time (400, as the schema says)
        return None
    try:
        parsed = timestamp_parse(value)
    except (ValueError, OverflowError) as exc:
        raise ValidationFailed(str(exc), field=name) from None
    return instant_check(parsed, field=name)


class CustomerUsageApi(APIView):
    """Usage per meter over ``[from, to)``; default: the customer's current billing period."""

    class OutputSerializer(serializers.Serializer):
        meter = serializers.CharField()
        value = serializers.CharField()

        class Meta:
            ref_name = "MeterUsage"

    @extend_schema(
        operation_id="customers_usage",
        parameters=[OpenApiParameter("from", datetime), OpenApiParameter("to", datetime)],
        responses={
            200: inline_serializer(
                name="CustomerUsage",
                fields={
                    "from": serializers.DateTimeField(),
                    "to": serializers.DateTimeField(),
                    "meters": OutputSerializer(many=True),
                },
            ),
            **error_responses(400, 404),
        },
    )
    def get(self, request, external_id: str):
        customer = _customer(external_id)
        start, end = _time_param(request, "from"), _time_param(request, "to")
        if start is None or end is None:
            default_start, default_end = entitlements.usage_default_window(customer=customer, now=timezone.now())
            start, end = start or default_start, end or default_end
        if start >= end:
            raise ValidationFailed("'to' must be after 'from'.", field="to")
        rows = entitlements.customer_usage(customer=customer, start=start, end=end)
        return Response(
            {
                "from": serializers.DateTimeField().to_representation(start),
                "to": serializers.DateTimeField().to_representation(end),
                "meters": [{"meter": m.key, "value": decimal_text(v)} for m, v in rows],
            }
        )


class EntitlementStateSerializer(serializers.Serializer):
    feature = serializers.CharField()
    type = serializers.CharField()
    enabled = serializers.BooleanField()
    value = serializers.CharField(allow_null=True)
    limit = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField()
    remaining = serializers.SerializerMethodField()
    soft = serializers.BooleanField()
    allowed = serializers.BooleanField()
    window_start = serializers.DateTimeField(allow_null=True)
    window_end = serializers.DateTimeField(allow_null=True)

    def get_limit(self, obj) -> str | None:
        return decimal_text(obj.limit)

    def get_usage(self, obj) -> str | None:
        return decimal_text(obj.usage)

    def get_remaining(self, obj) -> str | None:
        return decimal_text(obj.remaining)


class CustomerEntitlementListApi(APIView):
    OutputSerializer = EntitlementStateSerializer

    @extend_schema(
        operation_id="customers_entitlements_list",
        responses={
            200: inline_serializer(name="EntitlementList", fields={"entitlements": OutputSerializer(many=True)}),
            **error_responses(404),
        },
    )
    def get(self, request, external_id: str):
        states = entitlements.entitlement_list(customer=_customer(external_id), now=timezone.now())
        return Response({"entitlements": self.OutputSerializer(states, many=True).data})


class CustomerEntitlementDetailApi(APIView):
    OutputSerializer = EntitlementStateSerializer

    @extend_schema(
        operation_id="customers_entitlements_retrieve", responses={200: OutputSerializer, **error_responses(404)}
    )
    def get(self, request, external_id: str, feature: str):
        state = entitlements.entitlement_check(customer=_customer(external_id), feature_key=feature, now=timezone.now())
        if state is None:
            raise NotFound(f"Customer '{external_id}' is not entitled to '{feature}'.")
        return Response(self.OutputSerializer(state).data)
