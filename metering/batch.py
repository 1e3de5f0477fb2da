"""``POST /events/batch``: the body checked in one pass, with the same answers as the per-event check.

A body that fits the records exactly (no unknown keys: they could hide nesting past the depth limit) is
decoded by msgspec straight into typed records (``_Batch``): the three text fields as Python
strings, the timestamp as text, and ``properties`` left as the raw JSON text of the object
(``msgspec.Raw``). That raw text is what gets stored (PostgreSQL parses it into ``jsonb``), so the
properties are neither decoded into Python objects nor encoded again, except when something needs to look
inside them:

* the event's name has a numeric meter (``numeric_fields``): the object is decoded and the aggregated
  properties are checked by the same code as ``metering.ingest.event_clean``;
* the raw text could hold something ``event_clean`` refuses or rewrites: a ``\\u`` escape (a NUL), a
  number with an exponent, or a run of ``STORABLE_DIGITS`` digits (a number that might not be storable);
* any text field or the timestamp is not plainly valid.

In those cases, and for an event whose shape does not fit the records, the event (or, when the body itself
does not fit, the whole body) goes through ``event_clean`` exactly as before, so a rejected event gets the
same ``errors`` naming the same fields. Whatever this fast path accepts, ``event_clean`` accepts too, with
the same stored values (the same JSON object, the same UTC timestamp, the same text fields); the tests
compare both paths on the same bodies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from core.errors import ValidationFailed
from core.numbers import PROPERTY_INTEGER_DIGITS, STORABLE_DIGITS
from core.parsers import MAX_JSON_DEPTH, JsonTooDeep, json_depth_check

from .ingest import (
    MAX_BATCH,
    MAX_ID_LENGTH,
    MAX_INT_ID,
    MAX_NAME_LENGTH,
    CleanEvent,
    _decoder,
    _numeric_error,
    body_decode,
    event_clean,
    event_id_of,
    timestamp_parse,
)

_RAW_NULL = msgspec.Raw(b"null")
_PLAIN_INT_LIMIT = 10**PROPERTY_INTEGER_DIGITS
_FIXED_LEVELS = 3  # {"events": [ {event} ]}


class _Event(msgspec.Struct, forbid_unknown_fields=True, gc=False):  # no cycles: not tracked by the GC
    event_id: str | int
    customer: str
    event_name: str
    timestamp: str | None = None
    properties: msgspec.Raw = _RAW_NULL


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[_Event]


_batch_decoder = msgspec.json.Decoder(_Batch)
# Raw properties that need the full check: an escape (it may spell a NUL), an exponent, a very long number.
_LOOK_INSIDE = re.compile(rb"\\u|[0-9][eE]|[0-9]{%d}" % STORABLE_DIGITS)


@dataclass(slots=True)
class BatchChecked:
    events: list[CleanEvent] = field(default_factory=list)  # valid, first of each (customer, event_id)
    rejected: list[dict] = field(default_factory=list)  # {"index", "event_id", "errors"}
    in_batch_duplicates: int = 0


def _event_fast(
    item: _Event, numeric_fields: Mapping[str, Mapping[str, bool]], now_text: str, timestamps: dict[str, str]
) -> CleanEvent | None:
    """The clean event when every check passes on the fast path; None when ``event_clean`` must decide."""
    event_id, customer, event_name = item.event_id, item.customer, item.event_name
    if type(event_id) is int:
        if not 0 <= event_id <= MAX_INT_ID:
            return None
        event_id = str(event_id)
    # event_clean's text rule for the three: not empty, within the length limit, not blank, no NUL.
    if (
        not (0 < len(event_id) <= MAX_ID_LENGTH and 0 < len(customer) <= MAX_ID_LENGTH)
        or not 0 < len(event_name) <= MAX_NAME_LENGTH
        or "\x00" in event_id
        or "\x00" in customer
        or "\x00" in event_name
        or event_id.isspace()
        or customer.isspace()
        or event_name.isspace()
    ):
        return None
    sent = item.timestamp
    if sent is None:
        timestamp = now_text
    elif (timestamp := timestamps.get(sent)) is None:  # events of a batch often share their second
        try:
            timestamp = timestamps[sent] = timestamp_parse(sent).isoformat()
        except (ValueError, OverflowError):
            return None
    raw = bytes(item.properties)
    if raw == b"null":
        return CleanEvent(customer, event_id, event_name, timestamp, "{}")
    if raw[:1] != b"{" or _LOOK_INSIDE.search(raw):
        return None
    numeric = numeric_fields.get(event_name)
    if numeric:
        properties = _decoder.decode(raw)
        for name, signed in numeric.items():
            if name in properties:
                value = properties[name]
                if type(value) is int and 0 <= value < _PLAIN_INT_LIMIT:
                    continue  # a plain non-negative integer: numeric for every meter
                if _numeric_error(event_name, event_id, name, value, signed):
                    return None
    return CleanEvent(customer, event_id, event_name, timestamp, raw.decode())


def _as_dict(item: _Event) -> dict[str, Any]:
    """The event as the generic decoder would have read it (unknown keys aside, which no check reads)."""
    return {
        "event_id": item.event_id,
        "customer": item.customer,
        "event_name": item.event_name,
        "timestamp": item.timestamp,
        "properties": _decoder.decode(bytes(item.properties)),
    }


def batch_check(body: bytes, *, numeric_fields: Mapping[str, Mapping[str, bool]], now: datetime) -> BatchChecked:
    """Check a batch body: the valid events (duplicates inside the batch removed, first one wins), the rejected
    ones with their errors, and how many in-batch duplicates were dropped.

    A body that is not ``{"events": [...]}`` of at most ``MAX_BATCH`` items is a ``ValidationFailed`` naming
    ``events`` (or ``body`` for JSON that is invalid or nested too deep).
    """
    try:
        items: list[Any] = _batch_decoder.decode(body).events
        fast = True
    except (msgspec.DecodeError, msgspec.ValidationError):
        items, fast = _generic_items(body), False
    else:
        for item in items:
            _properties_depth_check(bytes(item.properties))
    if len(items) > MAX_BATCH:
        raise ValidationFailed(f"At most {MAX_BATCH:,} events per batch; got {len(items):,}.", field="events")
    now_text = now.isoformat()
    timestamps: dict[str, str] = {}
    out = BatchChecked()
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        event = _event_fast(item, numeric_fields, now_text, timestamps) if fast else None
        if event is None:
            raw = _as_dict(item) if fast else item
            event, errors = event_clean(raw, numeric_fields=numeric_fields, now=now)
            if event is None:
                out.rejected.append({"index": index, "event_id": event_id_of(raw), "errors": errors})
                continue
        key = (event.customer, event.event_id)
        if key in seen:
            out.in_batch_duplicates += 1  # the same event twice in one batch counts once
        else:
            seen.add(key)
            out.events.append(event)
    return out


def _properties_depth_check(raw: bytes) -> None:
    """The nesting limit of the whole body, for a body that fits the records: the body, its list and the event
    take three levels, so the properties may take ``MAX_JSON_DEPTH - 3``. Same error as the generic decode."""
    if raw.count(b"{") + raw.count(b"[") + _FIXED_LEVELS > MAX_JSON_DEPTH:
        try:
            json_depth_check(raw, MAX_JSON_DEPTH - _FIXED_LEVELS)
        except JsonTooDeep:
            raise ValidationFailed(
                f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.", field="body"
            ) from None


def _generic_items(body: bytes) -> list[Any]:
    raw = body_decode(body)
    if not isinstance(raw, dict) or "events" not in raw:
        raise ValidationFailed('The body must be {"events": [...]}.', field="events")
    items = raw["events"]
    if not isinstance(items, list):
        raise ValidationFailed("Must be a list of events.", field="events")
    return items
