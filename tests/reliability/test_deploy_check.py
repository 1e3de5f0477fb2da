"""Production settings pass ``manage.py check --deploy`` with no warning at all (README "Deployment")."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _production_env() -> dict:
    """This process's environment minus what test tooling sets (e.g. DJANGO_ALLOW_ASYNC_UNSAFE, async.E001, and the
    test settings module with its DEBUG default)."""
    tooling = {"DJANGO_ALLOW_ASYNC_UNSAFE", "SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}
    return {k: v for k, v in os.environ.items() if k not in tooling}


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
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output


def test_production_refuses_to_start_without_a_secret_key():
    env = _production_env()
    env.update(DEBUG="false", ALLOWED_HOSTS="billing.example.com")
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_debug_is_off_unless_asked_for():
    """With no DEBUG in the environment the project runs with DEBUG false (and so needs a real SECRET_KEY)."""
    env = _production_env()
    env.update(SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="billing.example.com")
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", "from django.conf import settings; print(settings.DEBUG)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
