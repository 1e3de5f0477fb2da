"""Shared helpers for the benchmarks: a dedicated database, Django setup, a real server, percentiles.

Every benchmark uses its own database (``BENCH_DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/
billing_bench``), created and migrated on first use. ``application`` is a WSGI app serving the real URLs plus a
trivial DRF endpoint (``/bench/trivial``) used as the baseline for single-request throughput; gunicorn serves
it as ``bench.common:application``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/billing_bench"


def bench_env() -> dict[str, str]:
    """Environment for the bench process and its server: bench database, throttles out of the way."""
    env = dict(os.environ)
    env["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    if "?" not in env["DATABASE_URL"]:
        env["DATABASE_URL"] += "?conn_max_age=600"  # keep connections across requests (settings default is 0)
    env.setdefault("DJANGO_SETTINGS_MODULE", "billing_project.settings")
    env["DEBUG"] = "false"
    env.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    env["THROTTLE_INGEST"] = "100000000/min"
    env["THROTTLE_READ"] = "100000000/min"
    env["THROTTLE_WRITE"] = "100000000/min"
    env["CONN_MAX_AGE"] = "600"
    env["LOG_LEVEL"] = "ERROR"
    return env


def setup_django() -> None:
    """Point this process at the bench database, create it if needed, migrate, and set Django up."""
    os.environ.update(bench_env())
    url = os.environ["DATABASE_URL"].split("?")[0]
    base, name = url.rsplit("/", 1)
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def timed(fn, repeat: int) -> tuple[float, float]:
    """(p50, p95) in milliseconds of ``repeat`` calls of ``fn`` (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), percentile(samples, 95)


def server_start(port: int, workers: int = 2) -> subprocess.Popen:
    """gunicorn (sync workers) serving ``bench.common:application`` on 127.0.0.1:port; waits until it answers."""
    import requests

    proc = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "bench.common:application",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--backlog",
            "2048",
        ],
        cwd=ROOT,
        env=bench_env(),
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code < 500:
                return proc
        except requests.RequestException:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the bench server did not start")


def server_stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


# --- WSGI app for the bench server: the real URLs plus a trivial DRF endpoint ----------------------------------

_application = None


def _urlpatterns():
    from django.urls import include, path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class TrivialApi(APIView):
        """Authenticated like every endpoint (same key lookup and throttle), does nothing else."""

        required_scope = "ingest"

        def post(self, request):
            return Response({"status": "ok"}, status=201)

    return [path("bench/trivial", TrivialApi.as_view()), path("", include("billing_project.urls"))]


def application(environ, start_response):
    global _application, urlpatterns
    if _application is None:
        from django.conf import settings
        from django.core.wsgi import get_wsgi_application

        _application = get_wsgi_application()
        urlpatterns = _urlpatterns()
        settings.ROOT_URLCONF = "bench.common"
    return _application(environ, start_response)


urlpatterns: list = []
