"""A real Celery worker on Redis for tests about tasks (started as a subprocess on the test database).

Usage: a ``transaction=True`` test takes the ``celery_worker`` fixture; tasks sent with ``.delay()`` go
through Redis to the worker process, which reads and writes the same PostgreSQL test database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
BROKER = os.environ.get("CELERY_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")


def redis_available() -> bool:
    try:
        import redis

        redis.Redis.from_url(BROKER, socket_connect_timeout=1).ping()
        return True
    except Exception:  # noqa: BLE001
        return False


def database_url_for(settings_dict: dict) -> str:
    host = settings_dict.get("HOST") or ""
    user = settings_dict.get("USER") or "postgres"
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{quote(user)}:{quote(password)}@" if password else f"{quote(user)}@"
    if host.startswith("/"):
        return f"postgres://{auth}{quote(host, safe='')}/{settings_dict['NAME']}"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


class WorkerProcess:
    def __init__(self, queue: str, env: dict, concurrency: int = 1):
        self.queue = queue
        self.env = env
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None
        self.log = ROOT / "artifacts" / f"celery-{queue}.log"

    def start(self) -> None:
        self.log.parent.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "billing_project",
                "worker",
                "-Q",
                self.queue,
                "-c",
                str(self.concurrency),
                "-P",
                "prefork",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
                "-n",
                f"{self.queue}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.log.exists() and b"ready." in self.log.read_bytes():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError("celery worker did not become ready in 60 s")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its pool children): no chance to clean up."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _forget_routing(app) -> None:
    """Drop the routing Celery cached from an earlier queue name, so ``.delay()`` goes to this worker's queue."""
    for name in ("default_queue", "queues", "router", "default_exchange"):
        app.amqp.__dict__.pop(name, None)
    app._pool = None  # a new connection pool for the new broker settings (the old one is left to the GC)
    app.amqp._producer_pool = None


@pytest.fixture
def celery_worker(transactional_db, settings):
    """Start a worker on a fresh queue; the Celery app in this process sends to it through Redis."""
    if not redis_available():
        pytest.fail(f"Redis is required for Celery worker tests ({BROKER})")
    from django.db import connection

    from billing_project.celery import app

    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url_for(connection.settings_dict),
        CELERY_BROKER_URL=BROKER,
        CELERY_TASK_ALWAYS_EAGER="false",
        CELERY_TASK_DEFAULT_QUEUE=queue,
    )
    old = {k: app.conf.get(k) for k in ("broker_url", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url=BROKER, task_always_eager=False, task_default_queue=queue)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    _forget_routing(app)
    worker = WorkerProcess(queue, env)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        app.conf.update(old)
        _forget_routing(app)
        import redis

        redis.Redis.from_url(BROKER).delete(queue)
