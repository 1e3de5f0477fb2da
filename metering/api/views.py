"""Meters, event ingestion, usage and entitlement endpoints (API.md "Catalog" meters and "Events and usage").

The two ingestion views read ``request.body`` and decode it with msgspec (no DRF parser, no serializer per
event), after the same checks DRF's JSON parser makes (``application/json`` only, nesting depth); everything
else is ordinary thin DRF.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import error_responses, paginate, paginated_schema
from core.errors import NotFound
from core.fields import ExactDecimalField, FlagField, KeyField, TextField
from core.money import decimal_text
from core.parsers import JSONParser
from metering import services, tasks
from metering.batch import batch_check
from metering.ingest import (
    MAX_BATCH,
    MAX_ID_LENGTH,
    MAX_INT_ID,
    MAX_NAME_LENGTH,
    NOT_BLANK_PATTERN,
    body_decode,
    event_clean,
)
from metering.models import Meter
from metering.selectors import numeric_fields_by_event_name

# --- Meters ---------------------------------------------------------------------------------------------------


class MeterFilterSerializer(serializers.Serializer):
    property = TextField(max_length=200)
    values = serializers.ListField(child=TextField(max_length=200), min_length=1)


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

    key = KeyField(max_length=100)
    name = TextField(max_length=200)
    event_name = TextField(max_length=200)
    aggregation = serializers.ChoiceField(choices=Meter.Aggregation.values)
    field = TextField(max_length=200, required=False, allow_blank=True, allow_null=True, default="")
    multiplier = ExactDecimalField(
        required=False, allow_null=True, default=None, help_text='sum_with_multiplier: e.g. "2".'
    )
    filters = MeterFilterSerializer(many=True, required=False, default=list)
    allow_negative = FlagField(
        required=False,
        default=False,
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

    @extend_schema(
        operation_id="meters_create", request=InputSerializer, responses={201: OutputSerializer, **error_responses(400)}
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        meter = services.meter_create(
            key=values["key"],
            name=values["name"],
            event_name=values["event_name"],
            aggregation=values["aggregation"],
            field=values.get("field") or "",
            multiplier=values.get("multiplier"),
            filters=values.get("filters"),
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


def _event_text(max_length: int) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": NOT_BLANK_PATTERN}


@extend_schema_field({"oneOf": [_event_text(MAX_ID_LENGTH), {"type": "integer", "minimum": 0, "maximum": MAX_INT_ID}]})
class _EventIdDoc(serializers.Field):
    """Documentation only (the ingestion endpoints check events by hand, metering.ingest)."""


@extend_schema_field(_event_text(MAX_ID_LENGTH))
class _CustomerDoc(serializers.Field):
    pass


@extend_schema_field(_event_text(MAX_NAME_LENGTH))
class _EventNameDoc(serializers.Field):
    pass


class _PropertiesDoc(serializers.DictField):
    """Documentation only: any JSON object without NUL characters (PostgreSQL's jsonb cannot hold them), whose
    numbers are storable (every double is); see ``core.schema.EventPropertiesSchema``."""


class EventSchema(serializers.Serializer):
    """An EVENT as the ingestion endpoints check it (``metering.ingest.event_clean``)."""

    event_id = _EventIdDoc(help_text="A string, or an integer kept as its decimal text.")
    customer = _CustomerDoc(help_text="The customer's external id (it may not exist yet).")
    event_name = _EventNameDoc()
    timestamp = serializers.DateTimeField(required=False, allow_null=True, help_text="Default (or null): now.")
    properties = _PropertiesDoc(required=False, allow_null=True, help_text="Default (or null): {}.")


def _rollup_enqueue(delay: float) -> None:
    tasks.usage_rollup_refresh.apply_async(countdown=delay)


def _json_bytes(request) -> bytes:
    """The raw body of an ingestion request: only ``application/json`` (415 otherwise, as DRF answers for
    every other endpoint)."""
    media_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType(media_type or "(none)")
    return request.body


def _json_body(request):
    """The decoded body of an ingestion request: only ``application/json`` (415), at most 32 levels deep (400)."""
    return body_decode(_json_bytes(request))


class EventIngestApi(APIView):
    """``POST /events``: 201 accepted, 200 duplicate (the same event_id already stored for that customer)."""

    required_scope = "ingest"
    # The body is read raw and decoded by msgspec (request.data is never used): the parser only tells the
    # schema that the body is JSON.
    parser_classes = [JSONParser]

    class OutputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=["accepted", "duplicate"])

        class Meta:
            ref_name = "EventStatus"

    @extend_schema(
        operation_id="events_create",
        request=EventSchema,
        responses={201: OutputSerializer, 200: OutputSerializer, **error_responses(400)},
    )
    def post(self, request):
        raw = _json_body(request)
        event, errors = event_clean(raw, numeric_fields=numeric_fields_by_event_name(), now=timezone.now())
        if event is None:
            return Response(errors, status=status.HTTP_400_BAD_REQUEST)
        if services.events_store(events=[event]):
            services.usage_rollup_soon(enqueue=_rollup_enqueue)
            return Response({"status": "accepted"}, status=status.HTTP_201_CREATED)
        return Response({"status": "duplicate"}, status=status.HTTP_200_OK)


@extend_schema_field({"type": "array", "maxItems": MAX_BATCH, "items": {}})
class _BatchEventsDoc(serializers.Field):
    """Documentation only: any item is answered (an invalid one is a ``rejected`` entry, not a 400)."""


class EventBatchApi(APIView):
    """``POST /events/batch``: up to 1,000 events; valid ones are stored even when others are rejected."""

    required_scope = "ingest"
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        events = _BatchEventsDoc(
            help_text="Up to 1,000 EVENTs (see EventSchema); each one that is not a valid event "
            "becomes a `rejected` entry and the others are stored."
        )

        class Meta:
            ref_name = "EventBatch"

    class OutputSerializer(serializers.Serializer):
        accepted = serializers.IntegerField()
        duplicates = serializers.IntegerField()
        rejected = inline_serializer(
            name="RejectedEvent",
            many=True,
            fields={
                "index": serializers.IntegerField(),
                "event_id": serializers.CharField(allow_null=True),
                "errors": serializers.DictField(),
            },
        )

        class Meta:
            ref_name = "EventBatchResult"

    @extend_schema(
        operation_id="events_batch", request=InputSerializer, responses={200: OutputSerializer, **error_responses(400)}
    )
    def post(self, request):
        checked = batch_check(_json_bytes(request), numeric_fields=numeric_fields_by_event_name(), now=timezone.now())
        valid, rejected, in_batch_duplicates = checked.events, checked.rejected, checked.in_batch_duplicates
        accepted = services.events_store(events=valid)
        if accepted:
            services.usage_rollup_soon(enqueue=_rollup_enqueue)
        return Response(
            {"accepted": accepted, "duplicates": len(valid) - accepted + in_batch_duplicates, "rejected": rejected}
        )
