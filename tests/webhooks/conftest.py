from __future__ import annotations

import pytest

from .receiver import Receiver


@pytest.fixture(autouse=True)
def _private_networks_allowed(settings):
    """The receivers of these tests listen on 127.0.0.1, which production refuses."""
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def receivers():
    """``receivers(script)`` starts a receiver; all are closed at the end of the test."""
    started: list[Receiver] = []

    def start(script=None) -> Receiver:
        receiver = Receiver(script)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.close()
