"""Fault: the database connection drops in the middle of a batch ingestion.

The connection is killed from a second connection (``pg_terminate_backend``) just before the batch's one
write into ``metering_event`` runs (its COPY). What must hold: the client gets an error for the whole batch (503 with
Retry-After, nothing stored: the batch is one statement, so there is no half-stored batch), and a retry of
the same batch stores each event exactly once.
"""

from __future__ import annotations

import pytest
from django.db import close_old_connections, connection

from metering.models import Event

from .conftest import backend_terminate

BATCH = [
    {
        "event_id": f"drop-{i}",
        "customer": "drop-customer",
        "event_name": "api_call",
        "timestamp": "2026-01-15T10:00:00Z",
        "properties": {"tokens": i},
    }
    for i in range(40)
]


@pytest.mark.django_db(transaction=True)
def test_connection_killed_at_the_insert_fails_the_whole_batch_and_a_retry_stores_each_event_once(keyed_client):
    api = keyed_client()
    killed = []

    def kill_at_event_insert(execute, sql, params, many, context):
        # The batch's one write: a COPY (a fresh batch) or the INSERT (duplicates, small batches).
        if not killed and sql.lstrip().startswith(("INSERT INTO metering_event", "COPY metering_event")):
            killed.append(context["connection"].connection.info.backend_pid)
            backend_terminate(killed[0])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(kill_at_event_insert):
        response = api.post("/api/v1/events/batch", {"events": BATCH})
    assert killed, "the fault was not injected: no write into metering_event ran"
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "1"
    assert response.json()["code"] == "unavailable"
    # The WSGI handler drops the dead connection at the end of the request (the test client does not).
    close_old_connections()
    assert Event.objects.count() == 0  # nothing of the failed batch was stored

    retry = api.post("/api/v1/events/batch", {"events": BATCH})
    assert retry.status_code == 200, retry.content
    assert retry.json() == {"accepted": 40, "duplicates": 0, "rejected": []}
    again = api.post("/api/v1/events/batch", {"events": BATCH})
    # A second retry (the client did not see the first retry's answer) is harmless: 40 duplicates.
    assert again.json() == {"accepted": 0, "duplicates": 40, "rejected": []}
    assert Event.objects.filter(customer_external_id="drop-customer").count() == 40
    assert Event.objects.values("event_id").distinct().count() == 40
