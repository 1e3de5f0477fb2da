"""The shared API contract check (shared/contract-check) against a live server of this project.

It checks API.md's shapes (names, types, pagination, errors) over real HTTP, from a separate process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.auth import api_key_create

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT.parent / "shared" / "contract-check" / "run.sh"


@pytest.mark.django_db(transaction=True)
def test_shared_contract_check_passes_against_a_live_server(live_server):
    if not CHECK.exists():
        pytest.skip(f"the shared contract check is not beside this checkout ({CHECK})")
    _, key = api_key_create(name="contract-check")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", str(CHECK), live_server.url, key],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
