"""POST /events/batch's one-pass check (metering.batch) and its COPY storage (metering.services._events_copy).

The one-pass check must answer exactly what the per-event check (``event_clean``, what the endpoint ran
before) answers, on every body: the reference below is that earlier loop, and the tests compare both on
hand-picked and generated bodies. Storage goes through COPY outside a transaction, so the storage tests run
with ``transaction=True`` (inside a test transaction the INSERT path is taken).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest
from django.db import connection, connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ValidationFailed
from metering import services
from metering.batch import batch_check
from metering.ingest import MAX_BATCH, body_decode, event_clean, event_id_of
from metering.models import Event, EventKey
from metering.selectors import numeric_fields_forget
from tests.factories.metering import MeterFactory

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
NUMERIC = {"api_call": {"tokens": False}, "credit": {"amount": True}}


def reference_check(body: bytes, *, numeric_fields, now):
    """The endpoint's check before the one-pass path (kept here as the specification)."""
    raw = body_decode(body)
    if not isinstance(raw, dict) or "events" not in raw:
        raise ValidationFailed('The body must be {"events": [...]}.', field="events")
    items = raw["events"]
    if not isinstance(items, list):
        raise ValidationFailed("Must be a list of events.", field="events")
    if len(items) > MAX_BATCH:
        raise ValidationFailed(f"At most {MAX_BATCH:,} events per batch; got {len(items):,}.", field="events")
    valid, rejected, in_batch_duplicates = {}, [], 0
    for index, item in enumerate(items):
        event, errors = event_clean(item, numeric_fields=numeric_fields, now=now)
        if event is None:
            rejected.append({"index": index, "event_id": event_id_of(item), "errors": errors})
        elif (key := (event.customer, event.event_id)) in valid:
            in_batch_duplicates += 1
        else:
            valid[key] = event
    return list(valid.values()), rejected, in_batch_duplicates


def outcome(check, body: bytes):
    """Comparable result: events with properties parsed (same JSON object whatever its spelling), or the 400."""
    try:
        result = check(body, numeric_fields=NUMERIC, now=NOW)
    except ValidationFailed as exc:
        return ("400", exc.field, exc.message)
    if not isinstance(result, tuple):
        result = (result.events, result.rejected, result.in_batch_duplicates)
    events, rejected, duplicates = result
    parsed = [
        (e.customer, e.event_id, e.event_name, e.timestamp, json.loads(e.properties, parse_float=Decimal))
        for e in events
    ]
    return (parsed, rejected, duplicates)


def assert_same(body: bytes):
    expected = outcome(reference_check, body)
    assert outcome(batch_check, body) == expected
    return expected


def ev(i=1, **kw):
    return {
        "event_id": f"e{i}",
        "customer": "c1",
        "event_name": "api_call",
        "timestamp": "2026-01-15T10:00:00Z",
        "properties": {"tokens": 3},
        **kw,
    }


def batch(*events) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


ODD_EVENTS = [
    ev(event_id=7),
    ev(event_id=2**63 - 1),
    ev(event_id=2**63),
    ev(event_id=-1),
    ev(event_id=True),
    ev(event_id=1.5),
    ev(event_id=" "),
    ev(event_id=""),
    ev(event_id="x" * 256),
    ev(event_id="x" * 255),
    ev(customer="a\x00b"),
    ev(customer="\u3000"),
    ev(customer="tab\there"),
    ev(customer=None),
    ev(event_name="n" * 201),
    ev(timestamp=None),
    ev(timestamp="2026-01-15T10:00:00"),  # naive: UTC
    ev(timestamp="2026-01-15T11:00:00+01:00"),
    ev(timestamp="2026-01-15"),
    ev(timestamp="15/01/2026"),
    ev(timestamp=12),
    ev(properties=None),
    ev(properties=[1]),
    ev(properties="x"),
    ev(properties={}),
    ev(properties={"tokens": -1}),
    ev(properties={"tokens": "2.5"}),
    ev(properties={"tokens": " 2"}),
    ev(properties={"tokens": "٣"}),  # a non-ASCII digit
    ev(properties={"tokens": 1.5}),
    ev(properties={"tokens": 10**20}),
    ev(properties={"tokens": 10**19}),
    ev(properties={"tokens": True}),
    ev(properties={"tokens": None}),
    ev(properties={"other": "nul \x00 inside"}),
    ev(properties={"other": 'é and \\ and "quotes" and \ttab\nline'}),
    ev(properties={"deep": nested(20)}),
    ev(event_name="credit", properties={"amount": -5}),
    ev(event_name="credit", properties={"amount": "-0.5"}),
    ev(event_name="credit", properties={"amount": "x"}),
    {"customer": "c1", "event_name": "api_call"},
    "not an object",
    None,
    [1, 2],
]


@pytest.mark.parametrize("index", range(len(ODD_EVENTS)))
def test_each_odd_event_is_answered_as_the_per_event_check_answers(index):
    # Beside a plain valid event, so the batch holds one accepted and the odd one.
    assert_same(batch(ev("plain"), ODD_EVENTS[index]))


def test_raw_numbers_needing_a_closer_look_are_answered_the_same():
    # Spelled by hand: 1e999999999 cannot be stored (rejected), 1E2 and 1.5e-3 can, a 1,001-digit integer
    # cannot, a 1,000-digit one can, 1.0 is kept as 1.0 (jsonb keeps the scale).
    for number in ("1e999999999", "1E2", "1.5e-3", "9" * 1001, "9" * 1000, "1.0", "-0"):
        body = b'{"events": [{"event_id": "n", "customer": "c", "event_name": "x", "properties": {"v": %s}}]}' % (
            number.encode()
        )
        assert_same(body)


def test_whitespace_and_escapes_in_raw_properties_are_answered_the_same():
    body = (
        b'{"events": [{"event_id": "w", "customer": "c", "event_name": "api_call",'
        b' "properties": {\n\t"tokens" : 4 ,\r\n "s": "\\u00e9\\/\\"\\\\", "z": "\\u0000"}},'
        b' {"event_id": "v", "customer": "c", "event_name": "api_call", "properties": {"tokens": 4, "s": "\\/"}}]}'
    )
    parsed, rejected, _ = assert_same(body)
    assert [e[1] for e in parsed] == ["v"]
    assert rejected == [{"index": 0, "event_id": "w", "errors": {"properties": ["May not contain NUL characters."]}}]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"events": {}}',
        b'{"other": []}',
        b'{"events": [], "extra": [[[[1]]]]}',
        json.dumps({"events": [ev(properties=nested(29))]}).encode(),  # 3 + 29 = 32 levels: allowed
        json.dumps({"events": [ev(properties=nested(30))]}).encode(),  # 33 levels: 400 naming body
        json.dumps({"events": [ev(i) for i in range(MAX_BATCH + 1)]}).encode(),
        json.dumps({"events": [ev(i) for i in range(MAX_BATCH + 1)] + [ev(properties=nested(40))]}).encode(),
        json.dumps({"events": [ev(1), ev(1), ev(2, customer="c2"), ev(2)], "note": "extra keys"}).encode(),
        json.dumps({"events": [{**ev(5), "unknown": [[[1]]]}]}).encode(),
        b'{"events": [{"event_id": "a", "customer": "c", "customer": "d", "event_name": "x"}]}',
    ],
)
def test_bodies_are_answered_as_before(body):
    assert_same(body)


def test_the_depth_limit_is_a_400_naming_the_body():
    # {"events": [ {event with properties nested 30 deep} ]} is 3 + 30 = 33 levels (limit 32).
    with pytest.raises(ValidationFailed) as exc:
        batch_check(batch(ev(properties=nested(30))), numeric_fields={}, now=NOW)
    assert (exc.value.field, exc.value.message) == ("body", "The JSON body is nested deeper than 32 levels.")


_texts = st.one_of(
    st.sampled_from(["c1", "c2", " ", "", "a\x00", "\t", "x" * 256]), st.text(max_size=8), st.integers(-2, 2**64)
)
_values = st.one_of(
    st.integers(-(10**21), 10**21),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.sampled_from(["1.5", "-2", "1e3", " 1", "x", True, None, [], {}]),
    st.floats(allow_nan=False, allow_infinity=False),
)
_events = st.fixed_dictionaries(
    {},
    optional={
        "event_id": _texts,
        "customer": st.sampled_from(["c1", "c2", " ", "", 5, None]),
        "event_name": st.sampled_from(["api_call", "credit", "other", "", None]),
        "timestamp": st.sampled_from(["2026-01-15T10:00:00Z", "2026-01-15T10:00:00", "bad", None, 3]),
        "properties": st.one_of(
            st.none(),
            st.dictionaries(st.sampled_from(["tokens", "amount", "x"]), _values, max_size=3),
            st.just([1]),
        ),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_events, max_size=6))
def test_any_batch_is_answered_as_the_per_event_check_answers(events):
    assert_same(json.dumps({"events": events}).encode())


# --- Storage through COPY -----------------------------------------------------------------------------------


@pytest.fixture
def copies(monkeypatch):
    """Records what each COPY attempt returned (True: stored by COPY; False: undone, the INSERT took over)."""
    seen: list[bool] = []
    real = services._events_copy

    def spy(events):
        result = real(events)
        seen.append(result)
        return result

    monkeypatch.setattr(services, "_events_copy", spy)
    return seen


def post(api, body):
    return api.post("/api/v1/events/batch", data=json.dumps(body), content_type="application/json")


@pytest.fixture(autouse=True)
def _fresh_numeric_fields():
    numeric_fields_forget()
    yield
    numeric_fields_forget()


@pytest.mark.django_db(transaction=True)
def test_a_fresh_batch_is_stored_by_copy_with_every_value_exact(api, copies):
    # Text that COPY would misread unless escaped: tab, newline, carriage return and backslash, in every column.
    odd = {"event_id": "id\t\\n\r\n", "customer": "cu\\st\tomer", "event_name": "api_call"}
    props = {"tokens": 7, "note": 'tab\there, line\nthere, back\\slash, "quoted"', "é": [1.5, None, True]}
    body = {
        "events": [ev(i) for i in range(24)] + [{**odd, "timestamp": "2026-01-15T11:00:00+01:00", "properties": props}]
    }
    response = post(api, body)
    assert response.status_code == 200
    assert response.json() == {"accepted": 25, "duplicates": 0, "rejected": []}
    assert copies == [True]
    stored = Event.objects.get(event_id=odd["event_id"])
    assert (stored.customer_external_id, stored.event_name) == (odd["customer"], "api_call")
    assert stored.timestamp == datetime(2026, 1, 15, 10, tzinfo=UTC)  # 11:00+01:00
    assert stored.properties == {"tokens": 7, "note": props["note"], "é": [1.5, None, True]}
    assert Event.objects.count() == 25 and EventKey.objects.count() == 25


@pytest.mark.django_db(transaction=True)
def test_duplicates_within_and_across_batches_count_once(api, copies):
    assert post(api, {"events": [ev(i) for i in range(30)]}).json()["accepted"] == 30
    # Again: events 20-29 are stored already, 30-54 are new, and 30 comes twice in this batch.
    again = post(api, {"events": [ev(i) for i in range(20, 55)] + [ev(30, properties={"tokens": 999})]})
    # 25 new; duplicates = 10 stored before + 1 twice in the batch.
    assert again.json() == {"accepted": 25, "duplicates": 11, "rejected": []}
    # The first batch went in by COPY; the second's COPY met a stored key, was undone, and the INSERT stored it.
    assert copies == [True, False]
    assert Event.objects.count() == 55
    assert Event.objects.get(event_id="e30").properties == {"tokens": 3}  # the first of the two in the batch


@pytest.mark.django_db(transaction=True)
def test_rejected_events_are_named_and_the_rest_stored_by_copy(api, copies):
    MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    body = {"events": [ev(i) for i in range(25)] + [ev("neg", properties={"tokens": -2}), ev("t", timestamp="bad")]}
    result = post(api, body).json()
    assert result["accepted"] == 25 and result["duplicates"] == 0
    assert [(r["index"], r["event_id"], sorted(r["errors"])) for r in result["rejected"]] == [
        (25, "eneg", ["properties"]),
        (26, "et", ["timestamp"]),
    ]
    assert "must not be negative" in result["rejected"][0]["errors"]["properties"][0]
    assert copies == [True]


@pytest.mark.django_db(transaction=True)
def test_overlapping_batches_from_six_threads_store_each_event_once(api_key):
    from rest_framework.test import APIClient

    barrier = threading.Barrier(6)
    results: list[dict] = []
    lock = threading.Lock()

    def send(n: int):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        try:
            barrier.wait()
            # 20 events every thread sends, 20 of its own.
            body = {"events": [ev(f"shared-{i}") for i in range(20)] + [ev(f"own-{n}-{i}") for i in range(20)]}
            response = post(client, body)
            with lock:
                results.append(response.json())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Stored: 20 shared once + 6 x 20 own = 140; the shared ones are duplicates for the 5 other threads: 100.
    assert sum(r["accepted"] for r in results) == 140
    assert sum(r["duplicates"] for r in results) == 100
    assert Event.objects.count() == 140 and EventKey.objects.count() == 140


@pytest.mark.django_db(transaction=True)
def test_copy_waits_for_the_rollup_fence_like_any_insert():
    """While a refresh holds the insert fence, a COPY of a batch does not draw ids (the rollup relies on it)."""
    from metering.ingest import CleanEvent

    events = [CleanEvent("c1", f"f{i}", "api_call", "2026-01-15T10:00:00+00:00", "{}") for i in range(25)]
    done = threading.Event()

    def writer():
        try:
            assert services.events_store(events=events) == 25
            done.set()
        finally:
            connections.close_all()

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [services.ROLLUP_FENCE_KEY])
    thread = threading.Thread(target=writer)
    try:
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM metering_event")
            assert cursor.fetchone()[0] == 0
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [services.ROLLUP_FENCE_KEY])
        thread.join(10)
    assert done.is_set()
    assert Event.objects.count() == 25


def test_copy_text_escapes_and_refuses_a_nul():
    from metering.ingest import CleanEvent

    rows = [CleanEvent("a\tb", "1\\2", "n\nm", "2026-01-15T10:00:00+00:00", '{"k": "\\"v\\r"}')]
    text = services._copy_text(rows, received_at="2026-01-20T12:00:00+00:00")
    assert text == 'a\\tb\t1\\\\2\tn\\nm\t2026-01-15T10:00:00+00:00\t{"k": "\\\\"v\\\\r"}\t2026-01-20T12:00:00+00:00\n'
    assert services._copy_text([CleanEvent("a\x00", "1", "n", "t", "{}")], received_at="r") is None


def test_msgspec_raw_keeps_the_properties_text():
    # The stored properties are the object's own JSON text (PostgreSQL reads it into jsonb).
    raw = msgspec.json.decode(b'{"p": {"a": 1.50}}', type=dict[str, msgspec.Raw])["p"]
    assert bytes(raw) == b'{"a": 1.50}'


def test_plain_events_take_the_one_pass_path(monkeypatch):
    """The per-event check runs only for the events that need it (here: the one with a bad timestamp)."""
    import metering.batch

    calls: list[object] = []
    real = metering.batch.event_clean

    def counted(raw, **kw):
        calls.append(raw)
        return real(raw, **kw)

    monkeypatch.setattr(metering.batch, "event_clean", counted)
    body = batch(*[ev(i, properties={"tokens": i, "model": "m"}) for i in range(50)], ev("bad", timestamp="x"))
    checked = batch_check(body, numeric_fields=NUMERIC, now=NOW)
    assert (len(checked.events), len(checked.rejected)) == (50, 1)
    assert [c["event_id"] for c in calls] == ["ebad"]
