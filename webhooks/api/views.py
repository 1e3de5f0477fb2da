"""Webhook endpoint, delivery, alert and trigger endpoints (API.md "Webhooks and alerts"). Thin: they call services."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import error_responses, paginate, paginated_schema
from core.errors import ValidationFailed
from customers.models import Customer
from metering.models import Meter
from webhooks import alerts, selectors, services

from . import serializers as s

PAGE = [OpenApiParameter("limit", int), OpenApiParameter("offset", int)]


class EndpointListCreateApi(APIView):
    InputSerializer = s.EndpointCreateInputSerializer
    OutputSerializer = s.EndpointOutputSerializer

    @extend_schema(
        operation_id="webhook_endpoints_list",
        parameters=PAGE,
        responses=paginated_schema("PaginatedWebhookEndpointList", OutputSerializer),
    )
    def get(self, request):
        return paginate(request, self, selectors.endpoint_list(), self.OutputSerializer)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        request=InputSerializer,
        responses={201: s.EndpointCreatedOutputSerializer, **error_responses(400)},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.endpoint_create(**data.validated_data)
        return Response(s.EndpointCreatedOutputSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    InputSerializer = s.EndpointUpdateInputSerializer
    OutputSerializer = s.EndpointOutputSerializer

    @extend_schema(operation_id="webhook_endpoints_retrieve", responses={200: OutputSerializer, **error_responses(404)})
    def get(self, request, endpoint_id: str):
        return Response(self.OutputSerializer(selectors.endpoint_get(endpoint_id=endpoint_id)).data)

    @extend_schema(
        operation_id="webhook_endpoints_update",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 404)},
    )
    def patch(self, request, endpoint_id: str):
        endpoint = selectors.endpoint_get(endpoint_id=endpoint_id)
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, data=dict(data.validated_data))
        return Response(self.OutputSerializer(endpoint).data)

    @extend_schema(operation_id="webhook_endpoints_destroy", responses={204: None, **error_responses(404)})
    def delete(self, request, endpoint_id: str):
        services.endpoint_delete(endpoint=selectors.endpoint_get(endpoint_id=endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointDeliveryListApi(APIView):
    OutputSerializer = s.DeliveryOutputSerializer

    @extend_schema(
        operation_id="webhook_endpoints_deliveries_list",
        parameters=PAGE,
        responses={200: paginated_schema("PaginatedWebhookDeliveryList", OutputSerializer), **error_responses(404)},
    )
    def get(self, request, endpoint_id: str):
        endpoint = selectors.endpoint_get(endpoint_id=endpoint_id)
        return paginate(request, self, selectors.delivery_list(endpoint=endpoint), self.OutputSerializer)


class AlertListCreateApi(APIView):
    InputSerializer = s.AlertCreateInputSerializer
    OutputSerializer = s.AlertOutputSerializer

    @extend_schema(
        operation_id="alerts_list",
        parameters=[
            OpenApiParameter("customer", str, description="A customer's external id.", pattern=r"^[^\x00]*$"),
            *PAGE,
        ],
        responses={200: paginated_schema("PaginatedAlertList", OutputSerializer), **error_responses(400)},
    )
    def get(self, request):
        external_id = request.query_params.get("customer")
        customer = None
        if external_id is not None:
            customer = Customer.objects.filter(external_id=external_id).first()
            if customer is None:
                raise ValidationFailed(f"Unknown customer '{external_id}'.", field="customer")
        return paginate(request, self, selectors.alert_list(customer=customer), self.OutputSerializer)

    @extend_schema(
        operation_id="alerts_create",
        request=InputSerializer,
        responses={201: OutputSerializer, **error_responses(400)},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        customer = Customer.objects.filter(external_id=v["customer"]).first()
        if customer is None:
            raise ValidationFailed(f"Unknown customer '{v['customer']}'.", field="customer")
        meter = None
        if v["meter"] is not None:
            meter = Meter.objects.filter(key=v["meter"]).first()
            if meter is None:
                raise ValidationFailed(f"Unknown meter '{v['meter']}'.", field="meter")
        alert = alerts.alert_create(
            customer=customer, name=v["name"], kind=v["kind"], meter=meter, thresholds=v["thresholds"]
        )
        return Response(
            self.OutputSerializer(selectors.alert_get(alert_id=alert.pk)).data, status=status.HTTP_201_CREATED
        )


class AlertDetailApi(APIView):
    OutputSerializer = s.AlertOutputSerializer

    @extend_schema(operation_id="alerts_retrieve", responses={200: OutputSerializer, **error_responses(404)})
    def get(self, request, alert_id: str):
        return Response(self.OutputSerializer(selectors.alert_get(alert_id=alert_id)).data)


class AlertTriggerListApi(APIView):
    OutputSerializer = s.TriggerOutputSerializer

    @extend_schema(
        operation_id="alerts_triggers_list",
        parameters=PAGE,
        responses={200: paginated_schema("PaginatedAlertTriggerList", OutputSerializer), **error_responses(404)},
    )
    def get(self, request, alert_id: str):
        alert = selectors.alert_get(alert_id=alert_id)
        return paginate(request, self, selectors.trigger_list(alert=alert), self.OutputSerializer)
