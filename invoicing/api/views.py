"""Invoice, credit note and upcoming-invoice endpoints (shared/API.md "Invoices"). Thin: they call services."""

from __future__ import annotations

import json

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import Pagination, error_responses, paginated_schema
from core.errors import NotFound, ValidationFailed
from core.fields import ExactDecimalField, TextField
from core.instants import validate_instant
from customers.models import Customer

from .. import selectors
from ..models import CreditNote, Invoice
from ..pdf import invoice_pdf, invoice_pdf_filename
from ..services import credit_note_issue, invoice_finalize, invoice_recalculate, invoice_void, payment_record
from .coupons import OneOffInvoiceInputSerializer, one_off_invoice_post
from .serializers import CreditNoteOutputSerializer, InvoiceOutputSerializer

_ERRORS = error_responses(400, 404, 409)


def _pk(value) -> int | None:
    """An id from a path or body: ASCII digits only (``"²".isdigit()`` is true, yet ``int("²")`` fails)."""
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() else None


def _invoice(invoice_id) -> Invoice:
    pk = _pk(invoice_id)
    if pk is None:
        raise NotFound("No such invoice.")
    try:
        return selectors.invoice_get(invoice_id=pk)
    except Invoice.DoesNotExist:
        raise NotFound("No such invoice.") from None


def _out(invoice: Invoice, status: int = 200) -> Response:
    return Response(InvoiceOutputSerializer(selectors.invoice_get(invoice_id=invoice.pk)).data, status=status)


class InvoiceListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        customer = TextField(required=False, allow_blank=True)
        subscription = serializers.RegexField(r"\A[0-9]{0,18}\Z", required=False, allow_blank=True)
        status = serializers.ChoiceField(choices=Invoice.Status.choices, required=False, allow_blank=True)

    @extend_schema(
        operation_id="invoices_list",
        parameters=[
            OpenApiParameter("customer", str, description="Customer external id (empty: any)", pattern=r"^[^\x00]*$"),
            OpenApiParameter("subscription", str, description="Subscription id (empty: any)", pattern=r"^[0-9]{0,18}$"),
            OpenApiParameter("status", str, enum=[*Invoice.Status.values, ""], description="Empty: any"),
        ],
        responses={200: paginated_schema("PaginatedInvoiceList", InvoiceOutputSerializer), **error_responses(400)},
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = selectors.invoice_list(**filters.validated_data)
        paginator = Pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(InvoiceOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="invoices_create_one_off",
        request=OneOffInvoiceInputSerializer,
        responses={201: InvoiceOutputSerializer, **error_responses(400)},
        description="A one-off invoice (kind one_off, no subscription), taxed with the customer's rates.",
    )
    def post(self, request):
        return one_off_invoice_post(request)


class InvoiceDetailApi(APIView):
    @extend_schema(responses={200: InvoiceOutputSerializer, 404: _ERRORS[404]})
    def get(self, request, invoice_id):
        return Response(InvoiceOutputSerializer(_invoice(invoice_id)).data)


class InvoiceRecalculateApi(APIView):
    @extend_schema(request=None, responses={200: InvoiceOutputSerializer, **_ERRORS})
    def post(self, request, invoice_id):
        return _out(invoice_recalculate(invoice=_invoice(invoice_id), now=timezone.now()))


class InvoiceFinalizeApi(APIView):
    @extend_schema(request=None, responses={200: InvoiceOutputSerializer, **_ERRORS})
    def post(self, request, invoice_id):
        return _out(invoice_finalize(invoice=_invoice(invoice_id), now=timezone.now()))


class InvoiceVoidApi(APIView):
    @extend_schema(request=None, responses={200: InvoiceOutputSerializer, **_ERRORS})
    def post(self, request, invoice_id):
        return _out(invoice_void(invoice=_invoice(invoice_id), now=timezone.now()))


class InvoicePaymentCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        amount = ExactDecimalField(max_digits=19, decimal_places=4, positive=True)
        method = serializers.ChoiceField(choices=["offline"], default="offline")
        reference = TextField(max_length=200, required=False, allow_blank=True, default="")
        paid_at = serializers.DateTimeField(
            required=False,
            allow_null=True,
            default=None,
            validators=[validate_instant],
            help_text="When the money was received (default now; never in the future).",
        )

    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        invoice = serializers.CharField(source="invoice_id")
        amount = serializers.DecimalField(max_digits=19, decimal_places=2)
        currency = serializers.CharField()
        method = serializers.CharField()
        reference = serializers.CharField()
        paid_at = serializers.DateTimeField()

    @extend_schema(
        request=InputSerializer,
        responses={201: InvoiceOutputSerializer, **_ERRORS},
    )
    def post(self, request, invoice_id):
        invoice = _invoice(invoice_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payment = payment_record(
            invoice=invoice,
            amount=data.validated_data["amount"],
            reference=data.validated_data["reference"],
            paid_at=data.validated_data["paid_at"],
            now=timezone.now(),
        )
        # The invoice shape (what is now paid and due) with the recorded payment under "payment".
        response = _out(invoice, status=201)
        response.data["payment"] = self.OutputSerializer(payment).data
        return response


class PdfRenderer(BaseRenderer):
    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes):
            return data
        return json.dumps(data).encode()


class InvoicePdfApi(APIView):
    renderer_classes = [PdfRenderer, JSONRenderer]

    def handle_exception(self, exc):
        # An error (401, 404, ...) is a JSON body: answer it as application/json, not as a "PDF".
        response = super().handle_exception(exc)
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return response

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY, 404: _ERRORS[404]})
    def get(self, request, invoice_id):
        invoice = _invoice(invoice_id)
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{invoice_pdf_filename(invoice)}"'
        return response


class UpcomingInvoiceApi(APIView):
    @extend_schema(responses={200: InvoiceOutputSerializer, 404: _ERRORS[404]})
    def get(self, request, external_id):
        customer = get_object_or_404(Customer, external_id=external_id)
        preview = selectors.upcoming_invoice_preview(customer=customer, now=timezone.now())
        return Response(InvoiceOutputSerializer(preview).data)


class CreditNoteCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        invoice = TextField()
        amount = ExactDecimalField(max_digits=19, decimal_places=4, positive=True)
        reason = TextField(max_length=500)
        refund_to = serializers.ChoiceField(choices=CreditNote.RefundTo.values, default=CreditNote.RefundTo.INVOICE)

    @extend_schema(request=InputSerializer, responses={201: CreditNoteOutputSerializer, **_ERRORS})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        pk = _pk(v["invoice"])
        invoice = Invoice.objects.filter(pk=pk).first() if pk is not None else None
        if invoice is None:
            # The body names an invoice that does not exist: bad input naming the field.
            raise ValidationFailed("No such invoice.", field="invoice")
        note = credit_note_issue(
            invoice=invoice, amount=v["amount"], reason=v["reason"], refund_to=v["refund_to"], now=timezone.now()
        )
        return Response(CreditNoteOutputSerializer(note).data, status=201)


class CreditNoteDetailApi(APIView):
    @extend_schema(responses={200: CreditNoteOutputSerializer, 404: _ERRORS[404]})
    def get(self, request, credit_note_id):
        pk = _pk(credit_note_id)
        if pk is None:
            raise NotFound("No such credit note.")
        note = get_object_or_404(CreditNote, pk=pk)
        return Response(CreditNoteOutputSerializer(note).data)
