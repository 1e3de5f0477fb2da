"""Shapes of API.md's customer, tax-rate and subscription objects. Decimals travel as strings."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import CurrencyField, ExactDecimalField, KeyField, TextField, WholeNumberField
from core.instants import validate_instant
from customers.models import Subscription
from customers.services import DAYS_MAX

#: A billing address's country: two ASCII letters (ISO 3166), or blank.
COUNTRY_PATTERN = r"^([A-Za-z]{2})?$"
COUNTRY_MESSAGE = "Must be a two-letter ISO 3166 country code, e.g. GB."


@extend_schema_field({"type": "string", "example": "20"})
class PlainDecimalField(serializers.DecimalField):
    """A decimal rendered as its shortest exact string (``20.0000`` -> ``"20"``, ``7.5000`` -> ``"7.5"``)."""

    def to_representation(self, value):
        if value is None:
            return None
        value = Decimal(value).normalize()
        return format(value.quantize(Decimal(1)) if value == value.to_integral() else value, "f")


class TaxRateInputSerializer(serializers.Serializer):
    code = KeyField(max_length=50)
    name = TextField(max_length=200)
    percentage = ExactDecimalField(max_digits=7, decimal_places=4, at_most=100)


class TaxRateOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    percentage = PlainDecimalField(max_digits=7, decimal_places=4)


class CustomerCreateInputSerializer(serializers.Serializer):
    external_id = TextField(max_length=255)
    name = TextField(max_length=255)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    currency = CurrencyField()
    tax_rates = serializers.ListField(child=TextField(max_length=50), required=False, default=list)
    net_payment_terms = WholeNumberField(max_value=DAYS_MAX, required=False, default=0)
    invoice_grace_days = WholeNumberField(max_value=DAYS_MAX, required=False, default=0)
    timezone = TextField(
        max_length=64, required=False, default="UTC", help_text="An IANA zone name, e.g. America/Los_Angeles."
    )
    # The billing address printed on invoices: optional, added to API.md's shape.
    address_line1 = TextField(max_length=200, required=False, allow_blank=True, default="")
    address_line2 = TextField(max_length=200, required=False, allow_blank=True, default="")
    address_city = TextField(max_length=100, required=False, allow_blank=True, default="")
    address_postal_code = TextField(max_length=20, required=False, allow_blank=True, default="")
    address_country = serializers.RegexField(
        COUNTRY_PATTERN,
        max_length=2,
        required=False,
        allow_blank=True,
        default="",
        help_text="Two-letter ISO 3166 code, e.g. GB.",
        error_messages={"invalid": COUNTRY_MESSAGE},
    )

    def validate_address_country(self, value: str) -> str:
        return value.upper()

    def validate_currency(self, value: str) -> str:
        value = value.upper()
        if value not in settings.CURRENCIES:
            raise serializers.ValidationError(
                f"'{value}' is not an accepted currency ({', '.join(settings.CURRENCIES)})."
            )
        return value


class CustomerUpdateInputSerializer(CustomerCreateInputSerializer):
    """PATCH: every field optional, no defaults; ``external_id`` is the address and cannot change."""

    external_id = None
    name = TextField(max_length=255, required=False)
    email = serializers.EmailField(required=False, allow_blank=True)
    currency = CurrencyField(required=False)
    tax_rates = serializers.ListField(child=TextField(max_length=50), required=False)
    net_payment_terms = WholeNumberField(max_value=DAYS_MAX, required=False)
    invoice_grace_days = WholeNumberField(max_value=DAYS_MAX, required=False)
    timezone = TextField(max_length=64, required=False, help_text="An IANA zone name; applies from the next period.")
    address_line1 = TextField(max_length=200, required=False, allow_blank=True)
    address_line2 = TextField(max_length=200, required=False, allow_blank=True)
    address_city = TextField(max_length=100, required=False, allow_blank=True)
    address_postal_code = TextField(max_length=20, required=False, allow_blank=True)
    address_country = serializers.RegexField(
        COUNTRY_PATTERN,
        max_length=2,
        required=False,
        allow_blank=True,
        help_text="Two-letter ISO 3166 code, e.g. GB.",
        error_messages={"invalid": COUNTRY_MESSAGE},
    )

    def validate_address_country(self, value: str) -> str:
        return value.upper()


class CustomerOutputSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField()
    email = serializers.CharField()
    currency = serializers.CharField()
    tax_rates = serializers.SerializerMethodField()
    net_payment_terms = serializers.IntegerField()
    invoice_grace_days = serializers.IntegerField()
    timezone = serializers.CharField()
    address_line1 = serializers.CharField()
    address_line2 = serializers.CharField()
    address_city = serializers.CharField()
    address_postal_code = serializers.CharField()
    address_country = serializers.CharField()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tax_rates(self, obj) -> list[str]:
        return sorted(rate.code for rate in obj.tax_rates.all())


class SubscriptionCreateInputSerializer(serializers.Serializer):
    customer = TextField(max_length=255, help_text="The customer's external id.")
    plan = TextField(max_length=100, help_text="The plan's key.")
    start_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        validators=[validate_instant],
        help_text="Default now; may be in the past (not before the plan's first published version takes effect, "
        "unless pinned); between 2000-01-01 and 2100-01-01 UTC.",
    )
    billing = serializers.ChoiceField(choices=Subscription.Billing.values, default=Subscription.Billing.CALENDAR)
    pinned_version = WholeNumberField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        help_text="A version number of the plan (grandfathered), or null.",
    )
    price_overrides = serializers.JSONField(
        required=False,
        allow_null=True,
        default=None,
        help_text='Negotiated prices: [{"price": a price name of the plan, and any of "amount", "unit_amount", '
        '"package_size", "package_amount", "tiers"}].',
    )
    trial_days = WholeNumberField(
        required=False,
        allow_null=True,
        default=None,
        max_value=DAYS_MAX,
        help_text="Free trial in days (default: the plan version's trial_days; 0 = no trial).",
    )


class SubscriptionUpdateInputSerializer(serializers.Serializer):
    """PATCH: only the fields sent change (``{}`` changes nothing)."""

    price_overrides = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="Replaces the negotiated prices from the next period ([] or null: none).",
    )


class SubscriptionCancelInputSerializer(serializers.Serializer):
    at = serializers.ChoiceField(choices=["period_end", "now"])


class SubscriptionOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    customer = serializers.CharField(source="customer.external_id")
    plan = serializers.CharField(source="plan.key")
    plan_version = serializers.IntegerField(source="plan_version.number")
    pinned_version = serializers.IntegerField(source="pinned_version.number", allow_null=True, default=None)
    status = serializers.ChoiceField(choices=Subscription.Status.values)
    cancel_at_period_end = serializers.BooleanField()
    billing = serializers.ChoiceField(choices=Subscription.Billing.values)
    start_at = serializers.DateTimeField()
    canceled_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    current_period_start = serializers.DateTimeField()
    current_period_end = serializers.DateTimeField()
    price_overrides = serializers.JSONField()
    pending_price_overrides = serializers.JSONField(
        allow_null=True, help_text="Overrides set to apply from the next period (null: none)."
    )
    # Trials and plan changes (API.md "Subscription changes and trials").
    trial_end = serializers.DateTimeField(allow_null=True)
    in_trial = serializers.SerializerMethodField()
    previous_subscription = serializers.SerializerMethodField()
    next_subscription = serializers.SerializerMethodField()
    scheduled_change = serializers.SerializerMethodField()

    def get_in_trial(self, obj) -> bool:
        now = self.context.get("now") or timezone.now()
        return obj.status == Subscription.Status.ACTIVE and obj.in_trial_at(now)

    def get_previous_subscription(self, obj) -> str | None:
        return None if obj.previous_subscription_id is None else str(obj.previous_subscription_id)

    def get_next_subscription(self, obj) -> str | None:
        following = obj.next_subscription_or_none
        return None if following is None else str(following.pk)

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {"plan": {"type": "string"}, "at": {"type": "string", "format": "date-time"}},
        }
    )
    def get_scheduled_change(self, obj) -> dict | None:
        if obj.scheduled_plan_id is None or obj.status != Subscription.Status.ACTIVE:
            return None
        return {
            "plan": obj.scheduled_plan.key,
            "at": serializers.DateTimeField().to_representation(obj.current_period_end),
        }
