"""Pure parts: Standard Webhooks signatures (checked against the ``standardwebhooks`` package receivers use) and
the retry schedule (hypothesis over the jitter draws)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from webhooks.retry import DELAYS, JITTER, MAX_ATTEMPTS, retry_delay
from webhooks.signing import SECRET_PREFIX, secret_bytes, secret_new, signature, signature_header


@given(body=st.text(max_size=500), msg=st.text(alphabet="abcdef0123456789", min_size=1, max_size=32))
def test_our_signature_is_the_standard_librarys(body, msg):
    secret = secret_new()
    now = int(time.time())
    ours = signature(secret=secret, msg_id=f"msg_{msg}", timestamp=now, body=body.encode())
    assert ours == Webhook(secret).sign(f"msg_{msg}", datetime.fromtimestamp(now, tz=UTC), body)


def test_a_json_body_verifies_and_a_tampered_one_does_not():
    secret = secret_new()
    assert secret.startswith(SECRET_PREFIX) and len(secret_bytes(secret)) == 24
    body = b'{"type":"invoice.paid","timestamp":"2026-03-01T00:00:00Z","data":{"id":"1"}}'
    now = int(time.time())
    other = secret_new()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": signature_header(secrets_=[other, secret], msg_id="msg_1", timestamp=now, body=body),
    }
    assert Webhook(secret).verify(body, headers)["data"] == {"id": "1"}
    assert Webhook(other).verify(body, headers)["type"] == "invoice.paid"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b'"1"', b'"2"'), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_new()).verify(body, headers)


@given(draws=st.lists(st.floats(min_value=0, max_value=0.999999), min_size=MAX_ATTEMPTS - 1, max_size=MAX_ATTEMPTS - 1))
def test_the_schedule_spans_more_than_24_hours_for_any_jitter(draws):
    waits = [retry_delay(n, rand=r) for n, r in enumerate(draws, start=1)]
    assert all(w is not None for w in waits)
    for n, wait in enumerate(waits):
        assert DELAYS[n] * (1 - JITTER) <= wait <= DELAYS[n] * (1 + JITTER)
    # 5 s + 5 min + 30 min + 2 h + 5 h + 10 h + 10 h = 27 h 35 min 5 s; at -10 % each: 24 h 49 min 34.5 s.
    assert sum(waits, timedelta()) >= timedelta(hours=24, minutes=49, seconds=34)
    assert retry_delay(MAX_ATTEMPTS, rand=0.5) is None and MAX_ATTEMPTS >= 5


def test_without_jitter_the_schedule_is_the_documented_one():
    waits = [retry_delay(n, rand=0.5) for n in range(1, MAX_ATTEMPTS)]
    assert waits == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
    ]
    assert sum(waits, timedelta()) == timedelta(hours=27, minutes=35, seconds=5)
