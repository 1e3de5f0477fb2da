"""Event validation for the ingestion endpoints: hand-written checks on msgspec-decoded JSON.

No DRF serializer runs per event (1,000 of them per batch would be the bottleneck). Each event is checked on
its own and yields either a ``CleanEvent`` ready for the single multi-row insert, or an error dict naming
the fields: ``{"timestamp": ["..."]}``.

Rules (shared/API.md, "Events and usage"):

* ``event_id``, ``customer`` and ``event_name`` are required strings, not blank, without NUL (an integer
  ``event_id`` from 0 to 2^63 - 1 is accepted and kept as its decimal text).
* ``timestamp`` is ISO 8601 (``2026-01-15T00:00:00Z``), as sent; a naive time is UTC; omitted or null means now.
* ``properties`` must be an object (omitted or null means ``{}``).
* A property that a numeric meter (sum, max, latest, sum_with_multiplier) on the event's name aggregates must
  be numeric when present: a JSON number or a decimal string (``5``, ``2.5``, ``"2.5"``) in the one property
  grammar (``core.numbers``: ASCII digits, no whitespace of any kind, no exponent in strings, at
  most 20 digits before the point and 12 after), and not negative unless every meter aggregating it allows
  negatives (``allow_negative``). The SQL cast in usage reads uses the same grammar, so whatever passes here
  is counted there with the same value. The error names the event and the property.
* Every JSON number anywhere in ``properties`` must be storable: at most 1,000 digits before the point and
  1,000 after (every double fits, so no client's float is refused), so no number (``1e999999999``, valid JSON
  that PostgreSQL cannot hold in ``jsonb``) can make the batch's single insert fail: such an event is
  rejected on its own. A number outside the property grammar that a meter created later aggregates counts as
  missing for it.
* The body may nest at most 32 levels (``core.parsers.json_depth_check``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from core.errors import ValidationFailed
from core.numbers import (
    PROPERTY_DECIMAL_PLACES,
    PROPERTY_INTEGER_DIGITS,
    STORABLE_DIGITS,
    json_number_fits,
    property_number,
)
from core.parsers import JsonTooDeep, json_depth_check

MAX_BATCH = 1000
MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 200
MAX_INT_ID = 2**63 - 1
# The schema's form of the text rule below (not blank, as ``str.strip`` sees blanks, and no NUL): every
# character ``str.isspace`` knows, spelled out, so the pattern means the same in ECMA and Python regexes.
_SPACES = "".join(
    f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}" for c in map(chr, range(0x3001)) if c.isspace()
)
NOT_BLANK_PATTERN = f"^[^\\x00]*[^\\x00{_SPACES}][^\\x00]*$"
# Floats decode to Decimal so a property like 0.1 or 12345678901234567890.5 is stored exactly.
_decoder = msgspec.json.Decoder(float_hook=Decimal)
_encoder = msgspec.json.Encoder(decimal_format="number")


@dataclass(slots=True, frozen=True)
class CleanEvent:
    customer: str
    event_id: str
    event_name: str
    timestamp: str  # ISO 8601 in UTC
    properties: str  # JSON text


def body_decode(body: bytes) -> Any:
    """Parse a request body; invalid or too deeply nested JSON is a 400, never a 500."""
    try:
        json_depth_check(body)
        return _decoder.decode(body)
    except JsonTooDeep as exc:
        raise ValidationFailed(str(exc), field="body") from None
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:
        raise ValidationFailed(f"The body is not valid JSON: {exc}", field="body") from None


def _number_errors(properties: dict) -> list[str]:
    """Messages for JSON numbers anywhere in ``properties`` (nested too) that PostgreSQL could not store.

    Iterative: the body's depth is already bounded, but nothing here needs recursion.
    """
    bad: list[str] = []
    stack: list[tuple[str, Any]] = [(repr(k), v) for k, v in properties.items()]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k!r}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, int | Decimal) and not isinstance(value, bool) and not json_number_fits(value):
            bad.append(
                f"Property {path}: a JSON number must have at most {STORABLE_DIGITS} digits before the point and "
                f"{STORABLE_DIGITS} after it (it could not be stored)."
            )
    return sorted(bad)


def _numeric_error(event_name: str, event_id: str, name: str, value: Any, signed: bool) -> str | None:
    """Why an aggregated property is not numeric for its meters, or None when it is (or is absent)."""
    if property_number(value, signed=signed) is not None:
        return None
    where = f"Event '{event_name}' ({event_id or 'no event_id'}): property '{name}'"
    if not signed and property_number(value, signed=True) is not None:
        return f"{where} must not be negative: a meter aggregates it and does not allow negative values; got {value!r}."
    return (
        f"{where} must be numeric because a meter aggregates it: a JSON number or a decimal string in ASCII "
        f"digits (no spaces, no exponent), at most {PROPERTY_INTEGER_DIGITS} digits before the point and "
        f"{PROPERTY_DECIMAL_PLACES} after; got {value!r}."
    )[:1000]


def _text(raw: Mapping, name: str, limit: int, errors: dict, *, allow_int: bool = False) -> str:
    value = raw.get(name)
    if value is None:
        errors[name] = ["This field is required."]
        return ""
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_INT_ID:
            errors[name] = [f"An integer {name} must be from 0 to {MAX_INT_ID}."]
            return ""
        value = str(value)
    if not isinstance(value, str):
        errors[name] = ["Must be a string."]
        return ""
    if not value.strip():
        errors[name] = ["May not be blank."]
        return ""
    if len(value) > limit:
        errors[name] = [f"At most {limit} characters."]
        return ""
    if "\x00" in value:
        errors[name] = ["May not contain NUL characters."]
        return ""
    return value


def timestamp_parse(value: Any) -> datetime:
    """ISO 8601 text -> aware UTC datetime (naive means UTC); ``ValueError`` otherwise."""
    if not isinstance(value, str):
        raise ValueError("Must be an ISO 8601 string, e.g. 2026-01-15T00:00:00Z.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{value}' is not an ISO 8601 time, e.g. 2026-01-15T00:00:00Z.") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def event_clean(
    raw: Any, *, numeric_fields: Mapping[str, Mapping[str, bool]], now: datetime
) -> tuple[CleanEvent | None, dict[str, list[str]]]:
    """Validate one event. Returns ``(event, {})`` or ``(None, errors)`` with errors keyed by field.

    ``numeric_fields``: ``{event_name: {property: negatives allowed}}`` (``numeric_fields_by_event_name``).
    """
    if not isinstance(raw, dict):
        return None, {"event": ["Each event must be a JSON object."]}
    errors: dict[str, list[str]] = {}
    event_id = _text(raw, "event_id", MAX_ID_LENGTH, errors, allow_int=True)
    customer = _text(raw, "customer", MAX_ID_LENGTH, errors)
    event_name = _text(raw, "event_name", MAX_NAME_LENGTH, errors)

    ts_raw = raw.get("timestamp")
    if ts_raw is None:
        timestamp = now
    else:
        try:
            timestamp = timestamp_parse(ts_raw)
        except (ValueError, OverflowError) as exc:
            errors["timestamp"] = [str(exc)]
            timestamp = now

    properties = raw.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        errors["properties"] = ["Must be an object."]
        properties = {}

    numeric = numeric_fields.get(event_name)
    if numeric:
        messages = [
            message
            for name in sorted(numeric)
            if name in properties
            and (message := _numeric_error(event_name, event_id, name, properties[name], numeric[name]))
        ]
        if messages:
            errors.setdefault("properties", []).extend(messages)
    if "properties" not in errors and (messages := _number_errors(properties)):
        errors["properties"] = messages
    encoded = _encoder.encode(properties).decode() if not errors else ""
    if "\\u0000" in encoded:
        # PostgreSQL's jsonb cannot hold NUL characters; reject instead of failing the whole batch.
        errors["properties"] = ["May not contain NUL characters."]
    if errors:
        return None, errors
    return (
        CleanEvent(
            customer=customer,
            event_id=event_id,
            event_name=event_name,
            timestamp=timestamp.isoformat(),
            properties=encoded,
        ),
        {},
    )


def event_id_of(raw: Any) -> Any:
    """The ``event_id`` a rejected event carried (echoed back in the batch response), or None."""
    if isinstance(raw, dict):
        value = raw.get("event_id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None
