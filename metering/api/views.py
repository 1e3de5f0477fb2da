"""Meters, event ingestion, usage and entitlement endpoints (API.md "Catalog" meters and "Events and usage").

The two ingestion views read ``request.body`` and decode it with msgspec (no DRF parser, no serializer per
event), after the same checks DRF's JSON parser makes (``application/json`` only, nesting depth); everything
else is ordinary thin DRF.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api import error_responses, paginate, paginated_schema
from billing_project.errors import NotFound, ValidationFailed
from billing_project.fields import ExactDecimalField
from billing_project.money import decimal_text
from customers.models import Customer
from metering import entitlements, services
from metering.ingest import MAX_BATCH, body_decode, event_clean, event_id_of, timestamp_parse
from metering.models import Meter
from metering.selectors import numeric_fields_by_event_name

# --- Meters ---------------------------------------------------------------------------------------------------


class MeterFilterSerializer(serializers.Serializer):
    property = serializers.CharField()
    values = serializers.ListField(child=serializers.CharField())


class MeterOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    event_name = serializers.CharField()
    aggregation = serializers.ChoiceField(choices=Meter.Aggregation.choices)
    field = serializers.SerializerMethodField()
    multiplier = serializers.SerializerMethodField()
    filters = serializers.SerializerMethodField()
    allow_negative = serializers.BooleanField()

    def get_field(self, meter: Meter) -> str | None:
        return meter.field or None

    def get_multiplier(self, meter: Meter) -> str | None:
        return decimal_text(meter.multiplier)

    @extend_schema_field(MeterFilterSerializer(many=True))
    def get_filters(self, meter: Meter) -> list[dict]:
        return [{"property": f.property, "values": list(f.values)} for f in meter.filters.all()]


class MeterInputSerializer(serializers.Serializer):
    """Shape only; the rules (aggregation, field, multiplier, filters) are checked by ``meter_create``."""

    key = serializers.SlugField(max_length=100)
    name = serializers.CharField(max_length=200)
    event_name = serializers.CharField(max_length=200)
    aggregation = serializers.CharField(max_length=24)
    field = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True, default="")
    multiplier = ExactDecimalField(required=False, allow_null=True, default=None, help_text='sum_with_multiplier: e.g. "2".')
    filters = serializers.JSONField(required=False, default=list, help_text='[{"property": "model", "values": ["gpt-4o"]}]')
    allow_negative = serializers.BooleanField(
        required=False, default=False,
        help_text="Accept negative values of the property (corrections); default false: a negative value is rejected.",
    )


class MeterListCreateApi(APIView):
    InputSerializer = MeterInputSerializer
    OutputSerializer = MeterOutputSerializer

    @extend_schema(
        operation_id="meters_list",
        responses=paginated_schema("PaginatedMeterList", MeterOutputSerializer),
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
    )
    def get(self, request):
        return paginate(request, self, Meter.objects.prefetch_related("filters").order_by("key"), self.OutputSerializer)

    @extend_schema(operation_id="meters_create", request=InputSerializer,
                   responses={201: OutputSerializer, **error_responses(400)})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        meter = services.meter_create(
            key=values["key"], name=values["name"], event_name=values["event_name"],
            aggregation=values["aggregation"], field=values.get("field") or "",
            multiplier=values.get("multiplier"), filters=values.get("filters"),
            allow_negative=values["allow_negative"],
        )
        meter = Meter.objects.prefetch_related("filters").get(pk=meter.pk)
        return Response(self.OutputSerializer(meter).data, status=status.HTTP_201_CREATED)


class MeterDetailApi(APIView):
    OutputSerializer = MeterOutputSerializer

    @extend_schema(operation_id="meters_retrieve", responses={200: OutputSerializer, **error_responses(404)})
    def get(self, request, key: str):
        meter = Meter.objects.prefetch_related("filters").filter(key=key).first()
        if meter is None:
            raise NotFound(f"No meter '{key}'.")
        return Response(self.OutputSerializer(meter).data)


# --- Events ---------------------------------------------------------------------------------------------------


class EventSchema(serializers.Serializer):
    event_id = serializers.CharField()
    customer = serializers.CharField()
    event_name = serializers.CharField()
    timestamp = serializers.DateTimeField(required=False)
    properties = serializers.DictField(required=False)


def _json_body(request):
    """The decoded body of an ingestion request: only ``application/json`` (415 otherwise, as DRF answers for
    every other endpoint), at most 32 levels deep (400)."""
    media_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType(media_type or "(none)")
    return body_decode(request.body)


class EventIngestApi(APIView):
    """``POST /events``: 201 accepted, 200 duplicate (the same event_id already stored for that customer)."""

    required_scope = "ingest"
    parser_classes: list = []  # the body is read raw and decoded by msgspec

    class OutputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=["accepted", "duplicate"])

        class Meta:
            ref_name = "EventStatus"

    @extend_schema(operation_id="events_create", request=EventSchema,
                   responses={201: OutputSerializer, 200: OutputSerializer, **error_responses(400)})
    def post(self, request):
        raw = _json_body(request)
        event, errors = event_clean(raw, numeric_fields=numeric_fields_by_event_name(), now=timezone.now())
        if event is None:
            return Response(errors, status=status.HTTP_400_BAD_REQUEST)
        if services.events_store(events=[event]):
            return Response({"status": "accepted"}, status=status.HTTP_201_CREATED)
        return Response({"status": "duplicate"}, status=status.HTTP_200_OK)


class EventBatchApi(APIView):
    """``POST /events/batch``: up to 1,000 events; valid ones are stored even when others are rejected."""

    required_scope = "ingest"
    parser_classes: list = []

    class InputSerializer(serializers.Serializer):
        events = EventSchema(many=True)

        class Meta:
            ref_name = "EventBatch"

    class OutputSerializer(serializers.Serializer):
        accepted = serializers.IntegerField()
        duplicates = serializers.IntegerField()
        rejected = inline_serializer(
            name="RejectedEvent",
            many=True,
            fields={"index": serializers.IntegerField(), "event_id": serializers.CharField(allow_null=True),
                    "errors": serializers.DictField()},
        )

        class Meta:
            ref_name = "EventBatchResult"

    @extend_schema(operation_id="events_batch", request=InputSerializer,
                   responses={200: OutputSerializer, **error_responses(400)})
    def post(self, request):
        raw = _json_body(request)
        if not isinstance(raw, dict) or "events" not in raw:
            raise ValidationFailed('The body must be {"events": [...]}.', field="events")
        items = raw["events"]
        if not isinstance(items, list):
            raise ValidationFailed("Must be a list of events.", field="events")
        if len(items) > MAX_BATCH:
            raise ValidationFailed(f"At most {MAX_BATCH:,} events per batch; got {len(items):,}.", field="events")
        numeric = numeric_fields_by_event_name()
        now = timezone.now()
        valid = {}
        rejected = []
        in_batch_duplicates = 0
        for index, item in enumerate(items):
            event, errors = event_clean(item, numeric_fields=numeric, now=now)
            if event is None:
                rejected.append({"index": index, "event_id": event_id_of(item), "errors": errors})
            elif (key := (event.customer, event.event_id)) in valid:
                in_batch_duplicates += 1  # the same event twice in one batch counts once
            else:
                valid[key] = event
        accepted = services.events_store(events=list(valid.values()))
        return Response(
            {"accepted": accepted, "duplicates": len(valid) - accepted + in_batch_duplicates, "rejected": rejected}
        )


# --- Usage and entitlements -----------------------------------------------------------------------------------


def _customer(external_id: str) -> Customer:
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise NotFound(f"No customer '{external_id}'.")
    return customer


def _time_param(request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return timestamp_parse(value)
    except (ValueError, OverflowError) as exc:
        raise ValidationFailed(str(exc), field=name) from None


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
                fields={"from": serializers.DateTimeField(), "to": serializers.DateTimeField(),
                        "meters": OutputSerializer(many=True)},
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

    @extend_schema(operation_id="customers_entitlements_retrieve",
                   responses={200: OutputSerializer, **error_responses(404)})
    def get(self, request, external_id: str, feature: str):
        state = entitlements.entitlement_check(customer=_customer(external_id), feature_key=feature, now=timezone.now())
        if state is None:
            raise NotFound(f"Customer '{external_id}' is not entitled to '{feature}'.")
        return Response(self.OutputSerializer(state).data)
