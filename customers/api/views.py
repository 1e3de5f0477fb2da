"""Customer, tax-rate and subscription endpoints (API.md "Customers and subscriptions"). Thin: they call services."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.models import Plan, PlanVersion
from core.api import error_responses, paginate, paginated_schema
from core.errors import ValidationFailed
from customers import selectors, services
from customers.models import Customer

from . import serializers as s


def request_now() -> datetime:
    """The instant a request acts at (services take ``now``; views read the clock here, once)."""
    return timezone.now()


def _customer_field(external_id: str) -> Customer:
    customer = selectors.customer_list().filter(external_id=external_id).first()
    if customer is None:
        raise ValidationFailed(f"Unknown customer '{external_id}'.", field="customer")
    return customer


class CustomerListCreateApi(APIView):
    InputSerializer = s.CustomerCreateInputSerializer
    OutputSerializer = s.CustomerOutputSerializer

    @extend_schema(
        operation_id="customers_list",
        responses=paginated_schema("PaginatedCustomerList", OutputSerializer),
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
    )
    def get(self, request):
        return paginate(request, self, selectors.customer_list(), self.OutputSerializer)

    @extend_schema(
        operation_id="customers_create",
        request=InputSerializer,
        responses={201: OutputSerializer, **error_responses(400)},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        customer = services.customer_create(**data.validated_data)
        customer = selectors.customer_get(external_id=customer.external_id)
        return Response(self.OutputSerializer(customer).data, status=status.HTTP_201_CREATED)


class CustomerDetailApi(APIView):
    InputSerializer = s.CustomerUpdateInputSerializer
    OutputSerializer = s.CustomerOutputSerializer

    @extend_schema(operation_id="customers_retrieve", responses={200: OutputSerializer, **error_responses(404)})
    def get(self, request, external_id: str):
        return Response(self.OutputSerializer(selectors.customer_get(external_id=external_id)).data)

    @extend_schema(
        operation_id="customers_update",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 404, 409)},
    )
    def patch(self, request, external_id: str):
        customer = selectors.customer_get(external_id=external_id)
        # A body that is not a JSON object (null, a list) is left to the serializer, which answers 400.
        if isinstance(request.data, dict) and request.data.get("external_id", external_id) != external_id:
            raise ValidationFailed("The external id addresses the customer and cannot change.", field="external_id")
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.customer_update(customer=customer, data=dict(data.validated_data))
        return Response(self.OutputSerializer(selectors.customer_get(external_id=external_id)).data)


class TaxRateListCreateApi(APIView):
    InputSerializer = s.TaxRateInputSerializer
    OutputSerializer = s.TaxRateOutputSerializer

    @extend_schema(
        operation_id="tax_rates_list",
        responses=paginated_schema("PaginatedTaxRateList", OutputSerializer),
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
    )
    def get(self, request):
        return paginate(request, self, selectors.tax_rate_list(), self.OutputSerializer)

    @extend_schema(
        operation_id="tax_rates_create",
        request=InputSerializer,
        responses={201: OutputSerializer, **error_responses(400)},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rate = services.tax_rate_create(**data.validated_data)
        return Response(self.OutputSerializer(rate).data, status=status.HTTP_201_CREATED)


class SubscriptionListCreateApi(APIView):
    InputSerializer = s.SubscriptionCreateInputSerializer
    OutputSerializer = s.SubscriptionOutputSerializer

    @extend_schema(
        operation_id="subscriptions_list",
        parameters=[
            OpenApiParameter("customer", str, description="A customer's external id.", pattern=r"^[^\x00]*$"),
            OpenApiParameter("limit", int),
            OpenApiParameter("offset", int),
        ],
        responses={200: paginated_schema("PaginatedSubscriptionList", OutputSerializer), **error_responses(400)},
    )
    def get(self, request):
        external_id = request.query_params.get("customer")
        customer = _customer_field(external_id) if external_id is not None else None
        return paginate(request, self, selectors.subscription_list(customer=customer), self.OutputSerializer)

    @extend_schema(
        operation_id="subscriptions_create",
        request=InputSerializer,
        responses={201: OutputSerializer, **error_responses(400, 404, 409)},
    )
    def post(self, request):
        from invoicing.services import subscription_start

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        now = request_now()
        customer = _customer_field(v["customer"])
        plan = Plan.objects.filter(key=v["plan"]).first()
        if plan is None:
            raise ValidationFailed(f"Unknown plan '{v['plan']}'.", field="plan")
        pinned = None
        if v["pinned_version"] is not None:
            pinned = PlanVersion.objects.filter(plan=plan, number=v["pinned_version"]).first()
            if pinned is None:
                raise ValidationFailed(
                    f"Plan '{plan.key}' has no version {v['pinned_version']}.", field="pinned_version"
                )
        subscription = subscription_start(
            customer=customer,
            plan=plan,
            start_at=v["start_at"] or now,
            billing=v["billing"],
            pinned_version=pinned,
            now=now,
            price_overrides=v["price_overrides"],
            trial_days=v["trial_days"],
        )
        subscription = selectors.subscription_get(subscription_id=subscription.pk)
        return Response(self.OutputSerializer(subscription).data, status=status.HTTP_201_CREATED)


class SubscriptionDetailApi(APIView):
    InputSerializer = s.SubscriptionUpdateInputSerializer
    OutputSerializer = s.SubscriptionOutputSerializer

    @extend_schema(operation_id="subscriptions_retrieve", responses={200: OutputSerializer, **error_responses(404)})
    def get(self, request, subscription_id: str):
        return Response(self.OutputSerializer(selectors.subscription_get(subscription_id=subscription_id)).data)

    @extend_schema(
        operation_id="subscriptions_update",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 404, 409)},
    )
    def patch(self, request, subscription_id: str):
        from invoicing.services import subscription_price_overrides_update

        subscription = selectors.subscription_get(subscription_id=subscription_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if "price_overrides" in data.validated_data:
            subscription_price_overrides_update(
                subscription=subscription, price_overrides=data.validated_data["price_overrides"]
            )
        return Response(self.OutputSerializer(selectors.subscription_get(subscription_id=subscription_id)).data)


class SubscriptionCancelApi(APIView):
    InputSerializer = s.SubscriptionCancelInputSerializer
    OutputSerializer = s.SubscriptionOutputSerializer

    @extend_schema(
        operation_id="subscriptions_cancel",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 404, 409)},
    )
    def post(self, request, subscription_id: str):
        from invoicing.services import subscription_cancel

        subscription = selectors.subscription_get(subscription_id=subscription_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        subscription_cancel(subscription=subscription, at=data.validated_data["at"], now=request_now())
        return Response(self.OutputSerializer(selectors.subscription_get(subscription_id=subscription_id)).data)
