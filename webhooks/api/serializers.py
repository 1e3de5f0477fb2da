"""Shapes of API.md's webhook endpoint, delivery, alert and trigger objects. Decimals travel as strings."""

from __future__ import annotations

from rest_framework import serializers

from core.fields import ExactDecimalField, FlagField, KeyField, TextField
from core.models import WebhookDelivery
from webhooks.alerts import plain
from webhooks.models import Alert


class EndpointCreateInputSerializer(serializers.Serializer):
    url = TextField(max_length=2000)
    events = serializers.ListField(child=TextField(max_length=64), max_length=20)
    enabled = FlagField(required=False, default=True)
    description = TextField(max_length=500, required=False, allow_blank=True, default="")


class EndpointUpdateInputSerializer(serializers.Serializer):
    url = TextField(max_length=2000, required=False)
    events = serializers.ListField(child=TextField(max_length=64), max_length=20, required=False)
    enabled = FlagField(required=False)
    description = TextField(max_length=500, required=False, allow_blank=True)


class EndpointOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    description = serializers.CharField()


class EndpointCreatedOutputSerializer(EndpointOutputSerializer):
    secret = serializers.CharField(help_text="Shown once: keep it to verify signatures.")


class DeliveryOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    event_type = serializers.CharField(source="event.type")
    webhook_id = serializers.CharField(source="event.webhook_id")
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.values)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)


class AlertThresholdSerializer(serializers.Serializer):
    value = ExactDecimalField(max_digits=28, decimal_places=12, positive=True)
    recurring = FlagField(required=False, default=False)


class AlertCreateInputSerializer(serializers.Serializer):
    customer = TextField(max_length=255, help_text="The customer's external id.")
    name = TextField(max_length=200)
    kind = serializers.ChoiceField(choices=Alert.Kind.values)
    meter = KeyField(max_length=100, required=False, allow_null=True, default=None, help_text="A meter's key (usage).")
    thresholds = AlertThresholdSerializer(many=True)


class ThresholdOutputSerializer(serializers.Serializer):
    value = serializers.CharField()
    recurring = serializers.BooleanField()


class AlertOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    customer = serializers.CharField(source="customer.external_id")
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Alert.Kind.values)
    meter = serializers.SerializerMethodField()
    thresholds = ThresholdOutputSerializer(many=True)

    def get_meter(self, alert) -> str | None:
        return alert.meter.key if alert.meter_id else None


class TriggerOutputSerializer(serializers.Serializer):
    threshold = serializers.SerializerMethodField()
    value = serializers.SerializerMethodField()
    period_start = serializers.DateTimeField()
    triggered_at = serializers.DateTimeField()

    def get_threshold(self, trigger) -> str:
        return plain(trigger.threshold)

    def get_value(self, trigger) -> str:
        return plain(trigger.value)
