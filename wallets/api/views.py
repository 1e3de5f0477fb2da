"""Wallet endpoints (API.md "Wallets"): thin views calling wallets services and selectors."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import Pagination, error_responses, paginated_schema
from core.errors import NotFound, ValidationFailed
from core.fields import CreditsField, CurrencyField, TextField, WholeNumberField
from core.instants import validate_instant
from customers.models import Customer
from invoicing.selectors import customer_pending_payable
from wallets.models import CreditGrant, LedgerEntry, Wallet
from wallets.selectors import (
    customer_wallet_list,
    wallet_grant_list,
    wallet_ledger_list,
    wallet_real_time_balance,
)
from wallets.services import MANUAL_KINDS, wallet_create, wallet_get, wallet_grant_create


def _str_decimal(value):
    if value is None:
        return None
    normalized = Decimal(str(value)).normalize()
    return f"{normalized:f}"


class WalletOutput(serializers.ModelSerializer):
    id = serializers.CharField()
    customer = serializers.CharField(source="customer.external_id")
    conversion_rate = CreditsField(read_only=True)
    low_balance_threshold = CreditsField(read_only=True, allow_null=True)
    auto_top_up_credits = CreditsField(read_only=True, allow_null=True)
    balance = CreditsField(read_only=True)

    class Meta:
        model = Wallet
        fields = [
            "id",
            "customer",
            "name",
            "currency",
            "conversion_rate",
            "applies_to",
            "low_balance_threshold",
            "auto_top_up_credits",
            "status",
            "balance",
            "created_at",
        ]


class WalletDetailOutput(WalletOutput):
    real_time_balance = serializers.SerializerMethodField()

    class Meta(WalletOutput.Meta):
        fields = [*WalletOutput.Meta.fields, "real_time_balance"]

    def get_real_time_balance(self, obj) -> str:
        pending = customer_pending_payable(customer=obj.customer, currency=obj.currency, now=timezone.now())
        return _str_decimal(wallet_real_time_balance(wallet=obj, pending=pending))


class WalletCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        customer = TextField()
        name = TextField(required=False, default="Credits", max_length=200)
        currency = CurrencyField()
        conversion_rate = CreditsField(required=False, default=Decimal(1))
        applies_to = serializers.ChoiceField(choices=Wallet.AppliesTo.values, required=False, default="all")
        low_balance_threshold = CreditsField(positive=False, required=False, allow_null=True, default=None)
        auto_top_up_credits = CreditsField(required=False, allow_null=True, default=None)

    @extend_schema(
        request=InputSerializer, responses={201: WalletDetailOutput, **error_responses(400)}, summary="Create a wallet"
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        customer = Customer.objects.filter(external_id=values.pop("customer")).first()
        if customer is None:
            raise ValidationFailed("Unknown customer.", field="customer")
        wallet = wallet_create(customer=customer, **values)
        return Response(WalletDetailOutput(wallet).data, status=status.HTTP_201_CREATED)


class WalletDetailApi(APIView):
    @extend_schema(
        responses={200: WalletDetailOutput, **error_responses(404)},
        summary="A wallet with its balance and real-time balance",
    )
    def get(self, request, wallet_id: str):
        return Response(WalletDetailOutput(wallet_get(wallet_id=wallet_id)).data)


class CustomerWalletListApi(APIView):
    @extend_schema(
        responses={200: paginated_schema("PaginatedWalletList", WalletOutput), **error_responses(404)},
        summary="A customer's wallets (paginated)",
    )
    def get(self, request, external_id: str):
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            raise NotFound("Unknown customer.")
        paginator = Pagination()
        page = paginator.paginate_queryset(customer_wallet_list(customer=customer), request, view=self)
        return paginator.get_paginated_response(WalletOutput(page, many=True).data)


class GrantOutput(serializers.ModelSerializer):
    id = serializers.CharField()
    credits = CreditsField(read_only=True)
    remaining = CreditsField(read_only=True)

    class Meta:
        model = CreditGrant
        fields = ["id", "kind", "name", "credits", "remaining", "priority", "effective_at", "expires_at", "status"]


class WalletGrantCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        credits = CreditsField()
        kind = serializers.ChoiceField(choices=[str(k) for k in MANUAL_KINDS])
        priority = WholeNumberField(required=False, default=10, max_value=1_000_000)
        name = TextField(required=False, default="", allow_blank=True, max_length=200)
        effective_at = serializers.DateTimeField(
            required=False, allow_null=True, default=None, validators=[validate_instant]
        )
        expires_at = serializers.DateTimeField(
            required=False, allow_null=True, default=None, validators=[validate_instant]
        )
        idempotency_key = TextField(required=False, allow_null=True, default=None, max_length=255)

    @extend_schema(
        request=InputSerializer,
        responses={201: GrantOutput, 200: GrantOutput, **error_responses(400, 404, 409)},
        summary="Grant credits",
    )
    def post(self, request, wallet_id: str):
        wallet = wallet_get(wallet_id=wallet_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        grant, created = wallet_grant_create(wallet=wallet, now=timezone.now(), **data.validated_data)
        return Response(GrantOutput(grant).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class WalletGrantListApi(APIView):
    @extend_schema(
        responses={200: paginated_schema("PaginatedGrantList", GrantOutput), **error_responses(404)},
        summary="A wallet's grants (lower priority number spent first)",
    )
    def get(self, request, wallet_id: str):
        wallet = wallet_get(wallet_id=wallet_id)
        paginator = Pagination()
        page = paginator.paginate_queryset(wallet_grant_list(wallet=wallet), request, view=self)
        return paginator.get_paginated_response(GrantOutput(page, many=True).data)


class LedgerOutput(serializers.ModelSerializer):
    id = serializers.CharField()
    grant = serializers.SerializerMethodField()
    credits = CreditsField(read_only=True)
    balance_after = CreditsField(read_only=True)

    class Meta:
        model = LedgerEntry
        fields = ["id", "type", "credits", "balance_after", "grant", "reference", "description", "created_at"]

    def get_grant(self, obj) -> str | None:
        return str(obj.grant_id) if obj.grant_id else None


class WalletTransactionListApi(APIView):
    @extend_schema(
        responses={200: paginated_schema("PaginatedLedgerList", LedgerOutput), **error_responses(404)},
        summary="A wallet's ledger (append-only)",
    )
    def get(self, request, wallet_id: str):
        wallet = wallet_get(wallet_id=wallet_id)
        paginator = Pagination()
        page = paginator.paginate_queryset(wallet_ledger_list(wallet=wallet), request, view=self)
        return paginator.get_paginated_response(LedgerOutput(page, many=True).data)


class WalletGrantCreateListApi(WalletGrantCreateApi, WalletGrantListApi):
    """``/wallets/{id}/grants``: POST grants credits, GET lists the grants (one path, two operations)."""
