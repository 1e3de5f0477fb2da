"""Request guards and the API audit trail.

- ``BodySizeLimitMiddleware``: a request body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is refused with
  413 before anything reads it (no out-of-memory, never a 500).
- ``AdminGuardMiddleware``: admin requests only. A NUL character anywhere in the path or query string is a 400
  (PostgreSQL cannot store or compare text holding NUL, so a changelist search or filter with one was a 500), and
  every statement of the request runs under ``ADMIN_STATEMENT_TIMEOUT_MS``: a search or count that would run for
  minutes is cancelled and answered 503. API requests, Celery tasks and ``run_billing`` never see the limit.
- ``ApiAuditMiddleware``: every API write (POST/PUT/PATCH/DELETE under /api/v1/) made with a key is recorded
  (key, method, path, status, object) next to the admin's action log. Usage events are not: the event table
  is itself the record of what was ingested, and the ingest path must stay one round trip per batch.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse

logger = logging.getLogger(__name__)

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
NOT_AUDITED_PREFIXES = ("/api/v1/events",)


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length header.", "code": "invalid"}, status=400)
        if limit is not None and length > limit:
            return JsonResponse(
                {
                    "detail": f"Request body too large: {length} bytes; the limit is {limit}.",
                    "code": "too_large",
                },
                status=413,
            )
        return self.get_response(request)


ADMIN_PREFIX = "/admin/"


def _statement_timed_out(exc: BaseException) -> bool:
    from psycopg import errors

    while exc is not None:
        if isinstance(exc, errors.QueryCanceled):
            return True
        exc = exc.__cause__
    return False


class AdminGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(ADMIN_PREFIX):
            return self.get_response(request)
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        ):
            return HttpResponseBadRequest("NUL characters are not allowed in the address.", content_type="text/plain")
        timeout = settings.ADMIN_STATEMENT_TIMEOUT_MS
        if not timeout:
            return self.get_response(request)
        # Session-level (not SET LOCAL): admin requests are not one transaction, and the durable services the
        # admin calls may not run inside one. Reset before the connection serves anything else.
        with connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {int(timeout)}")
        try:
            return self.get_response(request)
        finally:
            self._reset()

    @staticmethod
    def _reset() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")
        except DatabaseError:
            # The connection cannot say it is back to normal: drop it rather than let it carry the admin's limit.
            logger.warning("could not reset the admin statement timeout; closing the connection")
            connection.close()

    def process_exception(self, request, exception):
        if request.path.startswith(ADMIN_PREFIX) and _statement_timed_out(exception):
            logger.warning("admin request cancelled by the statement timeout: %s", request.get_full_path()[:300])
            return HttpResponse(
                "This page asked the database for more than it may in one request and was stopped. "
                "Narrow the search or the filters and try again.",
                status=503,
                content_type="text/plain",
            )
        return None


class ApiAuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method in WRITE_METHODS and request.path.startswith("/api/v1/"):
            if not request.path.startswith(NOT_AUDITED_PREFIXES):
                self._record(request, response)
        return response

    def _record(self, request, response) -> None:
        user = getattr(request, "user", None)
        key = getattr(user, "api_key", None)
        if key is None:
            return
        from .models import ApiAuditEntry

        data = getattr(response, "data", None)
        ref = ""
        if isinstance(data, dict):
            for field in ("id", "external_id", "key", "number", "code"):
                if data.get(field) not in (None, ""):
                    ref = f"{field}={data[field]}"
                    break
        try:
            ApiAuditEntry.objects.create(
                api_key=key,
                method=request.method,
                path=request.path[:500],
                status_code=response.status_code,
                object_ref=ref[:200],
            )
        except Exception:  # noqa: BLE001  (the audit must never turn a served write into an error)
            logger.exception("could not record API audit entry")
