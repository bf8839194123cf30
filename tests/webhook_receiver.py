"""A loopback webhook receiver (http.server in a thread) that verifies signatures with its
own HMAC code (not Mediaplane's) and answers what each test scripts."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: What the receiver answers one request with: (status, headers, body).
Answer = tuple[int, dict[str, str], bytes]


def verify(secret: str, header: str, body: bytes) -> bool:
    """The README's check, written out again: t=…,v1=…[,v1=…]; any v1 may match."""
    items = [part.split("=", 1) for part in header.split(",")]
    ts = [v for k, v in items if k == "t"]
    if len(ts) != 1:
        return False
    expected = hmac.new(secret.encode(), ts[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(k == "v1" and hmac.compare_digest(v, expected) for k, v in items)


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.body)
        return doc


@dataclass
class Receiver:
    """Records every POST; ``answer`` decides the reply (default 200)."""

    answer: Callable[[Received], Answer] = lambda r: (200, {}, b"ok")
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                got = Received(self.rfile.read(n), {k.lower(): v for k, v in self.headers.items()})
                with receiver.arrived:
                    receiver.received.append(got)
                    receiver.arrived.notify_all()
                status, headers, body = receiver.answer(got)
                if status == 0:  # hang until the test ends
                    receiver.release.wait(30)
                    return
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the sender stopped reading (a huge body): as it should

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, n: int, timeout: float = 20.0) -> list[Received]:
        """Wait until ``n`` requests have arrived (a condition, not a sleep)."""
        with self.arrived:
            ok = self.arrived.wait_for(lambda: len(self.received) >= n, timeout)
            assert ok, f"{len(self.received)} of {n} webhook requests arrived"
            return list(self.received)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
