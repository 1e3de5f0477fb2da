"""One grammar for numeric event properties: the ingestion check and the SQL cast agree, poisoned rows are inert.

The ingestion check is ``core.numbers.property_number``; the SQL cast in usage reads and the rollup
is ``metering.selectors.numeric_sql``. Before, ``"5\\u2003"`` passed the check (Python's ``\\s`` and
``Decimal.strip`` know Unicode spaces) and then made every usage read and the rollup fail with
``invalid input syntax for type numeric``; ``"\\u00a05"`` passed and counted as 0.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import DataError, connection, transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.numbers import json_number_fits, property_number, property_pattern
from metering.ingest import _decoder, _encoder
from metering.models import Event, MeterRollupState, UsageRollup
from metering.selectors import meter_usage, numeric_fields_forget, numeric_sql
from metering.services import usage_rollup_refresh
from tests.factories.customers import CustomerFactory
from tests.factories.metering import EventFactory, MeterFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
JAN = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
# The inputs of the original report, and more of the same kind: Unicode spaces, separators, control characters.
POISON = [
    "5\u2003",
    "5\u2028",
    "\u30005",
    "\u00a05",
    "\x1c5",
    "\x855",
    "5\n",
    " 5",
    "5 ",
    "\t5",
    "\u0665",
    "\uff15",
    "1_0",
    "1e1",
    "5\u200b",
    "NaN",
    "Infinity",
    "--5",
    "+-5",
    ".",
    "",
    "5..",
    "1,5",
]
SPACES = "\t\n\x0b\x0c\r \x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2003\u2007\u2028\u2029\u202f\u205f\u3000\u200b\ufeff"


@pytest.fixture(autouse=True)
def _fresh_numeric_fields():
    numeric_fields_forget()
    yield
    numeric_fields_forget()


def sql_number(value_json: str, *, signed: bool) -> Decimal | None:
    """What the usage SQL makes of one stored property (given as JSON text)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {numeric_sql('(%(v)s::jsonb)')}", {"v": value_json, "num_pattern": property_pattern(signed=signed)}
        )
        return cursor.fetchone()[0]


# Text near the grammar's edges: digits with a sign and a point, with Unicode inserted anywhere.
near_numbers = st.builds(
    lambda sign, whole, point, frac, junk, at: (text := f"{sign}{whole}{point}{frac}")[:at] + junk + text[at:],
    st.sampled_from(["", "+", "-"]),
    st.text("0123456789", max_size=22),
    st.sampled_from(["", "."]),
    st.text("0123456789", max_size=14),
    st.one_of(
        st.just(""), st.sampled_from(SPACES), st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
    ),
    st.integers(0, 40),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.one_of(
        st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30), near_numbers
    ),
    signed=st.booleans(),
)
@example(text="99999999999999999999.999999999999", signed=False)  # the largest value: 20 + 12 digits
@example(text="100000000000000000000", signed=False)  # 21 digits: refused
@example(text="-0", signed=False)
@example(text="-0.5", signed=True)
def test_python_check_and_sql_cast_agree_on_any_text(text, signed):
    # Anything the ingestion check accepts, the SQL cast accepts with the same value; anything it refuses,
    # the SQL treats as a missing property (NULL), never as an error.
    expected = property_number(text, signed=signed)
    assert sql_number(json.dumps(text), signed=signed) == expected
    if expected is not None:
        assert text.isascii() and text.strip() == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    number=st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False),
        st.integers(-(10**22), 10**22),
        st.builds(lambda d, e: Decimal(d).scaleb(e), st.integers(-(10**6), 10**6), st.integers(-20, 25)),
    ),
    signed=st.booleans(),
)
@example(number=Decimal("1E+999999999"), signed=True)
@example(number=Decimal("-0.0"), signed=False)
@example(number=Decimal("1.0000000000000"), signed=False)  # 13 places as written: refused by both
def test_python_check_and_sql_cast_agree_on_json_numbers(number, signed):
    # A JSON number as the ingestion decoder reads it (floats as Decimal) and as the insert stores it.
    decoded = _decoder.decode(_encoder.encode(number))
    expected = property_number(decoded, signed=signed)
    stored = _encoder.encode(decoded).decode()
    try:
        with transaction.atomic():
            got = sql_number(stored, signed=signed)
    except DataError:
        # PostgreSQL cannot even hold it in jsonb; ingestion refuses such an event on its own (tested below).
        assert expected is None and not json_number_fits(decoded)
        return
    assert got == expected


def event(api, i, value, *, name="api_call", field="tokens"):
    body = {
        "event_id": f"e{i}",
        "customer": "c1",
        "event_name": name,
        "timestamp": "2026-01-15T10:00:00Z",
        "properties": {field: value},
    }
    return api.post("/api/v1/events", data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("value", POISON)
def test_a_property_outside_the_grammar_is_rejected_at_ingestion(api, value):
    MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    response = event(api, 1, value)
    assert response.status_code == 400, value
    assert "tokens" in response.json()["properties"][0]
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("99999999999999999999", True),  # 20 digits before the point
        ("100000000000000000000", False),  # 21
        ("0.000000000001", True),  # 12 after
        ("0.0000000000001", False),  # 13
        (99999999999999999999, True),
        (100000000000000000000, False),
    ],
)
def test_bounds_are_twenty_digits_before_the_point_and_twelve_after(api, value, ok):
    MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    assert event(api, 1, value).status_code == (201 if ok else 400)


def raw_batch(api, events_json: list[str]):
    body = '{"events": [' + ", ".join(events_json) + "]}"
    return api.post("/api/v1/events/batch", data=body, content_type="application/json")


def test_an_out_of_range_json_number_rejects_its_event_only(api):
    # 1e999999999 cannot be stored by PostgreSQL (jsonb numeric): it used to fail the batch's single insert
    # (a 500, every event lost). Now only that event is rejected, wherever the number is in its properties:
    # an aggregated property by the grammar, any other by the storable bound (1,000 digits each side).
    MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    good = '{"event_id": "ok", "customer": "c1", "event_name": "api_call", "properties": {"tokens": 3}}'
    huge = '{"event_id": "huge", "customer": "c1", "event_name": "api_call", "properties": {"tokens": 1e999999999}}'
    nested = (
        '{"event_id": "nested", "customer": "c1", "event_name": "other", "properties": {"a": [{"b": 1e-999999999}]}}'
    )
    # any double is storable: float noise in a property no meter aggregates costs nothing
    fine = (
        '{"event_id": "fine", "customer": "c1", "event_name": "other", '
        '"properties": {"a": [{"b": 0.30000000000000004, "c": 5e-324, "d": 1.7976931348623157e308}]}}'
    )
    response = raw_batch(api, [good, huge, nested, fine])
    assert response.status_code == 200
    data = response.json()
    assert data["accepted"] == 2
    assert [(r["index"], r["event_id"], list(r["errors"])) for r in data["rejected"]] == [
        (1, "huge", ["properties"]),
        (2, "nested", ["properties"]),
    ]
    assert "'a'[0].'b'" in data["rejected"][1]["errors"]["properties"][0]
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["fine", "ok"]


def test_poisoned_rows_already_stored_never_stop_reads_or_the_rollup(api):
    # Rows written around the API (or before the grammar was strict): they count as a missing property for
    # their meter, and the rollup of every meter and customer goes on. The poisoned meter is created first
    # so the rollup meets it before the others.
    poisoned = MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    latest = MeterFactory(event_name="api_call", aggregation="latest", field="tokens")
    other = MeterFactory(event_name="upload", aggregation="sum", field="bytes")
    for i, value in enumerate(POISON):
        EventFactory(
            customer_external_id="c1",
            event_name="api_call",
            timestamp=T0 + timedelta(minutes=i),
            properties={"tokens": value},
        )
    EventFactory(
        customer_external_id="c1", event_name="api_call", timestamp=T0 - timedelta(hours=1), properties={"tokens": 5}
    )
    EventFactory(customer_external_id="c2", event_name="api_call", timestamp=T0, properties={"tokens": "7"})
    EventFactory(customer_external_id="c1", event_name="upload", timestamp=T0, properties={"bytes": "10.5"})

    def values():
        return (
            meter_usage(meter=poisoned, customer_external_id="c1", start=JAN[0], end=JAN[1]),
            meter_usage(meter=latest, customer_external_id="c1", start=JAN[0], end=JAN[1]),
            meter_usage(meter=poisoned, customer_external_id="c2", start=JAN[0], end=JAN[1]),
            meter_usage(meter=other, customer_external_id="c1", start=JAN[0], end=JAN[1]),
        )

    # c1: only the clean 5 counts (the poisoned values are later but missing, so "latest" is 5 too);
    # c2: 7; uploads: 10.5
    expected = (Decimal(5), Decimal(5), Decimal(7), Decimal("10.5"))
    assert values() == expected  # raw events
    watermark = usage_rollup_refresh(now=datetime(2030, 1, 1, tzinfo=UTC), lag=timedelta(0))
    assert set(MeterRollupState.objects.values_list("last_event_id", flat=True)) == {watermark}  # all advanced
    assert UsageRollup.objects.filter(meter=other).exists()
    assert values() == expected  # from the rollup
    CustomerFactory(external_id="c1")
    response = api.get("/api/v1/customers/c1/usage?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z")
    assert response.status_code == 200
    assert {m["meter"]: m["value"] for m in response.json()["meters"]} == {
        poisoned.key: "5",
        latest.key: "5",
        other.key: "10.5",
    }


def test_a_failing_meter_does_not_stop_the_others(monkeypatch):
    # Should a meter's step still fail on its data (say a sum past its column), the others advance and
    # the failure is reported at the end.
    from django.db import DataError

    from metering import services

    broken = MeterFactory(event_name="api_call", aggregation="sum", field="n")
    fine = MeterFactory(event_name="api_call", aggregation="count")
    EventFactory(customer_external_id="c1", event_name="api_call", timestamp=T0, properties={"n": 1})
    step = services._meter_rollup_step

    def failing(*, meter_id, upto, now):
        if meter_id == broken.id:
            raise DataError("numeric field overflow")
        return step(meter_id=meter_id, upto=upto, now=now)

    monkeypatch.setattr(services, "_meter_rollup_step", failing)
    with pytest.raises(services.RollupFailed, match=broken.key):
        usage_rollup_refresh(now=datetime(2030, 1, 1, tzinfo=UTC), lag=timedelta(0))
    assert UsageRollup.objects.get(meter=fine).event_count == 1
    assert not UsageRollup.objects.filter(meter=broken).exists()
