"""The webhook admin: a new endpoint's secret shown once, rolling a secret, the delivery log and its resend
actions (Finance admin only), alerts with their triggers, and the alerts on the customer 360 page."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from backoffice.roles import FINANCE_ADMIN, FINANCE_VIEWER, roles_sync
from core.models import WebhookDelivery, WebhookEndpoint
from customers.services import customer_create
from tests.factories.customers import CustomerFactory
from tests.factories.metering import MeterFactory
from webhooks import services
from webhooks.alerts import alert_create
from webhooks.models import AlertTrigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def login(client):
    roles_sync()

    def _login(role: str):
        user = User.objects.create_user(role.lower().replace(" ", "-"), password="pw-role-123", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return client

    return _login


def test_a_new_endpoint_shows_its_secret_once(login):
    client = login(FINANCE_ADMIN)
    response = client.post(
        reverse("admin:core_webhookendpoint_add"),
        {"url": "http://127.0.0.1:9/hook", "events": ["invoice.paid", "invoice.voided"], "enabled": "on"},
    )
    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert endpoint.secret in response.content.decode() and endpoint.events == ["invoice.paid", "invoice.voided"]
    page = client.get(reverse("admin:core_webhookendpoint_change", args=[endpoint.pk])).content.decode()
    assert endpoint.secret not in page and "shown once" in page


def test_the_admin_refuses_an_unknown_event_or_a_private_address(login, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    client = login(FINANCE_ADMIN)
    response = client.post(reverse("admin:core_webhookendpoint_add"), {"url": "http://10.0.0.1/x", "events": ["*"]})
    assert response.status_code == 200 and "private" in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0


def test_rolling_a_secret_shows_the_new_one_and_keeps_the_old_one_24_hours(login):
    endpoint = services.endpoint_create(url="http://127.0.0.1:9/hook", events=["*"])
    old = endpoint.secret
    client = login(FINANCE_ADMIN)
    response = client.post(
        reverse("admin:core_webhookendpoint_changelist"),
        {"action": "roll_secret", "_selected_action": [endpoint.pk]},
    )
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.previous_secret == old
    assert endpoint.secret in response.content.decode() and old not in response.content.decode()
    assert services.endpoint_secrets(endpoint, at=timezone.now()) == [endpoint.secret, old]


def _failed_delivery() -> WebhookDelivery:
    services.endpoint_create(url="http://127.0.0.1:9/hook", events=["customer.created"])
    customer_create(external_id="logged", name="Logged", currency="USD")
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="failed", attempts=8, last_status_code=500, last_response="upstream exploded", next_attempt_at=None
    )
    return delivery


def test_delivery_log_lists_status_tries_code_and_answer_and_a_finance_admin_resends(login):
    delivery = _failed_delivery()
    client = login(FINANCE_ADMIN)
    page = client.get(reverse("admin:core_webhookdelivery_changelist")).content.decode()
    assert "customer.created" in page and "upstream exploded" in page and "Resend every failed delivery" in page
    client.post(
        reverse("admin:core_webhookdelivery_changelist"),
        {"action": "resend_all_failed", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0) and delivery.next_attempt_at is not None


def test_a_finance_viewer_reads_the_log_but_cannot_resend(login):
    delivery = _failed_delivery()
    client = login(FINANCE_VIEWER)
    page = client.get(reverse("admin:core_webhookdelivery_changelist"))
    assert page.status_code == 200 and "Resend" not in page.content.decode()
    client.post(
        reverse("admin:core_webhookdelivery_changelist"),
        {"action": "resend", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    # Nothing secret on any page a viewer can open.
    endpoint = delivery.endpoint
    for url in (
        reverse("admin:core_webhookdelivery_change", args=[delivery.pk]),
        reverse("admin:core_webhookendpoint_change", args=[endpoint.pk]),
        reverse("admin:core_webhookendpoint_changelist"),
    ):
        assert endpoint.secret not in client.get(url).content.decode()


def test_alerts_admin_creates_an_alert_and_the_customer_page_shows_its_triggers(login):
    customer = CustomerFactory(external_id="c360", name="Three Sixty")
    meter = MeterFactory(key="calls")
    client = login(FINANCE_ADMIN)
    response = client.post(
        reverse("admin:webhooks_alert_add"),
        {
            "customer": customer.pk,
            "name": "Calls",
            "kind": "usage",
            "meter": meter.pk,
            "levels": "1000, 3000",
            "recurring": "2500",
            "triggers-TOTAL_FORMS": "0",
            "triggers-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    alert = customer.alerts.get()
    assert alert.thresholds == [
        {"value": "1000", "recurring": False},
        {"value": "3000", "recurring": False},
        {"value": "2500", "recurring": True},
    ]
    AlertTrigger.objects.create(
        alert=alert,
        threshold=Decimal(3000),
        value=Decimal(3200),
        period_start=datetime(2026, 1, 1, tzinfo=UTC),
        triggered_at=datetime(2026, 1, 9, tzinfo=UTC),
    )
    page = client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()
    assert "Usage and spend alerts" in page and "3,000 reached (3,200" in page


def test_spend_alert_form_refuses_a_meter(login):
    customer = CustomerFactory()
    meter = MeterFactory()
    client = login(FINANCE_ADMIN)
    response = client.post(
        reverse("admin:webhooks_alert_add"),
        {
            "customer": customer.pk,
            "name": "Spend",
            "kind": "spend",
            "meter": meter.pk,
            "levels": "100",
            "triggers-TOTAL_FORMS": "0",
            "triggers-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200 and "not a meter" in response.content.decode()
    assert not customer.alerts.exists()
    alert_create(customer=customer, name="ok", kind="spend", thresholds=[{"value": Decimal(1)}])
