"""Property-based fuzz of the whole API from its own OpenAPI schema (schemathesis).

Every operation in ``/api/schema/`` gets a bounded, derandomized set of generated requests (so CI is
deterministic), sent through the WSGI application with an all-scopes key. For every generated input:

- no 5xx (``not_a_server_error``): bad input is a 400 naming the field, unknown objects 404, wrong state 409;
- the response matches what the schema declares (status code, content type, body schema); the PDF
  operation's body is binary and is only held to the 5xx rule.

Half of the examples are pointed at real objects seeded for the test (a plan with a published version, a
feature, a meter, a customer, a subscription, a wallet, the subscription's finalized start invoice, a
credit note), so path parameters reach the views' real code paths, not only their 404s.

Size: 45 operations x 20 examples = 900 requests, about a minute on two cores. Each operation gets its own
key, so the per-key throttles never answer the fuzz.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billing_project.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

MAX_EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
BINARY_CHECKS = [not_a_server_error]


@pytest.fixture
def no_connection_recycling():
    """Keep the test's transaction open across requests, as Django's own test client does.

    The WSGI handler closes "old" connections at each request's start and end; inside the test's
    transaction that would close the connection the test runs in.
    """
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(db, no_connection_recycling):
    """Real objects for path parameters, and a fresh key per operation (so throttles never hit the fuzz)."""
    from core.auth import api_key_create
    from invoicing.models import Invoice
    from invoicing.services import credit_note_issue
    from tests.factories.catalog import FeatureFactory
    from tests.factories.customers import CustomerFactory
    from tests.factories.invoicing import plan_with_api_calls
    from tests.invoicing.helpers import start
    from wallets.services import wallet_create

    now = datetime(2026, 1, 1, tzinfo=UTC)
    version, meter = plan_with_api_calls()
    feature = FeatureFactory(key="fuzz-feature")
    customer = CustomerFactory(external_id="fuzz-customer")
    subscription = start(customer, version.plan, now)
    wallet = wallet_create(customer=customer, currency="USD", name="Fuzz wallet")
    invoice = Invoice.objects.get(subscription=subscription)  # the start invoice: $99 fee, finalized at once
    credit_note = credit_note_issue(invoice=invoice, amount=Decimal("1.00"), reason="fuzz", refund_to="invoice", now=now)
    _, raw = api_key_create(name="fuzz")
    return {
        "key": raw,
        "plan": version.plan.key,
        "feature": feature.key,
        "meter": meter.key,
        "number": version.number,
        "external_id": customer.external_id,
        "subscription_id": str(subscription.pk),
        "wallet_id": str(wallet.pk),
        "invoice_id": str(invoice.pk),
        "credit_note_id": str(credit_note.pk),
        "examples": 0,  # per operation, so which examples are pointed at seeded objects never depends on test order
    }


def _point_at_seeded(case, seeded: dict) -> None:
    """Replace generated path parameters by the seeded objects' identifiers."""
    params = case.path_parameters or {}
    path = case.operation.path
    for name in list(params):
        if name == "key":
            params[name] = (
                seeded["plan"] if path.startswith("/api/v1/plans")
                else seeded["feature"] if path.startswith("/api/v1/features")
                else seeded["meter"]
            )
        elif name in seeded:
            params[name] = seeded[name]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_never_500_and_matches_its_schema(case, seeded):
    seeded["examples"] += 1
    if seeded["examples"] % 2 == 1:
        _point_at_seeded(case, seeded)
    checks = BINARY_CHECKS if case.operation.path.endswith("/pdf") else CHECKS
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {seeded['key']}"}
    case.call_and_validate(checks=checks)
