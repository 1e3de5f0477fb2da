"""Output shapes of API.md's Catalog section (and documentation shapes for the request bodies).

Decimals travel as strings: money fields keep at least the plan currency's minor-unit places
(``"10.00"``, ``"0.000002"``); quantities and credits carry no trailing zeros (``"2000"``, ``"5000"``).
"""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from catalog.commitments import thresholds_of
from catalog.models import Entitlement, Feature, Plan, PlanCreditGrant, PlanVersion, Price
from catalog.price_models import PRICE_FIELDS, PRICE_MODELS, PriceField
from catalog.pricing import currency_exponent
from core.fields import ExactDecimalField, TextField, WholeNumberField
from core.money import decimal_text


def money_text(value: Decimal | None, currency: str) -> str | None:
    """``Decimal("10.000000000000")`` in USD -> ``"10.00"``; extra precision is kept (``"0.000002"``)."""
    if value is None:
        return None
    places = currency_exponent(currency)
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and -exponent < places:
        normalized = normalized.quantize(Decimal(1).scaleb(-places))
    return f"{normalized:f}"


class TierSerializer(serializers.Serializer):
    up_to = ExactDecimalField(
        positive=True,
        allow_null=True,
        required=False,
        help_text="Last unit of the tier (inclusive); null (or absent) for the last tier.",
    )
    unit_amount = ExactDecimalField()
    flat_amount = ExactDecimalField(required=False, allow_null=True, help_text='Default (or null) "0".')


def _value_field(field: PriceField) -> serializers.Field:
    """The API field of a price model value (catalog/price_models.py), documented with the models that use it."""
    used_by = ", ".join(key for key, model in PRICE_MODELS.items() if field.name in model.fields)
    if field.kind == "tiers":
        return TierSerializer(many=True, required=False, help_text=used_by)
    if field.kind == "choice":
        return serializers.ChoiceField(choices=list(field.choices), allow_null=True, required=False, help_text=used_by)
    # money and quantities: ASCII decimal text or a JSON integer that fits the column (core.fields)
    return ExactDecimalField(positive=field.kind == "quantity", allow_null=True, required=False, help_text=used_by)


def _value_text(field: PriceField, price: Price, currency: str):
    """A price's value of ``field`` as the API shows it: money keeps the currency's minor unit, quantities no
    trailing zeros, an empty choice is null, tiers a list (empty for a model without them)."""
    if field.kind == "tiers":
        if not PRICE_MODELS[price.model].uses_tiers:
            return []
        return [
            {
                "up_to": decimal_text(t.up_to),
                "unit_amount": money_text(t.unit_amount, currency),
                "flat_amount": money_text(t.flat_amount, currency),
            }
            for t in sorted(price.tiers.all(), key=lambda t: (t.position, t.id))
        ]
    value = getattr(price, field.name)
    if field.kind == "money":
        return money_text(value, currency)
    if field.kind == "quantity":
        return decimal_text(value)
    return value or None


# PRICE: the common fields, then every price model value (catalog/price_models.py's PRICE_FIELDS).
class PriceSerializer(serializers.Serializer):
    id = serializers.CharField(read_only=True)
    name = TextField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=200,
        help_text='Default (null, empty or blank): the meter\'s name, or "Flat fee".',
    )
    model = serializers.ChoiceField(choices=Price.Model.values)
    meter = TextField(allow_null=True, required=False, help_text="Meter key (usage prices; absent for fixed fees).")
    timing = serializers.ChoiceField(
        choices=Price.Timing.values,
        required=False,
        allow_null=True,
        help_text="Default (or null): in_advance for flat_fee, in_arrears for usage.",
    )

    def get_fields(self):
        fields = super().get_fields()
        fields.update({name: _value_field(field) for name, field in PRICE_FIELDS.items()})
        return fields

    @staticmethod
    def shape(price: Price, currency: str) -> dict:
        return {
            "id": str(price.id),
            "name": price.name,
            "model": price.model,
            "meter": price.meter.key if price.meter_id else None,
            "timing": price.timing,
            **{name: _value_text(field, price, currency) for name, field in PRICE_FIELDS.items()},
        }


class EntitlementSerializer(serializers.Serializer):
    feature = TextField(help_text="Feature key.")
    enabled = serializers.BooleanField(
        required=False, allow_null=True, default=True, help_text="Default (or null) true."
    )
    limit = ExactDecimalField(allow_null=True, required=False, help_text="Metered: limit per window; null = unlimited.")
    reset = serializers.ChoiceField(
        choices=Entitlement.Reset.values, required=False, allow_null=True, help_text="Default (or null) billing_period."
    )
    soft = serializers.BooleanField(
        required=False, allow_null=True, default=False, help_text="Default (or null) false."
    )
    value = TextField(
        allow_blank=True, allow_null=True, required=False, max_length=200, help_text="Static features: the value."
    )

    @staticmethod
    def shape(row: Entitlement) -> dict:
        return {
            "feature": row.feature.key,
            "enabled": row.enabled,
            "limit": decimal_text(row.limit),
            "reset": row.reset,
            "soft": row.soft,
            "value": row.value,
        }


class GrantSerializer(serializers.Serializer):
    name = TextField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=200,
        help_text='Default (null, empty or blank) "Plan credits".',
    )
    credits = ExactDecimalField(positive=True)
    cadence = serializers.ChoiceField(
        choices=PlanCreditGrant.Cadence.values,
        required=False,
        allow_null=True,
        help_text="Default (or null) per_period.",
    )
    rollover_cap = ExactDecimalField(
        allow_null=True, required=False, help_text='null: all unused credits roll over; "0": none.'
    )
    expire_after_periods = WholeNumberField(
        min_value=1, allow_null=True, required=False, help_text="null: never by age."
    )
    forfeit_on_end = serializers.BooleanField(
        required=False, allow_null=True, default=True, help_text="Default (or null) true."
    )
    priority = WholeNumberField(required=False, allow_null=True, default=10, help_text="Default (or null) 10.")

    @staticmethod
    def shape(row: PlanCreditGrant) -> dict:
        return {
            "name": row.name,
            "credits": decimal_text(row.credits),
            "cadence": row.cadence,
            "rollover_cap": decimal_text(row.rollover_cap),
            "expire_after_periods": row.expire_after_periods,
            "forfeit_on_end": row.forfeit_on_end,
            "priority": row.priority,
        }


class ThresholdSerializer(serializers.Serializer):
    amount = ExactDecimalField(positive=True, help_text="Lifetime usage amount (plan currency) that triggers it.")
    recurring = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Fires again at every multiple of its amount above the highest fixed threshold (one, the last).",
    )


class VersionSummarySerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.ChoiceField(choices=PlanVersion.Status.values)
    effective_from = serializers.DateTimeField()


class VersionSerializer(VersionSummarySerializer):
    plan = serializers.CharField(help_text="Plan key.")
    published_at = serializers.DateTimeField(allow_null=True)
    trial_days = serializers.IntegerField()
    prices = PriceSerializer(many=True)
    entitlements = EntitlementSerializer(many=True)
    credit_grants = GrantSerializer(many=True)
    minimum_commitment = serializers.CharField(allow_null=True, help_text="Least a period bills before tax, or null.")
    progressive_thresholds = ThresholdSerializer(many=True)

    @staticmethod
    def shape(version: PlanVersion) -> dict:
        currency = version.plan.currency
        return VersionSerializer(
            {
                "plan": version.plan.key,
                "number": version.number,
                "status": version.status,
                "effective_from": version.effective_from,
                "published_at": version.published_at,
                "trial_days": version.trial_days,
                "prices": [],
                "entitlements": [],
                "credit_grants": [],
                "minimum_commitment": None,
                "progressive_thresholds": [],
            }
        ).data | {
            "prices": [PriceSerializer.shape(p, currency) for p in version.prices.all()],
            "entitlements": [EntitlementSerializer.shape(e) for e in version.entitlements.all()],
            "credit_grants": [GrantSerializer.shape(g) for g in version.credit_grants.all()],
            "minimum_commitment": money_text(version.minimum_commitment, currency),
            "progressive_thresholds": [
                {"amount": money_text(t.amount, currency), "recurring": t.recurring}
                for t in thresholds_of(version.progressive_thresholds)
            ],
        }


class VersionInputDocSerializer(serializers.Serializer):
    """Request body of POST /plans/{key}/versions (documentation shape; the service validates)."""

    prices = PriceSerializer(many=True, required=False)
    entitlements = EntitlementSerializer(many=True, required=False)
    credit_grants = GrantSerializer(many=True, required=False)
    minimum_commitment = ExactDecimalField(
        positive=True, required=False, allow_null=True, help_text="Least a period bills before tax; null: none."
    )
    progressive_thresholds = ThresholdSerializer(many=True, required=False)
    publish = serializers.BooleanField(required=False, default=False)
    effective_from = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="Default (or null) now on create, unchanged on edit; may be in the past.",
    )
    trial_days = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=365,
        help_text="Free trial of new subscriptions, in days (0 = none); on edit, absent = unchanged.",
    )


class FeatureOutputSerializer(serializers.ModelSerializer):
    meter = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)

    class Meta:
        model = Feature
        fields = ["key", "name", "type", "meter", "unit_name", "description"]


class PlanOutputSerializer(serializers.ModelSerializer):
    versions = VersionSummarySerializer(many=True, read_only=True)

    class Meta:
        model = Plan
        fields = ["key", "name", "description", "currency", "interval", "versions"]
