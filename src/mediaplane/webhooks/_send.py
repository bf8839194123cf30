"""Sending one delivery: a POST to a checked address, within one deadline, reading at most
a few KiB of the answer, following no redirect; and the loop that sends what is due.

It sends through :class:`mediaplane.intake.GuardedTransport` (as URL imports do): each
connection resolves the host once, checks every address against the public internet and
the operator's ``webhook_allow`` networks, and connects to a checked one (TLS still
verifies the name). Every socket operation ends by the attempt's deadline, so a hanging or slowly
dripping endpoint holds one sender thread for at most ``webhook_timeout_seconds``.
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpcore
import httpx
import structlog

from mediaplane.db import utcnow
from mediaplane.intake import Deadline, GuardedTransport, UrlRefused

from ._model import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from ._retry import next_attempt
from ._service import claim, due, signing_secrets
from ._sign import HEADER, signature_header

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    from mediaplane.config import Settings
    from mediaplane.db import Database

log = structlog.get_logger("mediaplane.webhooks")

#: Bytes of an answer's body read and kept in the log; the rest is never read.
MAX_RESPONSE_BYTES = 4096


def _timed_out() -> Exception:
    # httpx reports it as its own timeout (httpx.ReadTimeout): one path for every timeout
    return httpcore.ReadTimeout("the endpoint took longer than the webhook timeout")


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status (and the start of the body) or an error.

    :param transient: without a status, whether the error is worth a retry (a timeout or a
        connection error: yes; an address the guard refused: no).
    """

    status: int | None
    body: str | None
    error: str | None
    latency_ms: int
    transient: bool = True

    @property
    def kind(self) -> str:
        """``ok``, ``gone`` (410), ``retry`` (timeout, connection, 429, 5xx) or ``fail``."""
        if self.status is None:
            return "retry" if self.transient else "fail"
        if 200 <= self.status < 300:
            return "ok"
        if self.status == 410:
            return "gone"
        if self.status == 429 or self.status >= 500:
            return "retry"
        return "fail"


@dataclass(frozen=True)
class SendLimits:
    allow: tuple[str, ...] = ()
    connect_timeout: float = 3.0
    timeout: float = 10.0

    @classmethod
    def of(cls, settings: Settings) -> SendLimits:
        return cls(
            tuple(settings.webhook_allow),
            settings.webhook_connect_timeout_seconds,
            settings.webhook_timeout_seconds,
        )


def post(url: str, body: bytes, headers: dict[str, str], limits: SendLimits) -> Outcome:
    """POST ``body`` to ``url`` once: no redirect followed, at most
    :data:`MAX_RESPONSE_BYTES` of the answer read, everything by ``limits.timeout``."""
    started = time.monotonic()
    transport = GuardedTransport(limits.allow, Deadline(limits.timeout, _timed_out))
    timeout = httpx.Timeout(limits.timeout, connect=limits.connect_timeout)

    def done(
        status: int | None, text: str | None, error: str | None, transient: bool = True
    ) -> Outcome:
        return Outcome(status, text, error, int((time.monotonic() - started) * 1000), transient)

    try:
        with (
            httpx.Client(transport=transport, timeout=timeout, follow_redirects=False) as client,
            client.stream("POST", url, content=body, headers=headers) as r,
        ):
            head = _read_at_most(r, MAX_RESPONSE_BYTES)
            text = head.decode("utf-8", "replace")
            if r.is_redirect:
                return done(r.status_code, text, "redirect not followed")
            return done(r.status_code, text, None)
    except UrlRefused as exc:
        return done(None, None, f"refused: {exc}", transient=False)
    except httpx.TimeoutException:
        return done(None, None, "timeout")
    except httpx.HTTPError as exc:
        return done(None, None, f"connection error: {type(exc).__name__}")


def _read_at_most(r: httpx.Response, limit: int) -> bytes:
    got = b""
    for chunk in r.iter_raw(chunk_size=limit):
        got += chunk
        if len(got) >= limit:
            break
    return got[:limit]


def request_headers(
    endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: datetime
) -> dict[str, str]:
    body = delivery.body.encode()
    return {
        "Content-Type": "application/json",
        "User-Agent": "Mediaplane-Webhooks/0.1",
        "Mediaplane-Event-Id": delivery.event_id,
        "Mediaplane-Delivery-Id": delivery.id,
        HEADER: signature_header(signing_secrets(endpoint, now), int(now.timestamp()), body),
    }


@dataclass
class RetryPolicy:
    base: float = 10.0
    window: float = 24 * 3600.0
    rng: random.Random | None = None


def record(
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    outcome: Outcome,
    now: datetime,
    policy: RetryPolicy,
) -> None:
    """Write an attempt's outcome onto the delivery (and a 410 onto its endpoint)."""
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.response_status = outcome.status
    delivery.response_body = outcome.body
    delivery.latency_ms = outcome.latency_ms
    delivery.error = outcome.error[:500] if outcome.error else None
    delivery.claimed_until = None
    kind = outcome.kind
    if kind == "ok":
        delivery.status, delivery.next_attempt_at = DeliveryStatus.DELIVERED, None
        delivery.delivered_at = now
        return
    if kind == "retry":
        at = next_attempt(
            delivery.attempts,
            delivery.created_at,
            now,
            base=policy.base,
            window=policy.window,
            rng=policy.rng,
        )
        if at is not None:
            delivery.next_attempt_at = at
            return
    if kind == "gone":
        endpoint.enabled, endpoint.disabled_reason = False, "gone"
    delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None


class Dispatcher:
    """Sends due deliveries from a bounded thread pool; call :meth:`tick` in a loop.

    Each delivery is claimed (one conditional UPDATE) before it is sent, so any number of
    processes may run a dispatcher and none sends a delivery another is sending. At most
    ``per_endpoint`` deliveries per endpoint are in flight in this process, so a slow
    endpoint holds that many threads and no more; the others keep going. They are for
    different objects: an object's deliveries to an endpoint go one at a time, in the
    order of its events (a retry holds back the object's later ones, in every process:
    the due query sees them all).
    """

    def __init__(
        self,
        db: Database,
        limits: SendLimits,
        policy: RetryPolicy,
        *,
        concurrency: int = 16,
        per_endpoint: int = 2,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db, self.limits, self.policy, self.clock = db, limits, policy, clock
        self.concurrency, self.per_endpoint = concurrency, per_endpoint
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="webhook")
        self._inflight: dict[str, str] = {}  # delivery id → endpoint id
        self._lock = threading.Lock()  # _inflight: the pool's threads remove from it
        #: Notified when an attempt has finished and its slot is free again.
        self._settled = threading.Condition(self._lock)
        self._futures: set[Future[None]] = set()
        self._woken = threading.Event()
        #: A claim outlives the attempt's deadline, so a sender that died frees it.
        self.hold = timedelta(seconds=limits.timeout + 30)

    @classmethod
    def of(cls, db: Database, settings: Settings) -> Dispatcher:
        return cls(
            db,
            SendLimits.of(settings),
            RetryPolicy(settings.webhook_retry_base_seconds, settings.webhook_retry_window_seconds),
            concurrency=settings.webhook_concurrency,
            per_endpoint=settings.webhook_concurrency_per_endpoint,
        )

    def _busy_endpoints(self) -> list[str]:
        counts: dict[str, int] = {}
        with self._lock:
            endpoints = list(self._inflight.values())
        for ep in endpoints:
            counts[ep] = counts.get(ep, 0) + 1
        return [ep for ep, n in counts.items() if n >= self.per_endpoint]

    def tick(self) -> int:
        """Claim what is due (as far as free threads and endpoint limits allow) and start
        sending it; how many were started. Never waits for an answer."""
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            return 0
        now = self.clock()
        started = 0
        with self.db.session() as s:
            ids = due(s, now, free * 2, self._busy_endpoints())
        for delivery_id in ids:
            if started >= free:
                break
            with self.db.session() as s:
                d = s.get(WebhookDelivery, delivery_id)
                if d is None or d.id in self._inflight:
                    continue
                if d.endpoint_id in self._busy_endpoints():
                    continue
                if not claim(s, delivery_id, now, self.hold):
                    continue
                endpoint_id = d.endpoint_id
            with self._lock:
                self._inflight[delivery_id] = endpoint_id
            future = self._pool.submit(self._send, delivery_id)
            with self._lock:
                self._futures.add(future)
            future.add_done_callback(functools.partial(self._done, delivery_id))
            started += 1
        return started

    def wake(self) -> None:
        """Cut the current :meth:`idle` short: deliveries are due (the relay's fan-out
        committed some) or a sender thread is free again."""
        self._woken.set()

    def idle(self, seconds: float) -> None:
        """Wait until :meth:`wake` or ``seconds`` (the poll that finds what another
        process fanned out or what a retry made due)."""
        self._woken.wait(seconds)
        self._woken.clear()

    def _done(self, delivery_id: str, future: Future[None]) -> None:
        with self._lock:
            self._inflight.pop(delivery_id, None)
            self._futures.discard(future)
            self._settled.notify_all()
        self.wake()
        if future.exception() is not None:
            log.error("webhooks.send_failed", delivery_id=delivery_id, exc_info=future.exception())

    def _send(self, delivery_id: str) -> None:
        now = self.clock()
        with self.db.session() as s:
            d = s.get(WebhookDelivery, delivery_id)
            ep = s.get(WebhookEndpoint, d.endpoint_id) if d is not None else None
            if d is None or ep is None:
                return
            url, body, headers = ep.url, d.body.encode(), request_headers(ep, d, now)
        outcome = post(url, body, headers, self.limits)
        with self.db.session() as s:
            d = s.get(WebhookDelivery, delivery_id)
            ep = s.get(WebhookEndpoint, d.endpoint_id) if d is not None else None
            if d is None or ep is None:  # deleted meanwhile
                return
            record(d, ep, outcome, self.clock(), self.policy)
        log.info(
            "webhooks.attempt",
            delivery_id=delivery_id,
            status=outcome.status,
            error=outcome.error,
            latency_ms=outcome.latency_ms,
        )

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the attempts in flight (tests, shutdown): their outcomes recorded and
        their slots free, so the next :meth:`tick` sees both."""
        with self._settled:
            started = set(self._futures)
            self._settled.wait_for(lambda: not started & self._futures, timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
