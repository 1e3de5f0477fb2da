"""Shared DRF pieces: pagination, the one exception handler that maps domain errors to HTTP, and the OpenAPI
declarations the apps' views share (error responses, paginated pages).

Rules chosen here: a database ``DataError`` (PostgreSQL refuses NUL characters in text and JSON, or a number
too large for its column) is bad input, answered 400 naming the first field that holds a NUL; a dropped
database connection is 503 with Retry-After (nothing of the request was committed).
"""

from __future__ import annotations

import logging
import re

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import BillingError

logger = logging.getLogger(__name__)


def _nul_path(data, prefix: str = "") -> str | None:
    """The dotted path of the first string (key or value) in parsed JSON that holds a NUL character."""
    if isinstance(data, str):
        return (prefix or "non_field_errors") if "\x00" in data else None
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return None
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(key, str) and "\x00" in key:
            return prefix or "non_field_errors"
        if found := _nul_path(value, path):
            return found
    return None


#: The largest ``offset`` a list accepts (an ``integer``; beyond it the database could not take the value).
MAX_OFFSET = 2**31 - 1
_DIGITS = re.compile(r"\A[0-9]{1,10}\Z")


def _page_param(request, name: str, *, minimum: int, maximum: int, default: int) -> int:
    """A pagination parameter: ASCII digits from ``minimum`` to ``maximum``; absent means ``default``.

    DRF's pagination falls back to its default for anything it cannot read (``offset=null``, ``limit=-1``):
    a silent 200 for a wrong request. Here it is a 400 naming the parameter, as the schema says.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _DIGITS.match(raw) or not minimum <= int(raw) <= maximum:
        raise ValidationError({name: [f"Must be a whole number from {minimum} to {maximum}."]})
    return int(raw)


class Pagination(LimitOffsetPagination):
    """``{"count", "next", "previous", "results"}`` with ``?limit=`` (1 or more; above 1,000 reads as 1,000)
    and ``?offset=`` (0 or more); anything else is a 400 naming the parameter."""

    default_limit = 50
    max_limit = 1000

    def get_limit(self, request) -> int:
        return min(
            _page_param(request, self.limit_query_param, minimum=1, maximum=9_999_999_999, default=self.default_limit),
            self.max_limit,
        )

    def get_offset(self, request) -> int:
        return _page_param(request, self.offset_query_param, minimum=0, maximum=MAX_OFFSET, default=0)


def paginate(request, view, queryset, output) -> Response:
    """One ``Pagination`` page of ``queryset`` rendered with the ``output`` serializer class."""
    paginator = Pagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(output(page, many=True).data)


def exception_handler(exc, context):
    """Domain errors -> 400/404/409 with a JSON body naming the field; never a 500 for bad input."""
    if isinstance(exc, BillingError):
        return Response(exc.as_dict(), status=exc.status)
    if isinstance(exc, ObjectDoesNotExist):
        return Response({"detail": "Not found.", "code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "message_dict"):
            return Response(exc.message_dict, status=status.HTTP_400_BAD_REQUEST)
        return Response({"detail": exc.messages}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database went away mid-request: nothing of this request was committed, so the client may
        # retry the whole request (events are idempotent by event_id; other writes by their keys).
        logger.warning("database unavailable during API request: %s", exc)
        response = Response(
            {
                "detail": "The database is unavailable; nothing was stored. Retry the request.",
                "code": "unavailable",
            },
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = "1"
        return response
    if isinstance(exc, DataError):
        # The database refused a value the input carried (a NUL character, a number too large for its column):
        # that is bad input, so a 400 naming the field when it can be found, never a 500.
        logger.info("database refused an input value: %s", exc)
        request = context.get("request")
        path = _nul_path(getattr(request, "data", None)) if request is not None else None
        if path:
            return Response({path: ["NUL characters (\\u0000) are not allowed."]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {"detail": "A value is out of range or not storable.", "code": "invalid"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404):
        return Response({"detail": "Not found.", "code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
    response = drf_exception_handler(exc, context)
    if response is None and not isinstance(exc, APIException):
        logger.exception("Unhandled API error", exc_info=exc)
    return response


# --- OpenAPI declarations shared by the apps' views --------------------------------------------------------

_ERROR_TEXT = {
    400: 'Invalid input: a JSON object naming each bad field with its messages (`{"field": ["why"]}`).',
    404: 'Unknown object (`{"detail", "code": "not_found"}`).',
    409: 'Not allowed in the object\'s current state (`{"detail", "code"}`).',
}


def error_responses(*codes: int) -> dict:
    """``@extend_schema(responses={200: X, **error_responses(400, 404)})``: the error statuses an operation returns.

    Error bodies are JSON objects: field name -> list of messages for 400, ``detail``/``code`` otherwise.
    401 (no or bad key), 403 (key without the scope), 413 (body too large), 429 (throttled) and 503 (database
    unavailable) can answer any operation and are described once, in the API's conventions.
    """
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiResponse

    return {code: OpenApiResponse(response=OpenApiTypes.OBJECT, description=_ERROR_TEXT[code]) for code in codes}


def paginated_schema(name: str, item):
    """The schema of a ``Pagination`` page: ``{"count", "next", "previous", "results": [item]}``."""
    from drf_spectacular.utils import inline_serializer
    from rest_framework import serializers

    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True) if isinstance(item, type) else item,
        },
    )
