"""Webhook deliveries end to end: a real HTTP receiver on 127.0.0.1, signatures checked with the
``standardwebhooks`` package (what receivers use), retries, timeouts and rollbacks.

The events are recorded by the services in the transaction of the change; these tests then send what is due
with ``deliveries_send_due(now=...)`` (what ``manage.py deliver_webhooks --now`` and the beat task run).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook

from core.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from customers.models import Customer
from customers.services import customer_create
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from webhooks import services
from webhooks.retry import MAX_ATTEMPTS

pytestmark = pytest.mark.django_db


def _endpoint(api, url: str, events=("*",)) -> dict:
    response = api.post("/api/v1/webhook_endpoints", {"url": url, "events": list(events)})
    assert response.status_code == 201, response.content
    return response.json()


def _verify(secret: str, received) -> dict:
    """What a receiver does: check the signature (and the timestamp's freshness) with the spec's library."""
    return Webhook(secret).verify(received.body, received.headers)


def test_worked_example_customer_and_subscription_deliver_four_signed_events(api, receivers):
    receiver = receivers()
    created = _endpoint(api, receiver.url)
    assert created["secret"].startswith("whsec_") and created["events"] == ["*"] and created["enabled"] is True
    # The secret is shown at creation only.
    assert "secret" not in api.get(f"/api/v1/webhook_endpoints/{created['id']}").json()

    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, name="Platform", amount=Decimal("30.00"))
    assert api.post("/api/v1/customers", {"external_id": "acme", "name": "Acme", "currency": "USD"}).status_code == 201
    response = api.post(
        "/api/v1/subscriptions", {"customer": "acme", "plan": version.plan.key, "start_at": "2026-01-01T00:00:00Z"}
    )
    assert response.status_code == 201, response.content

    summary = services.deliveries_send_due(now=timezone.now())
    assert (summary.delivered, summary.retrying, summary.failed) == (4, 0, 0)
    assert receiver.types() == ["customer.created", "subscription.started", "invoice.created", "invoice.finalized"]
    payloads = [_verify(created["secret"], r) for r in receiver.received]
    customer, subscription, draft, final = (p["data"] for p in payloads)
    assert customer["external_id"] == "acme" and customer["currency"] == "USD"
    assert subscription["id"] == response.json()["id"] and subscription["status"] == "active"
    # The January invoice: a $30.00 fee in advance for the whole month (started on the 1st), no tax.
    assert (draft["status"], draft["number"], draft["total"]) == ("draft", None, "30.00")
    assert final["status"] == "paid" or final["status"] == "finalized"
    assert final["number"] == "INV-000001" and final["total"] == "30.00" and len(final["lines"]) == 1
    # Each delivery has its own id, the same one the log shows.
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(set(ids)) == 4
    log = api.get(f"/api/v1/webhook_endpoints/{created['id']}/deliveries").json()
    assert log["count"] == 4
    assert {row["webhook_id"] for row in log["results"]} == set(ids)
    assert {(row["status"], row["attempts"], row["last_status_code"]) for row in log["results"]} == {
        ("delivered", 1, 200)
    }


def test_worked_example_500_500_200_is_delivered_on_the_third_try_with_the_same_id(api, receivers):
    receiver = receivers([500, 500, 200])
    created = _endpoint(api, receiver.url, events=["customer.created"])
    customer_create(external_id="retry-me", name="Retry", currency="USD")
    t0 = timezone.now()

    first = services.deliveries_send_due(now=t0)
    assert (first.delivered, first.retrying) == (0, 1)
    delivery = WebhookDelivery.objects.get()
    # First retry after 5 s, stretched or shrunk by at most 10 %: between 4.5 s and 5.5 s later.
    assert timedelta(seconds=4.5) <= delivery.next_attempt_at - t0 <= timedelta(seconds=5.5)
    assert services.deliveries_send_due(now=t0 + timedelta(seconds=4)).tried == 0  # not due yet

    second = services.deliveries_send_due(now=t0 + timedelta(seconds=6))
    assert second.retrying == 1
    delivery.refresh_from_db()
    # Second retry 5 min (+-10 %) after the second try.
    assert timedelta(minutes=4.5) <= delivery.next_attempt_at - (t0 + timedelta(seconds=6)) <= timedelta(minutes=5.5)

    third = services.deliveries_send_due(now=t0 + timedelta(minutes=6))
    assert third.delivered == 1
    assert len(receiver.received) == 3
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    for received in receiver.received:
        assert _verify(created["secret"], received)["type"] == "customer.created"
    row = api.get(f"/api/v1/webhook_endpoints/{created['id']}/deliveries").json()["results"][0]
    assert (row["status"], row["attempts"], row["last_status_code"], row["next_attempt_at"]) == (
        "delivered",
        3,
        200,
        None,
    )


def test_a_receiver_that_never_succeeds_is_tried_8_times_over_more_than_24_hours_then_failed(api, receivers):
    receiver = receivers([503])
    _endpoint(api, receiver.url, events=["customer.created"])
    customer_create(external_id="down", name="Down", currency="USD")
    now = timezone.now()
    times = []
    while True:
        services.deliveries_send_due(now=now)
        delivery = WebhookDelivery.objects.get()
        times.append(now)
        if delivery.status != WebhookDelivery.Status.PENDING:
            break
        now = delivery.next_attempt_at
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.attempts == MAX_ATTEMPTS == 8
    assert len(receiver.received) == 8 and len({r.headers["webhook-id"] for r in receiver.received}) == 1
    # The schedule adds up to 27 h 35 min 5 s; with jitter of at most 10 % either way, more than 24 h.
    assert times[-1] - times[0] > timedelta(hours=24)
    # Resending (the admin's action) makes it pending and due now, with the same webhook-id.
    services.deliveries_resend_failed(now=now)
    receiver.script = [200]
    assert services.deliveries_send_due(now=now).delivered == 1
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_a_hanging_receiver_times_out_and_does_not_delay_the_others(api, receivers, settings):
    settings.WEBHOOKS_TIMEOUT_SECONDS = 2
    hanging = receivers(["hang"])
    healthy = receivers([200])
    _endpoint(api, hanging.url, events=["customer.created"])
    _endpoint(api, healthy.url, events=["customer.created"])
    customer_create(external_id="both", name="Both", currency="USD")

    started = time.monotonic()
    summary = services.deliveries_send_due(now=timezone.now())
    took = time.monotonic() - started
    assert (summary.delivered, summary.retrying) == (1, 1)
    # The healthy receiver got its event at once, not after the other's 2 s timeout.
    assert healthy.received[0].at - started < 1.0
    assert 2.0 <= took < 5.0
    stuck = WebhookDelivery.objects.get(endpoint__url=hanging.url)
    assert (stuck.status, stuck.attempts, stuck.last_status_code) == ("pending", 1, None)
    assert stuck.last_error == "timeout: no answer in time"


def test_a_rolled_back_change_sends_nothing(api, receivers):
    receiver = receivers()
    _endpoint(api, receiver.url)
    with pytest.raises(RuntimeError), transaction.atomic():
        Customer.objects.create(external_id="ghost", name="Ghost", currency="USD")
        from core.outbox import record_event

        record_event("customer.created", Customer.objects.get(external_id="ghost"))
        assert OutboxEvent.objects.count() == 1
        raise RuntimeError("the change fails after the event was recorded")
    assert OutboxEvent.objects.count() == 0 and WebhookDelivery.objects.count() == 0
    assert services.deliveries_send_due(now=timezone.now()).tried == 0
    assert receiver.received == []


def test_a_failed_service_call_records_no_event(api, receivers):
    receiver = receivers()
    _endpoint(api, receiver.url)
    customer_create(external_id="dup", name="First", currency="USD")
    response = api.post("/api/v1/customers", {"external_id": "dup", "name": "Second", "currency": "USD"})
    assert response.status_code == 400
    assert list(OutboxEvent.objects.values_list("type", flat=True)) == ["customer.created"]


def test_no_endpoint_records_no_event_and_a_disabled_or_other_type_endpoint_gets_nothing(api, receivers):
    customer_create(external_id="quiet", name="Quiet", currency="USD")
    assert OutboxEvent.objects.count() == 0
    receiver = receivers()
    endpoint = _endpoint(api, receiver.url, events=["invoice.paid"])
    customer_create(external_id="quiet-2", name="Quiet", currency="USD")
    assert OutboxEvent.objects.count() == 0
    api.patch(f"/api/v1/webhook_endpoints/{endpoint['id']}", {"events": ["*"], "enabled": False})
    customer_create(external_id="quiet-3", name="Quiet", currency="USD")
    assert OutboxEvent.objects.count() == 0


def test_a_rolled_secret_signs_with_both_for_24_hours(api, receivers):
    receiver = receivers()
    created = _endpoint(api, receiver.url, events=["customer.created"])
    endpoint = WebhookEndpoint.objects.get(pk=created["id"])
    now = timezone.now()
    rolled = services.endpoint_secret_roll(endpoint=endpoint, now=now)
    assert rolled.secret != created["secret"]
    customer_create(external_id="roll", name="Roll", currency="USD")
    services.deliveries_send_due(now=timezone.now())
    received = receiver.received[0]
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    # A receiver with either secret accepts it.
    assert _verify(created["secret"], received)["type"] == "customer.created"
    assert _verify(rolled.secret, received)["type"] == "customer.created"
    # After 24 h only the new secret signs.
    assert services.endpoint_secrets(rolled, at=now + timedelta(hours=24, seconds=1)) == [rolled.secret]


def test_deliver_webhooks_command_sends_what_is_due_as_of_now(api, receivers):
    receiver = receivers([500, 200])
    _endpoint(api, receiver.url, events=["customer.created"])
    customer_create(external_id="cmd", name="Cmd", currency="USD")
    now = timezone.now()
    from io import StringIO

    out = StringIO()
    call_command("deliver_webhooks", "--now", now.isoformat(), stdout=out)
    assert "tried=1 delivered=0 retrying=1" in out.getvalue()
    out = StringIO()
    call_command("deliver_webhooks", "--now", (now + timedelta(minutes=1)).isoformat(), stdout=out)
    assert "tried=1 delivered=1" in out.getvalue()


def test_an_endpoint_pointing_at_a_private_address_is_refused_unless_allowed(api, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    settings.DEBUG = False
    for url in (
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://100.64.0.1/hook",
        "ftp://example.com/hook",
    ):
        response = api.post("/api/v1/webhook_endpoints", {"url": url, "events": ["*"]})
        assert response.status_code == 400 and "url" in response.json(), (url, response.content)
    response = api.post("/api/v1/webhook_endpoints", {"url": "https://93.184.216.34/hook", "events": ["nope"]})
    assert response.status_code == 400 and "events" in response.json()
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    assert api.post("/api/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/h", "events": ["*"]}).status_code == 201


def test_sending_refuses_an_address_that_became_private(api, receivers, settings):
    receiver = receivers()
    _endpoint(api, receiver.url, events=["customer.created"])
    customer_create(external_id="rebind", name="Rebind", currency="USD")
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    services.deliveries_send_due(now=timezone.now())
    delivery = WebhookDelivery.objects.get()
    assert receiver.received == [] and delivery.status == "pending" and delivery.last_status_code is None
    assert "loopback, private or link-local" in delivery.last_error


def test_endpoint_api_crud(api):
    created = _endpoint(api, "http://127.0.0.1:9/a", events=["invoice.paid", "invoice.voided"])
    assert set(created) == {"id", "url", "events", "enabled", "description", "secret"}
    listed = api.get("/api/v1/webhook_endpoints").json()
    assert listed["count"] == 1 and "secret" not in listed["results"][0]
    patched = api.patch(f"/api/v1/webhook_endpoints/{created['id']}", {"description": "ops", "enabled": False})
    assert patched.status_code == 200 and patched.json()["description"] == "ops" and not patched.json()["enabled"]
    assert api.delete(f"/api/v1/webhook_endpoints/{created['id']}").status_code == 204
    assert api.get(f"/api/v1/webhook_endpoints/{created['id']}").status_code == 404
    assert api.get("/api/v1/webhook_endpoints/abc/deliveries").status_code == 404


def test_event_timestamp_in_the_body_is_when_it_happened():
    event = OutboxEvent(type="customer.created", data={"a": 1}, created_at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    assert (
        services.event_body(event) == b'{"type":"customer.created","timestamp":"2026-03-01T12:00:00Z","data":{"a":1}}'
    )


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_deadline(settings):
    """The socket's timeout bounds each read; the try as a whole is bounded too (a byte every 0.3 s would
    otherwise keep the sender for minutes)."""
    import socket
    import threading

    from webhooks import network

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def trickle():
        conn, _ = listener.accept()
        conn.recv(65536)
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                conn.sendall(bytes([byte]))
                time.sleep(0.3)
        except OSError:
            pass
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    answer = network.post(f"http://127.0.0.1:{port}/", body=b"{}", headers={}, timeout=1.5)
    assert answer.status is None and answer.error == "timeout: no answer in time"
    assert time.monotonic() - started < 3
    listener.close()


def test_an_endpoint_batch_past_its_time_budget_gives_the_rest_back_and_the_run_still_sends_all(
    api, receivers, monkeypatch
):
    """With no time budget at all, each round sends one delivery per endpoint and gives the others back, due at
    once: three customers' events still all arrive in one run, in order, each tried once."""
    monkeypatch.setattr(services, "SEND_BUDGET", timedelta(0))
    receiver = receivers()
    _endpoint(api, receiver.url, events=["customer.created"])
    for n in range(3):
        customer_create(external_id=f"budget-{n}", name="Budget", currency="USD")
    summary = services.deliveries_send_due(now=timezone.now())
    assert summary.delivered == 3
    assert [r.json["data"]["external_id"] for r in receiver.received] == ["budget-0", "budget-1", "budget-2"]
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {("delivered", 1)}


def test_a_subscription_start_failing_after_its_events_were_recorded_leaves_none(api, receivers, monkeypatch):
    """``subscription_start`` records subscription.started and invoice.created, then fails while finalizing: the
    whole start rolls back, its events and deliveries with it; the customer's own event (committed before) stays."""
    from customers.models import Subscription
    from invoicing.services import lifecycle

    receiver = receivers()
    _endpoint(api, receiver.url)
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, name="Platform", amount=Decimal("30.00"))
    customer = customer_create(external_id="half", name="Half", currency="USD")

    def broken(**kwargs):
        raise RuntimeError("numbering is down")

    monkeypatch.setattr(lifecycle, "invoice_finalize_number", broken)
    with pytest.raises(RuntimeError):
        lifecycle.subscription_start(
            customer=customer,
            plan=version.plan,
            start_at=datetime(2026, 1, 1, tzinfo=UTC),
            billing="calendar",
            pinned_version=None,
            now=datetime(2026, 1, 1, tzinfo=UTC),
        )
    assert not Subscription.objects.exists()
    assert list(OutboxEvent.objects.values_list("type", flat=True)) == ["customer.created"]
    services.deliveries_send_due(now=timezone.now())
    assert receiver.types() == ["customer.created"]
