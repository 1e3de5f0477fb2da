"""Hot statements sent as server-side prepared statements: parsed and planned once per connection.

Django's PostgreSQL backend binds parameters on the client (psycopg's ``ClientCursor``) and never prepares, so
every statement is parsed and planned on every execution. For the few statements a billing run sends for every
period boundary (the customer and subscription locks), planning was three quarters of their server time
(``docs/metering.md``, the invoice run: 1.1 ms planning beside 0.26 ms execution for the customer lock).
:func:`prepared_cursor` gives a cursor that binds on the server and prepares each statement on first use on its
connection (psycopg's ``prepare_threshold = 0`` for that cursor's statements only: Django's own cursors still
never prepare). Statements sent through it must have a fixed text (values only as parameters).

Connection poolers that reuse a server connection between clients per transaction (PgBouncer in transaction
mode before 1.21, or without ``max_prepared_statements``) cannot keep prepared statements: set
``DATABASE_PREPARED_STATEMENTS=false`` there and these statements are sent like any other (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.utils import CursorDebugWrapper


class _LoggedCursor(CursorDebugWrapper):
    """Logged like Django's own cursors; the statement as written (``%s`` placeholders), since a prepared
    statement is sent by name and psycopg keeps no text of it to read back."""

    def debug_sql(self, sql=None, params=None, use_last_executed_query=False, many=False):
        return super().debug_sql(sql, params, use_last_executed_query=False, many=many)


@contextmanager
def prepared_cursor() -> Iterator:
    """A Django cursor (logged like any other in ``connection.queries`` and test query counts) whose
    statements are prepared on the server on first use; a plain cursor when prepared statements are off."""
    if not settings.DATABASE_PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    raw = connection.connection
    inner = ServerBindingCursor(raw)
    saved, raw.prepare_threshold = raw.prepare_threshold, 0
    wrapped = _LoggedCursor(inner, connection) if connection.queries_logged else connection.make_cursor(inner)
    try:
        yield wrapped
    finally:
        raw.prepare_threshold = saved
        inner.close()
