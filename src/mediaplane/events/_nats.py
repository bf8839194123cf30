"""NATS JetStream: one stream per installation (``<namespace>_events``, subjects
``<namespace>.events.<type>``), a durable pull consumer per group (its members share the
work, each event acknowledged after it was handled), an ephemeral consumer for a tail.

The Bus interface is synchronous; nats-py is asyncio, so each bus runs its client on a
private event loop in a daemon thread, and every call waits a bounded time for it.

URL: ``nats://host:4222[?ack_wait=6]``: a delivered, unacknowledged event goes to a
member again after ``ack_wait`` seconds without word from its member (at once when its
subscription is closed); a live member sends "in progress" for what it holds every third
of it, so a slow handler keeps its events.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from mediaplane.config import redact_url

from ._bus import Delivery, Heartbeat, ack_wait, register
from ._errors import BusUnavailable
from ._event import Event

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from mediaplane.db import Database

T = TypeVar("T")
log = structlog.get_logger("mediaplane.events")

#: The longest any one call waits for the server (connect, publish acks, consumer setup).
CALL_TIMEOUT = 10.0
_FAILURES = (
    nats.errors.Error,
    OSError,
    asyncio.TimeoutError,
    concurrent.futures.TimeoutError,
)


def _name(text: str) -> str:
    """A stream, subject token or consumer name: letters, digits, ``-`` and ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _subject_token(event_type: str) -> str:
    """The event's type as subject tokens (``video.asset.ready``), nothing a subject forbids."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", event_type).strip(".") or "_"


class _Loop:
    """An asyncio loop in a daemon thread; :meth:`run` waits a bounded time for a coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="mediaplane-nats", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def submit(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run ``coro`` on the loop without waiting; a failure is logged."""

        def done(future: concurrent.futures.Future[object]) -> None:
            if not future.cancelled() and (exc := future.exception()) is not None:
                log.warning("events.nats_ack_failed", error=repr(exc))

        asyncio.run_coroutine_threadsafe(coro, self.loop).add_done_callback(done)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


async def _log_error(exc: Exception) -> None:
    """nats-py's own error callback prints a traceback per failed connect: one line."""
    log.warning("events.nats_error", error=repr(exc))


class NatsJetStreamBus:
    def __init__(self, url: str, namespace: str) -> None:
        parts = urlsplit(url)
        self.ack_wait = ack_wait(url)
        self.server = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self.stream = f"{_name(namespace)}_events"
        self.subjects = f"{_name(namespace)}.events"
        self.description = f"nats jetstream {redact_url(self.server)} ({self.stream})"
        self._loop = _Loop()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        """``coro`` on the bus's loop; any failure of NATS is :class:`BusUnavailable`."""
        try:
            return self._loop.run(coro, timeout)
        except _FAILURES as exc:
            raise BusUnavailable(f"NATS JetStream did not answer: {exc!r}") from exc

    def jetstream(self) -> JetStreamContext:
        """The JetStream context, connected and the stream created on first use."""
        with self._lock:
            if self._nc is not None and self._nc.is_closed:  # gave up reconnecting: anew
                self._nc = self._js = None
            if self._js is None:
                self._js = self.run(self._connect())
            return self._js

    async def _connect(self) -> JetStreamContext:
        nc = await nats.connect(
            self.server,
            error_cb=_log_error,
            connect_timeout=5,
            max_reconnect_attempts=3,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
        )
        js = nc.jetstream(timeout=CALL_TIMEOUT)
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(StreamConfig(name=self.stream, subjects=[f"{self.subjects}.>"]))
        self._nc = nc
        return js

    def publish(self, events: Sequence[Event]) -> None:
        if events:
            js = self.jetstream()
            self.run(self._publish(js, events), CALL_TIMEOUT + len(events) / 1000)

    async def _publish(self, js: JetStreamContext, events: Sequence[Event]) -> None:
        # Sent in order on one connection, acknowledged together. No Nats-Msg-Id header
        # (JetStream's de-duplication): it halves nats-py's rate; consumers dedupe by id.
        acks = [
            await js.publish_async(
                f"{self.subjects}.{_subject_token(e.type)}",
                e.dumps().encode(),
            )  # (no wait_stall: a task per message; a batch never fills the 4000 in flight)
            for e in events
        ]
        await asyncio.wait_for(asyncio.gather(*acks), CALL_TIMEOUT)

    def subscribe(
        self, group: str | None, *, consumer: str | None = None, from_start: bool = False
    ) -> NatsSubscription:
        js = self.jetstream()
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW,
            filter_subject=f"{self.subjects}.>",
        )
        if group is None:
            config.ack_policy = AckPolicy.NONE
            config.inactive_threshold = 60.0
            durable = None
        else:
            durable = _name(group)
            config.durable_name = durable
            config.ack_policy = AckPolicy.EXPLICIT
            config.ack_wait = self.ack_wait
            config.max_ack_pending = 20000
            self.run(self._update_ack_wait(js, durable))
        sub = self.run(js.pull_subscribe(f"{self.subjects}.>", durable, self.stream, config))
        return NatsSubscription(self, sub, acks=group is not None)

    async def _update_ack_wait(self, js: JetStreamContext, durable: str) -> None:
        """A durable consumer made with another ``ack_wait`` (an older version made them
        with 60 s) gets this one: pull_subscribe would join it as it is."""
        try:
            info = await js.consumer_info(self.stream, durable)
        except nats.js.errors.NotFoundError:
            return  # pull_subscribe creates it
        config = info.config
        if config.ack_wait is None or abs(config.ack_wait - self.ack_wait) > 1e-3:
            config.ack_wait = self.ack_wait
            await js.add_consumer(self.stream, config)  # (ack_wait is editable in place)

    def close(self) -> None:
        if self._nc is not None:
            try:  # what is buffered (acks) goes out, then the connection closes
                self.run(self._nc.flush(timeout=5), 6)
            except BusUnavailable:
                pass
            try:
                self.run(self._nc.close(), 5)
            except BusUnavailable:
                pass
            self._nc = self._js = None
        self._loop.stop()


class NatsSubscription:
    """A pull consumer's reader: a durable group member, or an ephemeral tail (no acks)."""

    def __init__(
        self, bus: NatsJetStreamBus, sub: JetStreamContext.PullSubscription, *, acks: bool
    ) -> None:
        self.bus, self.sub, self.acks = bus, sub, acks
        #: Fetched, not acknowledged yet (the heartbeat's thread reads it).
        self._held: dict[str, Msg] = {}
        self._lock = threading.Lock()
        self._heartbeat = (
            Heartbeat(bus.ack_wait / 3, self._beat, "mediaplane-nats-heartbeat") if acks else None
        )

    def _beat(self) -> None:
        with self._lock:
            held = list(self._held.values())
        if held:
            self.bus._loop.submit(self._in_progress(held))

    @staticmethod
    async def _in_progress(msgs: list[Msg]) -> None:
        for msg in msgs:  # (one small publish each; an acked one: the server ignores it)
            await msg.in_progress()

    def fetch(self, timeout: float, limit: int = 100) -> list[Delivery]:
        wait = max(timeout, 0.05)
        msgs = self.bus.run(self._fetch(limit, wait), wait + CALL_TIMEOUT)
        out = []
        for msg in msgs:
            token = str(msg.metadata.sequence.stream)
            out.append(Delivery(Event.loads(msg.data), token))
            if self.acks:
                with self._lock:
                    self._held[token] = msg
        return out

    async def _fetch(self, limit: int, wait: float) -> list[Msg]:
        try:
            return await self.sub.fetch(limit, timeout=wait)
        except TimeoutError:  # (nats.errors.TimeoutError too): nothing came
            return []

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._lock:
            msgs = [m for d in deliveries if (m := self._held.pop(d.token, None)) is not None]
        if msgs:
            # Sent without waiting for the server (no round trip per batch): on the loop
            # before any later fetch. An ack lost with the connection: the event comes
            # again after ack_wait (at least once).
            self.bus._loop.submit(self._settle(msgs, nak=False))

    async def _settle(self, msgs: list[Msg], *, nak: bool) -> None:
        for msg in msgs:
            await (msg.nak() if nak else msg.ack())
        if nak:
            assert self.bus._nc is not None
            await self.bus._nc.flush(timeout=int(CALL_TIMEOUT))

    def close(self) -> None:
        """Hand back what was fetched and not acknowledged: another member gets it now."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
        with self._lock:
            held, self._held = list(self._held.values()), {}
        try:
            if held:
                self.bus.run(self._settle(held, nak=True))
            self.bus.run(self.sub.unsubscribe(), 5)
        except BusUnavailable:
            pass  # the server redelivers after ack_wait, or drops the ephemeral consumer


def _open(url: str, database: Database | None, namespace: str) -> NatsJetStreamBus:
    return NatsJetStreamBus(url, namespace)


register("nats", _open)
