"""Shared DRF pieces: pagination and the one exception handler that maps domain errors to HTTP."""

from __future__ import annotations

import logging

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import BillingError

logger = logging.getLogger(__name__)


class Pagination(LimitOffsetPagination):
    """``{"count", "next", "previous", "results"}`` with ``?limit=&offset=``."""

    default_limit = 50
    max_limit = 1000


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
    if isinstance(exc, Http404):
        return Response({"detail": "Not found.", "code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
    response = drf_exception_handler(exc, context)
    if response is None and not isinstance(exc, APIException):
        logger.exception("Unhandled API error", exc_info=exc)
    return response
