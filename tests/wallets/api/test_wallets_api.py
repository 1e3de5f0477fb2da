"""API.md "Wallets" endpoints."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.factories.customers import CustomerFactory
from tests.wallets.conftest import assert_ledger_whole
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def wallet(api):
    CustomerFactory(external_id="clay")
    response = api.post(
        "/api/v1/wallets", {"customer": "clay", "name": "Prepaid", "currency": "USD", "conversion_rate": "0.05"}
    )
    assert response.status_code == 201, response.json()
    return response.json()


def test_create_and_get_wallet(api, wallet):
    assert wallet["customer"] == "clay" and wallet["conversion_rate"] == "0.05" and wallet["applies_to"] == "all"
    assert isinstance(wallet["id"], str)
    got = api.get(f"/api/v1/wallets/{wallet['id']}").json()
    assert (got["balance"], got["real_time_balance"]) == ("0", "0")
    listed = api.get("/api/v1/customers/clay/wallets").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == wallet["id"]
    assert api.get("/api/v1/wallets/999999").status_code == 404
    assert api.get("/api/v1/wallets/nope").status_code == 404
    assert api.get("/api/v1/customers/nobody/wallets").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer": "nobody", "currency": "USD"}, "customer"),
        ({"customer": "clay", "currency": "XYZ"}, "currency"),
        ({"customer": "clay", "currency": "KWD"}, "currency"),
        ({"customer": "clay", "currency": "USD", "conversion_rate": "0"}, "conversion_rate"),
        ({"customer": "clay", "currency": "USD", "conversion_rate": "-1"}, "conversion_rate"),
        ({"customer": "clay", "currency": "USD", "applies_to": "some"}, "applies_to"),
    ],
)
def test_create_wallet_bad_input_is_400_naming_the_field(api, body, field):
    CustomerFactory(external_id="clay")
    response = api.post("/api/v1/wallets", body)
    assert response.status_code == 400 and field in response.json(), response.json()


def test_grants_idempotent_and_listed(api, wallet):
    url = f"/api/v1/wallets/{wallet['id']}/grants"
    body = {"credits": "2000", "kind": "promotional", "idempotency_key": "welcome"}
    first = api.post(url, body)
    again = api.post(url, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert first.json()["credits"] == "2000" and first.json()["priority"] == 10
    got = api.get(f"/api/v1/wallets/{wallet['id']}").json()
    assert got["balance"] == "2000"  # granted once
    grants = api.get(url).json()["results"]
    assert [(g["kind"], g["credits"], g["remaining"], g["status"]) for g in grants] == [
        ("promotional", "2000", "2000", "active")
    ]
    ledger = api.get(f"/api/v1/wallets/{wallet['id']}/transactions").json()["results"]
    assert [(e["type"], e["credits"], e["balance_after"], e["grant"]) for e in ledger] == [
        ("grant", "2000", "2000", grants[0]["id"])
    ]
    assert_ledger_whole(Wallet.objects.get(pk=wallet["id"]))


@pytest.mark.parametrize(
    "change",
    [
        {"credits": "2001"},
        {"credits": "20000"},
        {"kind": "paid"},
        {"priority": 1},
        {"name": "Other"},
        {"expires_at": "2099-01-01T00:00:00Z"},
        {"effective_at": "2020-01-01T00:00:00Z"},
    ],
)
def test_grant_idempotency_key_reused_with_another_payload_is_409(api, wallet, change):
    url = f"/api/v1/wallets/{wallet['id']}/grants"
    body = {"credits": "2000", "kind": "promotional", "idempotency_key": "welcome"}
    first = api.post(url, body)
    assert first.status_code == 201
    reused = api.post(url, {**body, **change})
    assert reused.status_code == 409 and "idempotency_key" in reused.json(), reused.json()
    # The same payload again (numbers written differently are the same number): 200 with the first grant.
    again = api.post(url, {**body, "credits": "2000.000"})
    assert again.status_code == 200 and again.json() == first.json()
    assert Wallet.objects.get(pk=wallet["id"]).balance == 2000  # granted once
    assert_ledger_whole(Wallet.objects.get(pk=wallet["id"]))


def test_grant_effective_in_the_past_is_usable_and_expiry_in_the_past_is_400(api, wallet):
    url = f"/api/v1/wallets/{wallet['id']}/grants"
    past = (timezone.now() - timedelta(days=30)).isoformat()
    ok = api.post(url, {"credits": "12.5", "kind": "adjustment", "effective_at": past})
    assert ok.status_code == 201 and ok.json()["credits"] == "12.5"
    bad = api.post(url, {"credits": "5", "kind": "paid", "expires_at": past})
    assert bad.status_code == 400 and "expires_at" in bad.json()
    assert Wallet.objects.get(pk=wallet["id"]).balance == Decimal("12.5")
    assert_ledger_whole(Wallet.objects.get(pk=wallet["id"]))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"credits": "-5", "kind": "paid"}, "credits"),
        ({"credits": "0", "kind": "paid"}, "credits"),
        ({"credits": "abc", "kind": "paid"}, "credits"),
        ({"credits": "NaN", "kind": "paid"}, "credits"),
        ({"kind": "paid"}, "credits"),
        ({"credits": "5", "kind": "plan"}, "kind"),
        ({"credits": "5", "kind": "gift"}, "kind"),
        ({"credits": "5", "kind": "paid", "priority": -1}, "priority"),
        # Outside 2000-01-01..2100-01-01 (core.instants).
        ({"credits": "5", "kind": "paid", "effective_at": "0001-01-01T00:00:00Z"}, "effective_at"),
        ({"credits": "5", "kind": "paid", "effective_at": "1999-12-31T23:59:59Z"}, "effective_at"),
        ({"credits": "5", "kind": "paid", "expires_at": "9999-12-31T23:59:59Z"}, "expires_at"),
        ({"credits": "5", "kind": "paid", "expires_at": "2100-01-01T00:00:01Z"}, "expires_at"),
    ],
)
def test_bad_grants_are_400_naming_the_field(api, wallet, body, field):
    response = api.post(f"/api/v1/wallets/{wallet['id']}/grants", body)
    assert response.status_code == 400 and field in response.json(), response.json()


def test_grants_never_create_invoices_and_schema_documents_wallets(api, wallet):
    from invoicing.models import Invoice

    api.post(f"/api/v1/wallets/{wallet['id']}/grants", {"credits": "100", "kind": "paid"})
    assert not Invoice.objects.exists()
    schema = api.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/wallets/{wallet_id}/grants" in schema.content
