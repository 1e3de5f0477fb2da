"""Request guards and the API audit trail.

- ``BodySizeLimitMiddleware``: a request body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is refused with
  413 before anything reads it (no out-of-memory, never a 500).
- ``ApiAuditMiddleware``: every API write (POST/PUT/PATCH/DELETE under /api/v1/) made with a key is recorded
  (key, method, path, status, object) next to the admin's action log. Usage events are not: the event table
  is itself the record of what was ingested, and the ingest path must stay one round trip per batch.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import JsonResponse

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
