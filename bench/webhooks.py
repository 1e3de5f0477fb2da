"""Webhook delivery benchmark: deliveries per second from one worker process to a local receiver.

    .venv/bin/python -m bench.webhooks [--events 2000] [--endpoints 4] [--threads 8]

N events, each to every endpoint (all pointing at one receiver on 127.0.0.1 that answers 200 at once, in its
own process), are recorded through ``core.outbox.record_event``, then sent by ``deliveries_send_due`` in this
process -- what one Celery worker running ``webhooks.deliveries_send_due`` does: claim, sign, POST, record.
The baseline is the same number of bare POSTs of the same bodies to the same receiver, one connection each
(as the sender opens them), from one thread, in the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.common import setup_django


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 -- the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def serve(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Ok)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


def _receiver() -> tuple[subprocess.Popen, int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.webhooks", "--serve", str(port)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return

    os.environ["WEBHOOKS_ALLOW_PRIVATE_NETWORKS"] = "true"
    os.environ["WEBHOOKS_SEND_THREADS"] = str(args.threads)
    setup_django()
    from django.db import connection, transaction
    from django.utils import timezone

    from core.models import WebhookDelivery
    from core.outbox import record_event
    from customers.models import Customer
    from webhooks import network, services

    proc, port = _receiver()
    try:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE core_webhookdelivery, core_outboxevent, core_webhookendpoint CASCADE")
        for n in range(args.endpoints):
            services.endpoint_create(url=f"http://127.0.0.1:{port}/hook/{n}", events=["customer.created"])
        customer, _ = Customer.objects.get_or_create(
            external_id="bench-webhooks", defaults={"name": "Bench", "currency": "USD"}
        )
        started = time.perf_counter()
        for start in range(0, args.events, 500):
            with transaction.atomic():
                for _ in range(min(500, args.events - start)):
                    record_event("customer.created", customer)
        recorded = time.perf_counter() - started
        total = args.events * args.endpoints
        print(f"recorded {args.events} events x {args.endpoints} endpoints in {recorded:.2f} s")

        started = time.perf_counter()
        summary = services.deliveries_send_due(now=timezone.now())
        took = time.perf_counter() - started
        assert summary.delivered == total, summary.line()
        assert WebhookDelivery.objects.filter(status="delivered").count() == total

        sample = WebhookDelivery.objects.select_related("event", "endpoint").first()
        body = services.event_body(sample.event)
        started = time.perf_counter()
        for _ in range(total):
            network.post(sample.endpoint.url, body=body, headers={}, timeout=10)
        baseline = time.perf_counter() - started

        print(
            f"delivered {total} deliveries in {took:.2f} s: {total / took:,.0f} deliveries/s "
            f"(one worker process, {args.threads} sender threads)"
        )
        print(f"baseline: {total} bare POSTs from one thread in {baseline:.2f} s: {total / baseline:,.0f} POSTs/s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
