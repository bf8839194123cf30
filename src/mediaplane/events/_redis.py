"""Redis Streams: one stream per installation (``<namespace>:events``), consumer groups
(XREADGROUP/XACK) so several consumers share the work, XAUTOCLAIM for the pending events
of a consumer that died.

URL: ``redis://host:6379/0[?ack_wait=6]``: a member's fetched, unacknowledged events are
claimed by another member once they were idle ``ack_wait`` seconds; a live member keeps
them fresh (XCLAIM to itself) while its handler runs.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from mediaplane.config import redact_url

from ._bus import Delivery, Heartbeat, ack_wait, register
from ._errors import BusUnavailable
from ._event import Event

if TYPE_CHECKING:
    from mediaplane.db import Database

_FIELD = b"event"


def _deliveries(entries: list[Any]) -> list[Delivery]:
    out = []
    for entry_id, fields in entries:
        if fields and _FIELD in fields:  # None: trimmed from the stream meanwhile
            out.append(Delivery(Event.loads(fields[_FIELD]), entry_id.decode()))
    return out


def _client_url(url: str) -> str:
    """``url`` without our own query parameters (redis-py would take them for its own)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "ack_wait"]
    return urlunsplit(parts._replace(query=urlencode(query)))


class RedisStreamsBus:
    def __init__(self, url: str, namespace: str) -> None:
        self.ack_wait = ack_wait(url)
        self.client = redis.Redis.from_url(
            _client_url(url), socket_timeout=10, socket_connect_timeout=5
        )
        self.stream = f"{namespace}:events"
        self.description = f"redis streams {redact_url(url)} ({self.stream})"

    def publish(self, events: Sequence[Event]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(self.stream, {_FIELD: event.dumps()})
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise BusUnavailable(f"Redis did not take the events: {exc}") from exc

    def subscribe(
        self, group: str | None, *, consumer: str | None = None, from_start: bool = False
    ) -> RedisGroupReader | RedisTail:
        if group is None:
            return RedisTail(self.client, self.stream, from_start=from_start)
        return RedisGroupReader(
            self.client,
            self.stream,
            group,
            consumer or f"{socket.gethostname()}:{os.getpid()}",
            from_start=from_start,
            idle=self.ack_wait,
        )

    def close(self) -> None:
        self.client.close()


class RedisGroupReader:
    """A member of a consumer group: its own unacknowledged events first (after a
    restart under the same consumer name), then others' stale ones (idle ``idle``
    seconds: their member died), then new ones. While it holds fetched events it
    re-claims them every third of ``idle``, so a slow handler keeps them."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        group: str,
        consumer: str,
        *,
        from_start: bool,
        idle: float,
    ) -> None:
        self.client, self.stream, self.group, self.consumer = client, stream, group, consumer
        self.idle = idle
        self._own_pending = True
        self._next_claim = 0.0
        self._claim_from = "0-0"
        try:
            client.xgroup_create(stream, group, id="0" if from_start else "$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists: join it
                raise BusUnavailable(f"cannot create consumer group {group!r}: {exc}") from exc
        except redis.RedisError as exc:
            raise BusUnavailable(f"Redis is unreachable: {exc}") from exc
        #: Entry ids fetched and not acknowledged yet (the heartbeat's thread reads them).
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._heartbeat = Heartbeat(idle / 3, self._beat, f"mediaplane-redis-{consumer}")

    def _beat(self) -> None:
        with self._lock:
            held: list[str | bytes | int | memoryview[int]] = list(self._held)
        if held:  # XCLAIM to itself resets the entries' idle time (JUSTID: no new delivery)
            self.client.xclaim(self.stream, self.group, self.consumer, 0, held, justid=True)

    def fetch(self, timeout: float, limit: int = 100) -> list[Delivery]:
        try:
            got = self._next(timeout, limit)
        except redis.RedisError as exc:
            raise BusUnavailable(f"Redis is unreachable: {exc}") from exc
        with self._lock:
            self._held.update(d.token for d in got)
        return got

    def _next(self, timeout: float, limit: int) -> list[Delivery]:
        if self._own_pending:
            got = self._read("0", limit, None)
            if got:
                return got
            self._own_pending = False
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + self.idle / 2
            claimed: Any = self.client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=int(self.idle * 1000),
                start_id=self._claim_from,
                count=limit,
            )
            # A cursor through the pending list: a long one is scanned a part at a time.
            nxt = claimed[0]
            self._claim_from = nxt.decode() if isinstance(nxt, bytes) else str(nxt)
            if got := _deliveries(claimed[1]):
                return got
        return self._read(">", limit, max(1, int(timeout * 1000)))

    def _read(self, start: str, limit: int, block_ms: int | None) -> list[Delivery]:
        resp: Any = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=limit, block=block_ms
        )
        return _deliveries(resp[0][1]) if resp else []

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            tokens = [d.token for d in deliveries]
            try:
                self.client.xack(self.stream, self.group, *tokens)
            except redis.RedisError as exc:
                raise BusUnavailable(f"Redis is unreachable: {exc}") from exc
            with self._lock:
                self._held.difference_update(tokens)

    def close(self) -> None:
        """Stop re-claiming: what was not acknowledged goes to another member once idle."""
        self._heartbeat.stop()


class RedisTail:
    """Every event from now (or from the stream's start), no group, nothing to ack."""

    def __init__(self, client: redis.Redis, stream: str, *, from_start: bool) -> None:
        self.client, self.stream = client, stream
        self.last = "0-0"
        if not from_start:  # the current end, resolved now: "$" on each read would skip
            try:
                newest: Any = client.xrevrange(stream, count=1)
            except redis.RedisError as exc:
                raise BusUnavailable(f"Redis is unreachable: {exc}") from exc
            if newest:
                self.last = newest[0][0].decode()

    def fetch(self, timeout: float, limit: int = 100) -> list[Delivery]:
        try:
            resp: Any = self.client.xread(
                {self.stream: self.last}, count=limit, block=max(1, int(timeout * 1000))
            )
        except redis.RedisError as exc:
            raise BusUnavailable(f"Redis is unreachable: {exc}") from exc
        if not resp:
            return []
        entries = resp[0][1]
        self.last = entries[-1][0].decode()
        return _deliveries(entries)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        pass

    def close(self) -> None:
        pass


def _open(url: str, database: Database | None, namespace: str) -> RedisStreamsBus:
    return RedisStreamsBus(url, namespace)


register("redis", _open)
register("rediss", _open)
