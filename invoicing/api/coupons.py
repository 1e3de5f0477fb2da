"""Coupons, customers' coupons and one-off invoices (shared/API.md "Coupons and one-off invoices"). Thin: services."""

from __future__ import annotations

from decimal import Decimal

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import error_responses, paginate, paginated_schema
from core.errors import NotFound, ValidationFailed
from core.fields import CurrencyField, ExactDecimalField, FlagField, KeyField, TextField, WholeNumberField
from core.instants import validate_instant
from customers.models import Customer

from .. import selectors
from ..models import Addon, AppliedCoupon, Coupon
from ..services.coupons import coupon_create, customer_coupon_apply
from ..services.one_off import OneOffLine, addon_create, one_off_invoice_create
from .serializers import InvoiceOutputSerializer, MoneyString

_ERRORS = error_responses(400, 404, 409)
_PAGE = [OpenApiParameter("limit", int), OpenApiParameter("offset", int)]


class CouponOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    amount = MoneyString(allow_null=True)
    currency = serializers.SerializerMethodField()
    percentage = serializers.SerializerMethodField()
    duration = serializers.CharField()
    periods = serializers.IntegerField(allow_null=True)
    plans = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_currency(self, coupon) -> str | None:
        return coupon.currency or None

    def get_percentage(self, coupon) -> str | None:
        return None if coupon.percentage is None else f"{coupon.percentage.normalize():f}"

    def get_plans(self, coupon) -> list[str]:
        return [plan.key for plan in coupon.plans.all()]


class AppliedCouponOutputSerializer(serializers.Serializer):
    id = serializers.SerializerMethodField()
    coupon = serializers.SerializerMethodField()
    customer = serializers.SerializerMethodField()
    remaining_amount = serializers.SerializerMethodField(
        help_text="Fixed coupons: what it may still take (a once coupon's balance; amount x invoices left when "
        "repeating); null for a percentage or a forever coupon."
    )
    remaining_periods = serializers.IntegerField(allow_null=True)
    currency = serializers.SerializerMethodField()
    status = serializers.CharField()
    applied_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)

    def get_id(self, applied) -> str:
        return str(applied.pk)

    def get_coupon(self, applied) -> str:
        return applied.coupon.code

    def get_customer(self, applied) -> str:
        return applied.customer.external_id

    def get_currency(self, applied) -> str | None:
        return applied.coupon.currency or None

    def get_remaining_amount(self, applied) -> str | None:
        value = selectors.applied_coupon_remaining_amount(applied)
        return None if value is None else MoneyString().to_representation(value)


class CouponsApi(APIView):
    """``POST /coupons`` creates a coupon; ``GET /coupons`` lists them."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CouponCreateInput"

        code = KeyField(max_length=100)
        name = TextField(max_length=200, required=False, allow_blank=True, default="")
        kind = serializers.ChoiceField(choices=Coupon.Kind.values)
        amount = ExactDecimalField(max_digits=19, decimal_places=4, positive=True, required=False, allow_null=True)
        currency = CurrencyField(required=False, allow_null=True, help_text="Fixed coupons: ISO 4217.")
        percentage = ExactDecimalField(
            max_digits=7, decimal_places=4, positive=True, at_most=100, required=False, allow_null=True
        )
        duration = serializers.ChoiceField(choices=Coupon.Duration.values, default=Coupon.Duration.ONCE)
        periods = WholeNumberField(min_value=1, required=False, allow_null=True)
        plans = serializers.ListField(child=KeyField(max_length=100), required=False, default=list, max_length=1000)
        expires_at = serializers.DateTimeField(required=False, allow_null=True, validators=[validate_instant])

    @extend_schema(
        operation_id="coupons_list",
        parameters=_PAGE,
        responses=paginated_schema("PaginatedCouponList", CouponOutputSerializer),
    )
    def get(self, request):
        return paginate(request, self, selectors.coupon_list(), CouponOutputSerializer)

    @extend_schema(
        operation_id="coupons_create", request=InputSerializer, responses={201: CouponOutputSerializer, **_ERRORS}
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        coupon = coupon_create(
            code=v["code"],
            name=v["name"],
            kind=v["kind"],
            amount=v.get("amount"),
            currency=v.get("currency") or "",
            percentage=v.get("percentage"),
            duration=v["duration"],
            periods=v.get("periods"),
            plans=v["plans"],
            expires_at=v.get("expires_at"),
        )
        return Response(CouponOutputSerializer(selectors.coupon_get(code=coupon.code)).data, status=201)


class CouponDetailApi(APIView):
    @extend_schema(operation_id="coupons_retrieve", responses={200: CouponOutputSerializer, **error_responses(404)})
    def get(self, request, code: str):
        try:
            return Response(CouponOutputSerializer(selectors.coupon_get(code=code)).data)
        except Coupon.DoesNotExist:
            raise NotFound("No such coupon.") from None


class CustomerCouponsApi(APIView):
    """``POST /customers/{external_id}/coupons`` applies a coupon; ``GET`` lists the customer's applied coupons."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CustomerCouponApplyInput"

        coupon = TextField(max_length=100, help_text="The coupon's code.")

    @extend_schema(
        operation_id="customer_coupons_list",
        parameters=_PAGE,
        responses={
            200: paginated_schema("PaginatedAppliedCouponList", AppliedCouponOutputSerializer),
            **error_responses(404),
        },
    )
    def get(self, request, external_id: str):
        customer = get_object_or_404(Customer, external_id=external_id)
        return paginate(request, self, selectors.applied_coupon_list(customer=customer), AppliedCouponOutputSerializer)

    @extend_schema(
        operation_id="customer_coupons_apply",
        request=InputSerializer,
        responses={201: AppliedCouponOutputSerializer, **_ERRORS},
    )
    def post(self, request, external_id: str):
        customer = get_object_or_404(Customer, external_id=external_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        coupon = Coupon.objects.filter(code=data.validated_data["coupon"]).first()
        if coupon is None:
            raise ValidationFailed("No such coupon.", field="coupon")
        applied = customer_coupon_apply(customer=customer, coupon=coupon, now=timezone.now())
        applied = AppliedCoupon.objects.select_related("coupon", "customer").get(pk=applied.pk)
        return Response(AppliedCouponOutputSerializer(applied).data, status=201)


class OneOffLineInputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "OneOffInvoiceLineInput"

    description = TextField(max_length=500, required=False, allow_blank=True, default="")
    amount = ExactDecimalField(
        max_digits=19,
        decimal_places=4,
        required=False,
        allow_null=True,
        help_text="Price of one unit (>= 0); the line is amount x quantity, rounded half-up. Default: the add-on's.",
    )
    quantity = ExactDecimalField(
        max_digits=28, decimal_places=12, positive=True, required=False, help_text='Greater than 0; default "1".'
    )
    addon = KeyField(max_length=100, required=False, allow_null=True, help_text="An add-on's key (optional).")


class OneOffInvoiceInputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "OneOffInvoiceCreateInput"

    customer = TextField(max_length=255, help_text="The customer's external id.")
    currency = CurrencyField(required=False, allow_null=True, help_text="Default and only choice: the customer's.")
    lines = OneOffLineInputSerializer(many=True, max_length=500, help_text="At least one line.")
    finalize = FlagField(required=False, default=True)


def one_off_invoice_post(request) -> Response:
    """``POST /invoices``: a one-off invoice (201); the customer is named in the body (unknown: 400 ``customer``)."""
    data = OneOffInvoiceInputSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    v = data.validated_data
    customer = Customer.objects.filter(external_id=v["customer"]).first()
    if customer is None:
        raise ValidationFailed("No such customer.", field="customer")
    lines = [
        OneOffLine(
            description=line.get("description") or "",
            amount=line.get("amount"),
            quantity=line.get("quantity") or Decimal(1),
            addon=line.get("addon"),
        )
        for line in v["lines"]
    ]
    invoice = one_off_invoice_create(
        customer=customer, lines=lines, currency=v.get("currency") or "", finalize=v["finalize"], now=timezone.now()
    )
    return Response(InvoiceOutputSerializer(selectors.invoice_get(invoice_id=invoice.pk)).data, status=201)


class AddonOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    amount = MoneyString()
    currency = serializers.CharField()
    created_at = serializers.DateTimeField()


class AddonsApi(APIView):
    """``POST /addons`` adds to the add-ons catalog (what one-off lines may name); ``GET /addons`` lists it."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AddonCreateInput"

        key = KeyField(max_length=100)
        name = TextField(max_length=200, required=False, allow_blank=True, default="")
        amount = ExactDecimalField(max_digits=19, decimal_places=4, help_text="Default amount of a line (>= 0).")
        currency = CurrencyField()

    @extend_schema(
        operation_id="addons_list",
        parameters=_PAGE,
        responses=paginated_schema("PaginatedAddonList", AddonOutputSerializer),
    )
    def get(self, request):
        return paginate(request, self, Addon.objects.order_by("key"), AddonOutputSerializer)

    @extend_schema(
        operation_id="addons_create", request=InputSerializer, responses={201: AddonOutputSerializer, **_ERRORS}
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        addon = addon_create(**data.validated_data)
        return Response(AddonOutputSerializer(addon).data, status=201)


class AddonDetailApi(APIView):
    @extend_schema(operation_id="addons_retrieve", responses={200: AddonOutputSerializer, **error_responses(404)})
    def get(self, request, key: str):
        addon = Addon.objects.filter(key=key).first()
        if addon is None:
            raise NotFound("No such add-on.")
        return Response(AddonOutputSerializer(addon).data)
