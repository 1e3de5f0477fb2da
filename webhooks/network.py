"""Where webhooks may go, and the one HTTP POST that sends them.

Rules (docs/webhooks.md):

* Only ``http``/``https`` URLs. A host that resolves to a loopback, private, link-local, shared (CGNAT),
  multicast, reserved or unspecified address is refused -- when the endpoint is saved (400 ``url``) and again
  at every send, on the addresses resolved then, and the connection goes to the address that was checked, so
  a DNS answer that changes between the check and the connection cannot reach an internal service -- unless
  ``DEBUG`` or ``WEBHOOKS_ALLOW_PRIVATE_NETWORKS`` is true (local development, tests).
* Redirects are never followed (a 3xx is a failed try); the whole try is bounded by ``WEBHOOKS_TIMEOUT_SECONDS``
  (10 s) for connecting and for each read; at most ``RESPONSE_EXCERPT`` characters of the answer are kept.
* What a try records is the status code, the start of the body and a short reason (``timeout``, ``connection
  refused``...): never an exception's text, which could show internal addresses.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

RESPONSE_EXCERPT = 500
USER_AGENT = "Ledgerline-Webhooks/1"


class UnsafeUrl(ValueError):
    """The URL may not receive webhooks (its message is safe to show)."""


def private_networks_allowed() -> bool:
    return bool(settings.DEBUG or getattr(settings, "WEBHOOKS_ALLOW_PRIVATE_NETWORKS", False))


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def url_check(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a URL webhooks may use; raises UnsafeUrl otherwise (no network access)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("Not a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("Only http and https URLs can receive webhooks.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeUrl("The URL must not carry a user name or password.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def addresses_check(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, all public unless private networks are allowed; else UnsafeUrl."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeUrl(f"The host {host} does not resolve.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not private_networks_allowed():
        for address in addresses:
            if not _is_public(address):
                raise UnsafeUrl(
                    f"The host {host} resolves to a loopback, private or link-local address ({address}); "
                    "webhooks are only sent to public addresses."
                )
    return addresses


def endpoint_url_check(url: str) -> None:
    """The check at save time (API and admin): scheme, host, and the addresses it resolves to."""
    _scheme, host, port = url_check(url)
    addresses_check(host, port)


@dataclass(frozen=True)
class Answer:
    """What one try got: ``status`` (None when no answer came), the start of the body, a short reason."""

    status: int | None
    body: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address, not to whatever the host resolves to by then."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` to ``url`` once (no redirects); never raises for network trouble."""
    try:
        scheme, host, port = url_check(url)
        address = addresses_check(host, port)[0]
    except UnsafeUrl as exc:
        # Said without the address it resolved to: the log is read by people who need not know internal addresses.
        private = "private" in str(exc)
        return Answer(
            status=None,
            error="refused: the host resolves to a loopback, private or link-local address"
            if private
            else "refused: " + str(exc).split(" (")[0][:150],
        )
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, port, address, timeout)
    # One deadline for the whole try: a receiver trickling its answer a byte at a time is cut off at ``timeout``
    # (the socket's own timeout only bounds each read).
    expired = threading.Event()
    watchdog = threading.Timer(timeout, _abort, args=(conn, expired))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request(
            "POST",
            target,
            body=body,
            headers={**headers, "Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        response = conn.getresponse()
        excerpt = response.read(RESPONSE_EXCERPT * 4).decode("utf-8", "replace")[:RESPONSE_EXCERPT]
        return Answer(status=response.status, body=excerpt)
    except (OSError, http.client.HTTPException) as exc:
        if isinstance(exc, TimeoutError) or expired.is_set():
            return Answer(status=None, error="timeout: no answer in time")
        if isinstance(exc, ConnectionRefusedError):
            return Answer(status=None, error="connection refused")
        if isinstance(exc, ssl.SSLError):
            return Answer(status=None, error="TLS error")
        return Answer(status=None, error="connection failed")
    finally:
        watchdog.cancel()
        conn.close()


def _abort(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    """The deadline passed: say so, then shut the socket, so the read waiting on it fails at once."""
    expired.set()
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
