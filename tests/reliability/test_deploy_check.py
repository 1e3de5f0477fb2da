"""Production settings pass ``manage.py check --deploy`` with no warning at all (README "Deployment")."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _production_env() -> dict:
    """This process's environment minus what test tooling sets (e.g. DJANGO_ALLOW_ASYNC_UNSAFE, async.E001)."""
    return {k: v for k, v in os.environ.items() if k not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "SECRET_KEY", "DEBUG"}}


def test_check_deploy_is_clean_with_production_settings():
    env = _production_env()
    env.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(64),  # 86 random characters
        ALLOWED_HOSTS="billing.example.com",
        SECURE_SSL_REDIRECT="true",
    )
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output


def test_production_refuses_to_start_without_a_secret_key():
    env = _production_env()
    env.update(DEBUG="false", ALLOWED_HOSTS="billing.example.com")
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
