"""Coupons, customers' coupons and one-off invoices through the API (shared/API.md "Coupons and one-off invoices")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.factories.catalog import PlanFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db
D = Decimal


def test_create_get_and_list_coupons(api):
    PlanFactory(key="plan-b")
    body = {"code": "LAUNCH10", "name": "Launch", "kind": "fixed", "amount": "10.00", "currency": "USD"}
    created = api.post("/api/v1/coupons", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json() == {
        "code": "LAUNCH10",
        "name": "Launch",
        "kind": "fixed",
        "amount": "10.00",
        "currency": "USD",
        "percentage": None,
        "duration": "once",
        "periods": None,
        "plans": [],
        "expires_at": None,
        "created_at": created.json()["created_at"],
    }
    pct = {"code": "B10", "kind": "percentage", "percentage": "10", "duration": "repeating", "periods": 3}
    second = api.post("/api/v1/coupons", {**pct, "plans": ["plan-b"]}, format="json").json()
    assert (second["percentage"], second["periods"], second["plans"], second["amount"]) == ("10", 3, ["plan-b"], None)
    assert api.get("/api/v1/coupons/B10").json()["name"] == "B10"  # the code when no name is given
    assert api.get("/api/v1/coupons/NOPE").status_code == 404
    listed = api.get("/api/v1/coupons").json()
    assert listed["count"] == 2 and [c["code"] for c in listed["results"]] == ["B10", "LAUNCH10"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "percentage", "percentage": "0"}, "percentage"),
        ({"kind": "percentage", "percentage": "100.5"}, "percentage"),
        ({"kind": "percentage", "percentage": "-5"}, "percentage"),
        ({"kind": "fixed", "amount": "10.00"}, "currency"),
        ({"kind": "fixed", "currency": "USD"}, "amount"),
        ({"kind": "percentage", "percentage": "5", "duration": "repeating"}, "periods"),
        ({"kind": "percentage", "percentage": "5", "plans": ["no-such-plan"]}, "plans"),
        ({"kind": "percentage", "percentage": 5.5}, "percentage"),
        ({"kind": "bogus"}, "kind"),
    ],
)
def test_bad_coupon_is_400_naming_the_field(api, body, field):
    response = api.post("/api/v1/coupons", {"code": "X1", **body}, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()


def test_duplicate_code_is_400(api):
    body = {"code": "DUP", "kind": "percentage", "percentage": "5"}
    assert api.post("/api/v1/coupons", body, format="json").status_code == 201
    response = api.post("/api/v1/coupons", body, format="json")
    assert response.status_code == 400 and "code" in response.json()


def test_apply_to_customer_then_invoice_shows_discount_and_coupons(api):
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=D("60.00"))
    customer = CustomerFactory(external_id="buyer")
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=D("20")))
    api.post("/api/v1/coupons", {"code": "W100", "kind": "fixed", "amount": "100", "currency": "USD"}, format="json")
    applied = api.post("/api/v1/customers/buyer/coupons", {"coupon": "W100"}, format="json")
    assert applied.status_code == 201, applied.json()
    assert {k: applied.json()[k] for k in ("coupon", "remaining_amount", "remaining_periods", "status")} == {
        "coupon": "W100",
        "remaining_amount": "100.00",
        "remaining_periods": None,
        "status": "active",
    }
    sub = start(customer, version.plan, utc(2026, 1, 1))
    [jan] = invoices_of(sub)
    body = api.get(f"/api/v1/invoices/{jan.pk}").json()
    # 60.00 - 60.00 discount = 0.00, no tax on nothing; 40.00 left on the coupon.
    assert (body["kind"], body["subtotal"], body["discount"], body["tax"], body["total"]) == (
        "subscription",
        "60.00",
        "60.00",
        "0.00",
        "0.00",
    )
    assert body["coupons"] == [
        {"coupon": "W100", "amount": "60.00", "explanation": "W100: $100.00 fixed, once; $40.00 left"}
    ]
    assert body["lines"][0]["discount"] == "60.00"
    [listed] = api.get("/api/v1/customers/buyer/coupons").json()["results"]
    assert (listed["remaining_amount"], listed["status"]) == ("40.00", "active")
    # Applying the once coupon again, an unknown coupon, an unknown customer.
    again = api.post("/api/v1/customers/buyer/coupons", {"coupon": "W100"}, format="json")
    assert again.status_code == 400 and "coupon" in again.json()
    unknown = api.post("/api/v1/customers/buyer/coupons", {"coupon": "NOPE"}, format="json")
    assert unknown.status_code == 400 and "coupon" in unknown.json()
    assert api.post("/api/v1/customers/nobody/coupons", {"coupon": "W100"}, format="json").status_code == 404


def test_fixed_coupon_in_another_currency_is_400(api):
    CustomerFactory(external_id="euro", currency="EUR")
    api.post("/api/v1/coupons", {"code": "USD5", "kind": "fixed", "amount": "5", "currency": "USD"}, format="json")
    response = api.post("/api/v1/customers/euro/coupons", {"coupon": "USD5"}, format="json")
    assert response.status_code == 400 and "coupon" in response.json()


def test_expired_coupon_is_400(api):
    CustomerFactory(external_id="late")
    body = {"code": "OLD", "kind": "percentage", "percentage": "5", "expires_at": "2020-01-01T00:00:00Z"}
    assert api.post("/api/v1/coupons", body, format="json").status_code == 201
    response = api.post("/api/v1/customers/late/coupons", {"coupon": "OLD"}, format="json")
    assert response.status_code == 400 and "coupon" in response.json()


def test_one_off_invoice_worked_example(api):
    customer = CustomerFactory(external_id="onboard")
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=D("20")))
    api.post("/api/v1/coupons", {"code": "ALL10", "kind": "percentage", "percentage": "10"}, format="json")
    api.post("/api/v1/customers/onboard/coupons", {"coupon": "ALL10"}, format="json")
    body = {"customer": "onboard", "currency": "USD", "lines": [{"description": "Onboarding", "amount": "500.00"}]}
    response = api.post("/api/v1/invoices", body, format="json")
    assert response.status_code == 201, response.json()
    invoice = response.json()
    # One line 500.00, VAT 20% = 100.00: total 600.00; numbered (finalize defaults to true); no coupon.
    assert (invoice["kind"], invoice["subtotal"], invoice["discount"], invoice["tax"], invoice["total"]) == (
        "one_off",
        "500.00",
        "0.00",
        "100.00",
        "600.00",
    )
    assert invoice["status"] == "finalized" and invoice["number"].startswith("INV-") and invoice["subscription"] is None
    assert invoice["coupons"] == [] and invoice["lines"][0]["kind"] == "one_off"
    assert invoice["lines"][0]["quantity"] == "1"
    [coupon] = api.get("/api/v1/customers/onboard/coupons").json()["results"]
    assert coupon["status"] == "active" and coupon["remaining_periods"] == 1  # untouched
    pdf = api.get(f"/api/v1/invoices/{invoice['id']}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_one_off_draft_then_finalized_by_hand(api):
    CustomerFactory(external_id="hand")
    body = {
        "customer": "hand",
        "lines": [
            {"description": "Workshop", "amount": "250.00", "quantity": "2"},
            {"description": "Travel", "amount": "0"},
        ],
        "finalize": False,
    }
    draft = api.post("/api/v1/invoices", body, format="json").json()
    # 2 x 250.00 = 500.00 and 0.00: total 500.00, a draft without number.
    assert (draft["status"], draft["number"], draft["total"]) == ("draft", None, "500.00")
    done = api.post(f"/api/v1/invoices/{draft['id']}/finalize").json()
    assert done["status"] == "finalized" and done["number"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer": "oneoff", "lines": []}, "lines"),
        ({"customer": "oneoff", "lines": [{"description": "X", "amount": "-1.00"}]}, "lines"),
        ({"customer": "oneoff", "lines": [{"description": "X", "amount": "1", "quantity": "0"}]}, "lines"),
        ({"customer": "oneoff", "lines": [{"description": "", "amount": "1"}]}, "lines"),
        ({"customer": "oneoff", "lines": [{"description": "X"}]}, "lines"),
        ({"customer": "oneoff", "currency": "EUR", "lines": [{"description": "X", "amount": "1"}]}, "currency"),
        ({"customer": "nobody", "lines": [{"description": "X", "amount": "1"}]}, "customer"),
        ({"lines": [{"description": "X", "amount": "1"}]}, "customer"),
    ],
)
def test_bad_one_off_invoice_is_400_naming_the_field(api, body, field):
    CustomerFactory(external_id="oneoff")
    response = api.post("/api/v1/invoices", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()


def test_addons_catalog_and_a_one_off_line_naming_one(api):
    customer = CustomerFactory(external_id="addon-buyer")
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=D("20")))
    created = api.post(
        "/api/v1/addons",
        {"key": "onboarding", "name": "Onboarding", "amount": "300.00", "currency": "USD"},
        format="json",
    )
    assert created.status_code == 201 and created.json()["amount"] == "300.00"
    assert api.get("/api/v1/addons/onboarding").json()["name"] == "Onboarding"
    assert api.get("/api/v1/addons").json()["count"] == 1
    dup = api.post("/api/v1/addons", {"key": "onboarding", "amount": "1", "currency": "USD"}, format="json")
    assert dup.status_code == 400 and "key" in dup.json()
    body = {"customer": "addon-buyer", "lines": [{"addon": "onboarding", "quantity": "2"}]}
    invoice = api.post("/api/v1/invoices", body, format="json").json()
    # 2 x 300.00 = 600.00, VAT 20% = 120.00, total 720.00; the line takes the add-on's name.
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == ("600.00", "120.00", "720.00")
    assert (
        invoice["lines"][0]["description"] == "Onboarding" and invoice["lines"][0]["details"]["addon"] == "onboarding"
    )
    unknown = api.post("/api/v1/invoices", {"customer": "addon-buyer", "lines": [{"addon": "nope"}]}, format="json")
    assert unknown.status_code == 400 and "lines" in unknown.json()
