"""A real HTTP webhook receiver on loopback for the notification tests. It verifies every delivery with the
official `standardwebhooks` package (a delivery that does not verify is kept and flagged), and answers each
path as told: 200, a failure status, a redirect, `410 Gone`, a `Retry-After`, or no answer in time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.live_server import free_port


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: Any
    complete: bool = True
    """False when the connection ended before the whole body arrived (a sender killed mid-request)."""

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Behaviour:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (longer than the sender's timeout: a timeout)."""


@dataclass
class Receiver:
    port: int
    secrets: dict[str, list[str]] = field(default_factory=dict)
    """Per path, the `whsec_…` secrets any of which must verify a delivery."""
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Delivery]:
        """The complete deliveries to `path`, in order of arrival."""
        with self.lock:
            return [delivery for delivery in self.deliveries if delivery.path == path and delivery.complete]

    def verify(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[bool, Any]:
        for secret in self.secrets.get(path, []):
            try:
                return True, Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
        return False, None


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {key.lower(): value for key, value in self.headers.items()}
            if len(body) < length:
                with receiver.lock:
                    receiver.deliveries.append(Delivery(self.path, headers, body, False, None, complete=False))
                return
            verified, payload = receiver.verify(self.path, body, headers)
            with receiver.lock:
                receiver.deliveries.append(Delivery(self.path, headers, body, verified, payload))
                behaviour = receiver.behaviours.get(self.path, Behaviour())
            if behaviour.delay:
                time.sleep(behaviour.delay)
            self.send_response(behaviour.status)
            for key, value in behaviour.headers.items():
                self.send_header(key, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # http.server's 5 refuses connections under a dispatcher's concurrency

    server = Server(("127.0.0.1", receiver.port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
