"""The API's JSON parsing: a nesting limit checked before decoding, and text PostgreSQL can store.

Rules (API.md "Conventions", docs/input-rules.md):

* A JSON body nested deeper than :data:`MAX_JSON_DEPTH` (32) levels of arrays/objects is refused with a
  ``400`` before it is decoded. The check (:func:`json_depth_check`) does not recurse: it skips string
  literals with one regular expression and counts brackets, so a body nested 100,000 deep costs one pass
  instead of a ``RecursionError`` (a 500) in the decoder.
* JSON numbers with a fraction or an exponent stay Python floats, as in DRF: the number fields refuse them
  (``core.numbers``: decimals with a fraction travel as strings), so no float reaches money.
* ``NaN``/``Infinity`` are not JSON and are refused, as DRF's strict mode does.
* A string holding a lone UTF-16 surrogate (``"\ud800"``) is refused: it is valid JSON escaping but not
  text, and PostgreSQL could not store it (it made the driver fail, a 500).

The event ingestion endpoints decode with msgspec for speed and run the same depth check first.
"""

from __future__ import annotations

import json
import re

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 32

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


class JsonTooDeep(ValueError):
    """The body nests arrays/objects deeper than the limit."""


def json_depth_check(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`JsonTooDeep` when ``body`` nests more than ``limit`` arrays/objects; no recursion.

    Brackets inside string literals do not count. Malformed JSON is left to the decoder (it fails there),
    unless its unclosed brackets alone are deeper than the limit.
    """
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return
    depth = 0
    for byte in brackets:
        if byte in _OPEN:
            depth += 1
            if depth > limit:
                raise JsonTooDeep(f"The JSON body is nested deeper than {limit} levels.")
        else:
            depth -= 1


def _surrogate_check(data) -> None:
    """Raise ParseError when a string (key or value) of parsed JSON holds a lone surrogate; no recursion."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ParseError("JSON parse error - a string holds a lone UTF-16 surrogate (not text).") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON.")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the nesting limit and the surrogate check (see the module docstring)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        body = stream.read() if stream is not None else b""
        try:
            json_depth_check(body)
        except JsonTooDeep as exc:
            raise ParseError(str(exc)) from None
        try:
            data = json.loads(body.decode(encoding), parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if b"\\u" in body:  # a surrogate can only come from a \u escape
            _surrogate_check(data)
        return data
