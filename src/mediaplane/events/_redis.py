"""Redis Streams: one stream per installation (``<namespace>:events``), consumer groups
(XREADGROUP/XACK) so several consumers share the work, XAUTOCLAIM for the pending events
of a consumer that died."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis

from mediaplane.config import redact_url

from ._bus import Delivery, register
from ._errors import BusUnavailable
from ._event import Event

if TYPE_CHECKING:
    from mediaplane.db import Database

#: A group member's delivered, unacknowledged event idle this long is claimed by another.
CLAIM_IDLE_SECONDS = 60.0
_FIELD = b"event"


def _deliveries(entries: list[Any]) -> list[Delivery]:
    out = []
    for entry_id, fields in entries:
        if fields and _FIELD in fields:  # None: trimmed from the stream meanwhile
            out.append(Delivery(Event.loads(fields[_FIELD]), entry_id.decode()))
    return out


class RedisStreamsBus:
    def __init__(self, url: str, namespace: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
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
        )

    def close(self) -> None:
        self.client.close()


class RedisGroupReader:
    """A member of a consumer group: its own unacknowledged events first (after a
    restart under the same consumer name), then others' stale ones, then new ones."""

    def __init__(
        self, client: redis.Redis, stream: str, group: str, consumer: str, *, from_start: bool
    ) -> None:
        self.client, self.stream, self.group, self.consumer = client, stream, group, consumer
        self._own_pending = True
        self._next_claim = 0.0
        try:
            client.xgroup_create(stream, group, id="0" if from_start else "$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists: join it
                raise BusUnavailable(f"cannot create consumer group {group!r}: {exc}") from exc
        except redis.RedisError as exc:
            raise BusUnavailable(f"Redis is unreachable: {exc}") from exc

    def fetch(self, timeout: float, limit: int = 100) -> list[Delivery]:
        try:
            if self._own_pending:
                got = self._read("0", limit, None)
                if got:
                    return got
                self._own_pending = False
            if time.monotonic() >= self._next_claim:
                self._next_claim = time.monotonic() + CLAIM_IDLE_SECONDS / 2
                claimed: Any = self.client.xautoclaim(
                    self.stream,
                    self.group,
                    self.consumer,
                    min_idle_time=int(CLAIM_IDLE_SECONDS * 1000),
                    count=limit,
                )
                if got := _deliveries(claimed[1]):
                    return got
            return self._read(">", limit, max(1, int(timeout * 1000)))
        except redis.RedisError as exc:
            raise BusUnavailable(f"Redis is unreachable: {exc}") from exc

    def _read(self, start: str, limit: int, block_ms: int | None) -> list[Delivery]:
        resp: Any = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=limit, block=block_ms
        )
        return _deliveries(resp[0][1]) if resp else []

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            try:
                self.client.xack(self.stream, self.group, *[d.token for d in deliveries])
            except redis.RedisError as exc:
                raise BusUnavailable(f"Redis is unreachable: {exc}") from exc

    def close(self) -> None:
        pass


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
