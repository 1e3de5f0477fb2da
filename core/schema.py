"""OpenAPI: the Bearer key scheme, on every operation the API key scope it needs, and the number fields."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema as BaseAutoSchema

from .api import MAX_OFFSET
from .numbers import decimal_pattern, zero_pattern_ecma


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "core.auth.ApiKeyAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "API key: `Authorization: Bearer <key>`"}


class ExactDecimalFieldSchema(OpenApiSerializerFieldExtension):
    """``ExactDecimalField`` (core.fields): in a request, decimal text matching the field's grammar
    (the same expression the server checks) or a JSON integer in range; "not zero" when positive. In a
    response, decimal text."""

    target_class = "core.fields.ExactDecimalField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        if direction == "response":
            return {"type": "string", "format": "decimal", "example": "2000"}
        integer_digits = field.max_digits - field.decimal_places
        text = {
            "type": "string",
            "format": "decimal",
            "pattern": decimal_pattern(
                integer_digits=integer_digits,
                decimal_places=field.decimal_places,
                signed=False,
                at_most=field.at_most,
                dialect="ecma",
            ),
        }
        if field.positive:
            text["not"] = {"pattern": zero_pattern_ecma()}
        whole = {
            "type": "integer",
            "minimum": 1 if field.positive else 0,
            "maximum": field.at_most if field.at_most is not None else 10**integer_digits - 1,
        }
        return {"oneOf": [text, whole], "example": "2000"}


class TextFieldSchema(OpenApiSerializerFieldExtension):
    """``TextField``: a string without NUL characters (the server refuses them: PostgreSQL cannot store them)."""

    target_class = "core.fields.TextField"

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["pattern"] = "^[^\\x00]*$"
        return schema


class EventPropertiesSchema(OpenApiSerializerFieldExtension):
    """An event's ``properties``: any JSON object whose strings hold no NUL character, at any depth (a recursive
    component, ``EventPropertyValue``). Keys cannot be constrained in OpenAPI 3.0 (no ``propertyNames``): a
    key with a NUL is refused too (PostgreSQL's jsonb cannot hold it)."""

    target_class = "metering.api.views._PropertiesDoc"

    def map_serializer_field(self, auto_schema, direction):
        from drf_spectacular.plumbing import ResolvedComponent

        ref = {"$ref": "#/components/schemas/EventPropertyValue"}
        no_nul = {"pattern": "^[^\\x00]*$"}
        value = {
            "nullable": True,
            "anyOf": [
                {"type": "string", **no_nul},
                {"type": "number"},
                {"type": "boolean"},
                {"type": "array", "items": ref},
                {"type": "object", "additionalProperties": ref},
            ],
        }
        auto_schema.registry.register_on_missing(
            ResolvedComponent(
                name="EventPropertyValue", type=ResolvedComponent.SCHEMA, schema=value, object="EventPropertyValue"
            )
        )
        return {"type": "object", "additionalProperties": ref}


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
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and parameter.get("name") in PAGE_PARAMETERS:
                    parameter["schema"] = dict(PAGE_PARAMETERS[parameter["name"]])
                    responses.setdefault(
                        "400", {"description": BAD_PAGE, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
                    )
            if "requestBody" in operation:
                responses.setdefault(
                    "415",
                    {"description": UNSUPPORTED_MEDIA_TYPE, "content": {"application/json": {"schema": ERROR_SCHEMA}}},
                )
            for code, text in COMMON_ERRORS.items():
                responses.setdefault(
                    code, {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
                )
        return operation


# core.api.Pagination: what it accepts (limit above 1,000 reads as 1,000).
PAGE_PARAMETERS = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 9_999_999_999},
    "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
}
UNSUPPORTED_MEDIA_TYPE = "The body is not `application/json`."
BAD_PAGE = '`limit` or `offset` is not a whole number in its range (`{"offset": ["why"]}`).'
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
