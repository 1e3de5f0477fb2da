"""Event validation for the ingestion endpoints: hand-written checks on msgspec-decoded JSON.

No DRF serializer runs per event (1,000 of them per batch would be the bottleneck). Each event is checked on
its own and yields either a ``CleanEvent`` ready for the single multi-row insert, or an error dict naming
the fields: ``{"timestamp": ["..."]}``.

Rules (shared/API.md, "Events and usage"):

* ``event_id``, ``customer`` and ``event_name`` are required non-empty strings (an integer ``event_id`` is
  accepted and kept as its decimal text).
* ``timestamp`` is ISO 8601 (``2026-01-15T00:00:00Z``); a naive time is UTC; omitted means now.
* ``properties`` must be an object (omitted means ``{}``).
* A property that a numeric meter (sum, max, latest, sum_with_multiplier) on the event's name aggregates must
  be numeric when present: a JSON number or a decimal string (``5``, ``2.5``, ``"2.5"``), with magnitude
  below 10^27 (aggregates are kept to 12 decimal places in 40 digits). The error names the event and the
  property.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from core.errors import ValidationFailed

MAX_BATCH = 1000
MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 200
NUMERIC_LIMIT = Decimal("1e27")

# Same pattern as the SQL side (metering.selectors): a decimal string, no exponent.
DECIMAL_STRING = re.compile(r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)\s*$")

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
    """Parse a request body; invalid JSON is a 400, never a 500."""
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, ValueError) as exc:
        raise ValidationFailed(f"The body is not valid JSON: {exc}", field="body") from None


def is_numeric(value: Any) -> bool:
    """A JSON number (not a boolean) or a decimal string, finite and below 10^27 in magnitude."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) < NUMERIC_LIMIT
    if isinstance(value, Decimal):
        return value.is_finite() and abs(value) < NUMERIC_LIMIT
    if isinstance(value, str) and DECIMAL_STRING.match(value):
        return abs(Decimal(value.strip())) < NUMERIC_LIMIT
    return False


def _text(raw: Mapping, name: str, limit: int, errors: dict, *, allow_int: bool = False) -> str:
    value = raw.get(name)
    if value is None:
        errors[name] = ["This field is required."]
        return ""
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
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
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"'{value}' is not an ISO 8601 time, e.g. 2026-01-15T00:00:00Z.") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def event_clean(
    raw: Any, *, numeric_fields: Mapping[str, frozenset[str]], now: datetime
) -> tuple[CleanEvent | None, dict[str, list[str]]]:
    """Validate one event. Returns ``(event, {})`` or ``(None, errors)`` with errors keyed by field."""
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
        bad = [name for name in numeric if name in properties and not is_numeric(properties[name])]
        if bad:
            errors.setdefault("properties", []).extend(
                f"Event '{event_name}' ({event_id or 'no event_id'}): property '{name}' must be numeric "
                f"(a number or a decimal string) because a meter aggregates it; got {properties[name]!r}."
                for name in sorted(bad)
            )
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
