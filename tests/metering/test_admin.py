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
        {
            "key": "calls",
            "name": "Calls",
            "event_name": "api_call",
            "aggregation": "count",
            "field": "",
            "multiplier": "",
            "filters-TOTAL_FORMS": "1",
            "filters-INITIAL_FORMS": "0",
            "filters-MIN_NUM_FORMS": "0",
            "filters-MAX_NUM_FORMS": "1000",
            "filters-0-property": "model",
            "filters-0-values": "gpt-4o,o1",
        },
    )
    assert response.status_code == 302
    assert list(meter.filters.values_list("values", flat=True)) == [["gpt-4o", "o1"]]
    assert not UsageRollup.objects.filter(meter=meter).exists()
    assert not MeterRollupState.objects.filter(meter=meter).exists()


def test_meter_form_applies_the_definition_rules(admin_client):
    response = admin_client.post(
        reverse("admin:metering_meter_add"),
        {
            "key": "x",
            "name": "X",
            "event_name": "e",
            "aggregation": "sum",
            "field": "",
            "multiplier": "",
            "filters-TOTAL_FORMS": "0",
            "filters-INITIAL_FORMS": "0",
            "filters-MIN_NUM_FORMS": "0",
            "filters-MAX_NUM_FORMS": "1000",
        },
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


def _meter_post(meter, filters=(), initial=(), **changes):
    """The meter's change form as posted: its fields (with ``changes``), existing filter rows, new filter rows."""
    data = {
        "key": meter.key,
        "name": meter.name,
        "event_name": meter.event_name,
        "aggregation": meter.aggregation,
        "field": meter.field,
        "multiplier": "" if meter.multiplier is None else str(meter.multiplier),
        "filters-TOTAL_FORMS": str(len(initial) + len(filters)),
        "filters-INITIAL_FORMS": str(len(initial)),
        "filters-MIN_NUM_FORMS": "0",
        "filters-MAX_NUM_FORMS": "1000",
    }
    for i, (row, values) in enumerate(list(initial) + list(filters)):
        if hasattr(row, "pk"):
            data.update(
                {
                    f"filters-{i}-id": str(row.pk),
                    f"filters-{i}-meter": str(meter.pk),
                    f"filters-{i}-property": row.property,
                    f"filters-{i}-values": values,
                }
            )
        else:
            data.update({f"filters-{i}-property": row, f"filters-{i}-values": values})
    data.update(changes)
    return data


@pytest.mark.parametrize("used_by", ["published_price", "published_entitlement", "issued_invoice"])
def test_a_meter_in_use_keeps_its_definition(admin_client, used_by):
    """Regression: a meter priced by a published version could change its event name, aggregation or filters in the
    admin, silently re-rating every later invoice of a version that "never changes"."""
    from invoicing.models import Invoice
    from metering.models import Meter
    from tests.factories.catalog import EntitlementFactory, FeatureFactory, PlanVersionFactory, PriceFactory
    from tests.factories.invoicing import InvoiceFactory, InvoiceLineFactory

    meter = MeterFactory(key="tokens", name="Tokens", event_name="api_call", aggregation="sum", field="tokens")
    existing = MeterFilterFactory(meter=meter, property="model", values=["gpt-4o"])
    if used_by == "published_price":
        PriceFactory(plan_version=PlanVersionFactory(published=True), per_unit=True, meter=meter)
    elif used_by == "published_entitlement":
        EntitlementFactory(
            plan_version=PlanVersionFactory(published=True), feature=FeatureFactory(type="metered", meter=meter)
        )
    else:
        InvoiceLineFactory(invoice=InvoiceFactory(status=Invoice.Status.FINALIZED, number="INV-000009"), meter=meter)
    url = reverse("admin:metering_meter_change", args=[meter.pk])
    assert b"Only its name may change" in admin_client.get(url).content

    for field, value in [
        ("key", "tokens-2"),
        ("event_name", "chat"),
        ("aggregation", "max"),
        ("field", "chars"),
        ("aggregation", "sum_with_multiplier"),
    ]:
        response = admin_client.post(url, _meter_post(meter, initial=[(existing, "gpt-4o")], **{field: value}))
        assert response.status_code == 200, field
        errors = response.context["adminform"].form.errors
        assert field in errors and "Cannot change" in errors[field][0], (field, errors)
    # filters: a new row, a changed row, a deleted row are all refused (a formset error naming the filters)
    for post in (
        _meter_post(meter, initial=[(existing, "gpt-4o")], filters=[("tier", "pro")]),
        _meter_post(meter, initial=[(existing, "gpt-4o,o1")]),
        _meter_post(meter, initial=[(existing, "gpt-4o")], **{"filters-0-DELETE": "on"}),
    ):
        response = admin_client.post(url, post)
        assert response.status_code == 200
        errors = " ".join(
            str(e) for fs in response.context["inline_admin_formsets"] for e in fs.formset.non_form_errors()
        )
        assert "Cannot change filters" in errors, errors
    # the name is a label: it may change
    assert (
        admin_client.post(url, _meter_post(meter, initial=[(existing, "gpt-4o")], name="LLM tokens")).status_code == 302
    )
    meter = Meter.objects.get(pk=meter.pk)
    assert (meter.key, meter.name, meter.event_name, meter.aggregation, meter.field) == (
        "tokens",
        "LLM tokens",
        "api_call",
        "sum",
        "tokens",
    )
    assert list(meter.filters.values_list("property", "values")) == [("model", ["gpt-4o"])]


def test_a_meter_only_drafts_use_may_still_change(admin_client):
    from tests.factories.catalog import PlanVersionFactory, PriceFactory
    from tests.factories.invoicing import InvoiceFactory, InvoiceLineFactory

    meter = MeterFactory(key="tokens", event_name="api_call", aggregation="sum", field="tokens")
    PriceFactory(plan_version=PlanVersionFactory(), per_unit=True, meter=meter)  # a draft version
    InvoiceLineFactory(invoice=InvoiceFactory(), meter=meter)  # a draft invoice
    url = reverse("admin:metering_meter_change", args=[meter.pk])
    response = admin_client.post(url, _meter_post(meter, event_name="chat", filters=[("model", "gpt-4o")]))
    assert response.status_code == 302
    meter.refresh_from_db()
    assert meter.event_name == "chat" and meter.filters.count() == 1


def test_meter_filter_rows_are_bounded_in_the_admin(admin_client):
    meter = MeterFactory(key="calls", event_name="api_call", aggregation="count")
    url = reverse("admin:metering_meter_change", args=[meter.pk])
    too_many_values = ",".join(f"v{i}" for i in range(101))
    response = admin_client.post(url, _meter_post(meter, filters=[("model", too_many_values)]))
    assert response.status_code == 200 and b"At most 100 values; got 101." in response.content
    response = admin_client.post(url, _meter_post(meter, filters=[(f"p{i}", "a") for i in range(21)]))
    assert response.status_code == 200 and b"Please submit at most 20 forms." in response.content
    assert not meter.filters.exists()
