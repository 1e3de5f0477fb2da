"""Property-based fuzz of the whole API from its own OpenAPI schema (schemathesis, every check).

Every operation in ``/api/schema/`` gets a bounded, derandomized set of generated requests (so CI is
deterministic), positive and negative, sent through the WSGI application. Every check schemathesis has runs
(the ``--checks all`` set), so for every generated input:

- no 5xx (``not_a_server_error``): bad input is a 400 naming the field, unknown objects 404, wrong state 409;
- the response matches what the schema declares (status code, content type, headers, body schema; the PDF
  operation's body is binary and is held to everything but the body schema);
- the server refuses what the schema refuses (``negative_data_rejection``: ``description: 0``,
  ``offset=null``) and accepts what it accepts (``positive_data_acceptance``: ``"0.0"`` where the schema allows
  it). One refinement, below: a 400 from a domain rule is an accepted answer to schema-valid data;
- authentication is enforced (``ignored_auth``, ``missing_required_header``: the key is given to schemathesis
  as the API's auth, so it can leave it out or spoil it), and so on for the stateful checks.

A schema cannot say that a customer must exist, that a window's ``to`` follows its ``from``, that a payment
is at most what is due, or that a key is not taken yet. Those are domain rules, checked by the services, which
answer ``400`` with an error ``code`` string (``{"customer": [...], "code": "invalid"}``; a field named
``code`` keeps its messages and adds ``detail``). So positive data may get such a 400; a 400 from a
serializer field (no error ``code``: the field's own type, pattern or bounds) is still a schema mismatch.

Half of the examples are pointed at real objects seeded for the test (a plan with a published version, a
feature, a meter, a customer, a subscription, a wallet, the subscription's finalized start invoice, a
credit note), so path parameters reach the views' real code paths, not only their 404s.

Size: 45 operations x 20 examples, about a minute on two cores. Each operation gets its own key, so the
per-key throttles never answer the fuzz.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import load_all_checks
from schemathesis.specs.openapi.checks import positive_data_acceptance, response_schema_conformance

from billing_project.wsgi import application
from core import instants

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

MAX_EXAMPLES = 20
# The answer the exception handler gives when the database refuses a value: never a domain rule.
NOT_STORABLE = "A value is out of range or not storable."
OUT_OF_RANGE = instants.OUT_OF_RANGE


def positive_data_acceptance_or_domain_rule(ctx, response, case):
    """``positive_data_acceptance``, except that a 400 carrying a domain rule's error code is an answer."""
    if response.status_code == 400:
        try:
            body = response.json()
        except ValueError:
            body = None
        if (
            isinstance(body, dict)
            and (isinstance(body.get("code"), str) or "detail" in body)
            and body.get("detail") != NOT_STORABLE
        ):
            return None
        # The date range every period computation needs (2000-01-01..2100-01-01, docs/billing-rules.md): a bound
        # OpenAPI cannot state for a date-time (its field descriptions say it), so it is an answer too.
        if isinstance(body, dict) and body and all(messages == [OUT_OF_RANGE] for messages in body.values()):
            return None
    return positive_data_acceptance(ctx, response, case)


load_all_checks()
CHECKS = [
    check if check is not positive_data_acceptance else positive_data_acceptance_or_domain_rule
    for check in REGISTERED_CHECKS.get_all()
]
# The PDF's body is binary: every check but the body's schema.
BINARY_CHECKS = [check for check in CHECKS if check is not response_schema_conformance]

# The key of the running test: every operation gets a fresh one (per-key throttles), created by ``seeded``.
_current_key: dict[str, str] = {}


@schema.auth(refresh_interval=None)
class ApiKeyAuth:
    """The API's Bearer key, given to schemathesis as auth: it sends it, and leaves it out or spoils it to
    check that the API refuses (401)."""

    def get(self, case, context):
        return _current_key.get("key", "not-yet-created")

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


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
def seeded(db, no_connection_recycling, monkeypatch):
    """Real objects for path parameters, and a fresh key per operation (so throttles never hit the fuzz); the
    per-address bucket of keyless requests is widened too, since the auth checks send many of them."""
    from rest_framework.settings import api_settings

    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "anon", "100000/min")
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
    credit_note = credit_note_issue(
        invoice=invoice, amount=Decimal("1.00"), reason="fuzz", refund_to="invoice", now=now
    )
    _, raw = api_key_create(name="fuzz")
    _current_key["key"] = raw
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
                seeded["plan"]
                if path.startswith("/api/v1/plans")
                else seeded["feature"]
                if path.startswith("/api/v1/features")
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
    if case._has_explicit_auth:  # examples are built before the key exists: give them this test's key
        case.headers["Authorization"] = f"Bearer {seeded['key']}"
    case.call_and_validate(checks=checks)
