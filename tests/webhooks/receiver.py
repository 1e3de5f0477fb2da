"""A real HTTP receiver on 127.0.0.1 for webhook tests: answers each request as scripted, records what came.

``Receiver(script)``: ``script`` is a list of answers used in order (the last one repeats): a status code, or
``"hang"`` (read the request, then wait without answering until the test ends or ``release()``).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    def __init__(self, script: list[int | str] | None = None):
        self.script = list(script or [200])
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 -- the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(
                        Received(headers={k.lower(): v for k, v in self.headers.items()}, body=body)
                    )
                    answer = receiver.script[min(len(receiver.received), len(receiver.script)) - 1]
                if answer == "hang":
                    receiver._released.wait(60)
                    return
                self.send_response(int(answer))
                payload = b'{"ok": true}' if int(answer) < 300 else b"receiver says no"
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks?source=ledgerline"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()

    def types(self) -> list[str]:
        return [r.json["type"] for r in self.received]
