"""Helpers for the fault tests: threads that each use their own database connection, and a second connection
that kills a backend the way a network drop or a database restart would."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pytest
from django.db import connection, connections


def raw_dsn() -> str:
    """A libpq connection string for the test database, outside Django's connection handling."""
    params = connection.get_connection_params()
    keys = ("host", "port", "user", "password", "dbname")
    return " ".join(f"{k}={params[k]}" for k in keys if params.get(k) not in (None, ""))


def backend_terminate(pid: int) -> None:
    """Terminate a PostgreSQL backend from a second connection (what a dropped connection looks like)."""
    with psycopg.connect(raw_dsn(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def race(*targets: Callable[[], object]) -> list[object]:
    """Run each target in its own thread, all released at once; returns their results (or exceptions)."""
    barrier = threading.Barrier(len(targets))
    results: list[object] = [None] * len(targets)

    def run(i: int, target: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = target()
        except Exception as exc:  # noqa: BLE001  (reported to the test, which asserts on it)
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def keyed_client():
    """A factory of API clients authenticated with an all-scopes key (one client per thread)."""
    from rest_framework.test import APIClient

    from core.auth import api_key_create

    _, raw = api_key_create(name="reliability")

    def make() -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.default_format = "json"
        return client

    return make
