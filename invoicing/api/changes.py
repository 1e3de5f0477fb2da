"""Plan change endpoints (API.md "Subscription changes and trials"). Thin: they call ``invoicing.services``.

``POST /subscriptions/{id}/change`` renders the outcome inside the change's transaction (``present``), so a
preview, rolled back afterwards, shows exactly what the change would have written.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.models import Plan, PlanVersion
from core.api import error_responses
from core.errors import ValidationFailed
from core.fields import TextField, WholeNumberField
from core.instants import validate_instant
from customers.api.serializers import SubscriptionOutputSerializer
from customers.selectors import subscription_get

from ..selectors import invoice_get
from ..services import ChangeOutcome, subscription_change, subscription_change_cancel
from ..services.changes import CHANGE_AT
from .serializers import CreditNoteOutputSerializer, InvoiceOutputSerializer


def change_shape(outcome: ChangeOutcome, *, preview: bool) -> dict:
    """API.md's change response; in a preview the invoice says ``"status": "preview"`` and has no id or number,
    and the credit note has ``"id": null`` (nothing was saved)."""
    invoice = None
    if outcome.invoice is not None:
        invoice = InvoiceOutputSerializer(invoice_get(invoice_id=outcome.invoice.pk)).data
        if preview:
            invoice = {**invoice, "id": None, "number": None, "status": "preview"}
    note = None
    if outcome.credit_note is not None:
        note = CreditNoteOutputSerializer(outcome.credit_note).data
        if preview:
            note = {**note, "id": None, "number": None}
    return {
        "subscription": SubscriptionOutputSerializer(outcome.subscription).data,
        "previous": None if outcome.previous is None else SubscriptionOutputSerializer(outcome.previous).data,
        "invoice": invoice,
        "credit_note": note,
    }


_CHANGE_RESPONSE = inline_serializer(
    "SubscriptionChangeResponse",
    {
        "subscription": SubscriptionOutputSerializer(),
        "previous": SubscriptionOutputSerializer(allow_null=True),
        "invoice": InvoiceOutputSerializer(allow_null=True),
        "credit_note": CreditNoteOutputSerializer(allow_null=True),
    },
)


class SubscriptionChangeApi(APIView):
    class InputSerializer(serializers.Serializer):
        plan = TextField(max_length=100, help_text="The new plan's key.")
        at = serializers.ChoiceField(choices=CHANGE_AT, default="auto")
        effective_at = serializers.DateTimeField(
            required=False,
            allow_null=True,
            default=None,
            validators=[validate_instant],
            help_text="Default now; may be in the past, not before the current period's start.",
        )
        pinned_version = WholeNumberField(required=False, allow_null=True, default=None, min_value=1)
        preview = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        operation_id="subscriptions_change",
        request=InputSerializer,
        responses={200: _CHANGE_RESPONSE, **error_responses(400, 404, 409)},
    )
    def post(self, request, subscription_id: str):
        subscription = subscription_get(subscription_id=subscription_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
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
        body = subscription_change(
            subscription=subscription,
            plan=plan,
            at=v["at"],
            effective_at=v["effective_at"],
            pinned_version=pinned,
            preview=v["preview"],
            now=timezone.now(),
            present=lambda outcome: change_shape(outcome, preview=v["preview"]),
        )
        return Response(body)


class SubscriptionCancelScheduledChangeApi(APIView):
    @extend_schema(
        operation_id="subscriptions_cancel_scheduled_change",
        request=None,
        responses={200: SubscriptionOutputSerializer, **error_responses(404, 409)},
    )
    def post(self, request, subscription_id: str):
        subscription = subscription_get(subscription_id=subscription_id)
        subscription_change_cancel(subscription=subscription, now=timezone.now())
        return Response(SubscriptionOutputSerializer(subscription_get(subscription_id=subscription_id)).data)
