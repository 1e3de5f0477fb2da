"""OpenAPI: the Bearer key scheme and, on every operation, the API key scope it needs."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as BaseAutoSchema


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "core.auth.ApiKeyAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "API key: `Authorization: Bearer <key>`"}


class AutoSchema(BaseAutoSchema):
    def _scope(self) -> str:
        scope = getattr(self.view, "required_scope", None)
        if scope:
            return scope
        return "read" if self.method in ("GET", "HEAD", "OPTIONS") else "write"

    def get_serializer_name(self, serializer, direction):
        # Views nest their own InputSerializer/OutputSerializer (HackSoft style); name the component after
        # the view too, so two views' "InputSerializer" never collide in the schema.
        cls = serializer.__class__
        if "." in cls.__qualname__ and "<locals>" not in cls.__qualname__:
            return cls.__qualname__.replace(".", "")
        return super().get_serializer_name(serializer, direction)

    def get_description(self):
        base = super().get_description() or ""
        note = f"Requires an API key with the `{self._scope()}` scope."
        return f"{base}\n\n{note}".strip()

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is not None:
            operation["x-required-scope"] = self._scope()
            responses = operation.setdefault("responses", {})
            for code, text in COMMON_ERRORS.items():
                responses.setdefault(
                    code, {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
                )
        return operation


ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "additionalProperties": True,
}
# Answers any operation may give, whatever its input: documented once here.
COMMON_ERRORS = {
    "401": "No API key, or a bad or revoked one.",
    "403": "The API key lacks the scope this operation needs.",
    "413": "The request body is larger than the configured limit.",
    "429": "Too many requests for this key; retry after the number of seconds in Retry-After.",
    "503": "The database is unavailable; nothing was stored. Retry after the seconds in Retry-After.",
}
