"""Admin smoke tests: meter list/edit with filter rows and preview, read-only event log, unknown customers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from metering.models import MeterRollupState, UsageRollup
from metering.selectors import unknown_customer_event_count
from metering.services import usage_rollup_refresh
from tests.factories.customers import CustomerFactory
from tests.factories.metering import EventFactory, MeterFactory, MeterFilterFactory

pytestmark = pytest.mark.django_db


def test_meter_pages_and_preview(admin_client):
    meter = MeterFactory(key="tokens", event_name="api_call", aggregation="sum", field="tokens")
    MeterFilterFactory(meter=meter, property="model", values=["gpt-4o"])
    EventFactory(customer_external_id="acme", properties={"tokens": 7, "model": "gpt-4o"})
    EventFactory(customer_external_id="acme", properties={"tokens": 5, "model": "o1"})
    assert admin_client.get(reverse("admin:metering_meter_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:metering_meter_change", args=[meter.pk]))
    assert page.status_code == 200 and b"preview" in page.content
    url = reverse("admin:metering_meter_preview", args=[meter.pk])
    response = admin_client.get(url, {"customer": "acme", "start": "2026-01-01 00:00", "end": "2026-02-01 00:00"})
    assert response.status_code == 200
    assert response.context["value"] == "7"  # the o1 event fails the filter
    bad = admin_client.get(url, {"customer": "acme", "start": "2026-02-01 00:00", "end": "2026-01-01 00:00"})
    assert bad.context["value"] is None and bad.context["form"].errors


def test_changing_a_meter_in_the_admin_resets_its_rollup(admin_client):
    meter = MeterFactory(key="calls", event_name="api_call", aggregation="count")
    EventFactory(customer_external_id="acme")
    usage_rollup_refresh(now=datetime(2030, 1, 1, tzinfo=UTC), lag=timedelta(0))
    assert UsageRollup.objects.filter(meter=meter).exists()
    response = admin_client.post(
        reverse("admin:metering_meter_change", args=[meter.pk]),
        {"key": "calls", "name": "Calls", "event_name": "api_call", "aggregation": "count", "field": "", "multiplier": "",
         "filters-TOTAL_FORMS": "1", "filters-INITIAL_FORMS": "0", "filters-MIN_NUM_FORMS": "0", "filters-MAX_NUM_FORMS": "1000",
         "filters-0-property": "model", "filters-0-values": "gpt-4o,o1"},
    )
    assert response.status_code == 302
    assert list(meter.filters.values_list("values", flat=True)) == [["gpt-4o", "o1"]]
    assert not UsageRollup.objects.filter(meter=meter).exists()
    assert not MeterRollupState.objects.filter(meter=meter).exists()


def test_meter_form_applies_the_definition_rules(admin_client):
    response = admin_client.post(
        reverse("admin:metering_meter_add"),
        {"key": "x", "name": "X", "event_name": "e", "aggregation": "sum", "field": "", "multiplier": "",
         "filters-TOTAL_FORMS": "0", "filters-INITIAL_FORMS": "0", "filters-MIN_NUM_FORMS": "0", "filters-MAX_NUM_FORMS": "1000"},
    )
    assert response.status_code == 200
    assert "field" in response.context["adminform"].form.errors


def test_event_log_is_read_only_searchable_and_counts_unknown_customers(admin_client):
    CustomerFactory(external_id="known")
    event = EventFactory(customer_external_id="known", event_id="evt-42", properties={"model": "gpt-4o", "tokens": 3})
    EventFactory(customer_external_id="ghost")
    EventFactory(customer_external_id="ghost")
    EventFactory(customer_external_id="phantom")
    assert unknown_customer_event_count() == 3  # 2 for ghost + 1 for phantom
    url = reverse("admin:metering_event_changelist")
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response.context["unknown_customer_events"] == 3
    assert b"3 events name a customer id" in response.content
    found = admin_client.get(url, {"q": "evt-42"})
    assert list(found.context["cl"].result_list) == [event]
    assert admin_client.get(url, {"event_name": "api_call", "timestamp__year": "2026"}).status_code == 200
    detail = admin_client.get(reverse("admin:metering_event_change", args=[event.pk]))
    assert detail.status_code == 200 and b"gpt-4o" in detail.content
    assert admin_client.get(reverse("admin:metering_event_add")).status_code == 403
    CustomerFactory(external_id="ghost")
    assert unknown_customer_event_count() == 1
