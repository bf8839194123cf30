"""Concurrent streams: a plan allows N simultaneous streams per account, and the N+1th start
is refused (``too_many_streams``).

A stream is claimed when a viewer with an account starts playing (the origin's master
playlist or MPD) and counts while its heartbeats continue: the origin renews it from the
stream's segment and media-playlist requests (at most every few seconds per stream, see
:class:`StreamTracker`) and a paused player pings. It frees itself ``ttl`` seconds after its
last heartbeat, or at once when released.

:class:`StreamLimiter` is the interface. :class:`InProcessStreams` keeps the streams in this
process's memory (one web process); :class:`RedisStreams` keeps them in Redis, one sorted
set per account scored by the last heartbeat, claimed by one Lua script (so the check and
the add are atomic across every web process that shares the Redis).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import redis
import structlog

if TYPE_CHECKING:
    from mediaplane.config import Settings

__all__ = [
    "InProcessStreams",
    "RedisStreams",
    "StreamLimiter",
    "StreamTracker",
    "new_stream_id",
    "stream_tracker",
]

log = structlog.get_logger("mediaplane.accounts.streams")

#: The longest id a limiter keeps for an account or a stream (longer ones are hashed).
_MAX_ID = 64


class StreamLimiter(Protocol):
    """Counts each account's live streams; a stream lives ``ttl`` seconds past its last claim."""

    ttl: float

    def claim(self, account: str, stream: str, limit: int) -> bool:
        """Count ``stream`` among ``account``'s live streams, or renew it (a heartbeat).

        True when ``stream`` is live already (renewed) or the account has fewer than
        ``limit`` live streams (0: no limit; it is added); False: refused, nothing changes.
        """
        ...

    def release(self, account: str, stream: str) -> None:
        """Free ``stream`` now (the player stopped)."""
        ...

    def active(self, account: str) -> int:
        """How many streams of ``account`` are live now."""
        ...


def new_stream_id() -> str:
    """A fresh, unguessable stream id (URL- and carry-token-safe: no ``.``)."""
    return secrets.token_urlsafe(12)


@dataclass
class InProcessStreams:
    """:class:`StreamLimiter` in this process's memory (right for one web process).

    :param max_accounts: accounts remembered at most; past it the expired are swept, then
        the least recently claimed accounts are forgotten.
    """

    ttl: float = 45.0
    clock: Callable[[], float] = time.monotonic
    max_accounts: int = 100_000
    _accounts: OrderedDict[str, dict[str, float]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _live(self, account: str, now: float) -> dict[str, float]:
        streams = self._accounts.get(account)
        if streams is None:
            return {}
        for stream, last in list(streams.items()):
            if now - last >= self.ttl:
                del streams[stream]
        return streams

    def claim(self, account: str, stream: str, limit: int) -> bool:
        now = self.clock()
        with self._lock:
            streams = self._live(account, now)
            if stream not in streams and limit > 0 and len(streams) >= limit:
                return False
            streams[stream] = now
            self._accounts[account] = streams
            self._accounts.move_to_end(account)
            if len(self._accounts) > self.max_accounts:
                self._sweep(now)
            return True

    def _sweep(self, now: float) -> None:
        for account in list(self._accounts):
            if not self._live(account, now):
                del self._accounts[account]
        while len(self._accounts) > self.max_accounts:
            self._accounts.popitem(last=False)

    def release(self, account: str, stream: str) -> None:
        with self._lock:
            streams = self._accounts.get(account)
            if streams is not None:
                streams.pop(stream, None)
                if not streams:
                    del self._accounts[account]

    def active(self, account: str) -> int:
        with self._lock:
            return len(self._live(account, self.clock()))


# KEYS[1] the account's sorted set; ARGV: stream, now, ttl (s), limit (0: none).
_CLAIM = """
local now = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then
    return 0
  end
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000) + 1000)
return 1
"""


def _short(value: str) -> str:
    """``value`` if it is short, else a digest of it (keys stay bounded)."""
    if len(value) <= _MAX_ID:
        return value
    return hashlib.sha256(value.encode()).hexdigest()[:40]


class RedisStreams:
    """:class:`StreamLimiter` in Redis, shared by every web process that uses the same Redis.

    The clock is wall time (Unix seconds) of each process: web hosts need roughly agreeing
    clocks (NTP); a skew of a second or two only shifts when a stream frees.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: float = 45.0,
        prefix: str = "mediaplane",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._client = client
        self._prefix = f"{prefix}:streams:"
        self._claim = client.register_script(_CLAIM)

    def _key(self, account: str) -> str:
        return self._prefix + _short(account)

    def claim(self, account: str, stream: str, limit: int) -> bool:
        args: list[str | int] = [_short(stream), repr(self.clock()), repr(float(self.ttl)), limit]
        return bool(self._claim(keys=[self._key(account)], args=args))

    def release(self, account: str, stream: str) -> None:
        self._client.zrem(self._key(account), _short(stream))

    def active(self, account: str) -> int:
        key = self._key(account)
        self._client.zremrangebyscore(key, "-inf", self.clock() - self.ttl)
        return int(self._client.zcard(key))


class StreamTracker:
    """The origin's use of a :class:`StreamLimiter`: starts, and heartbeats that reach the
    limiter at most once per ``interval`` seconds per stream (remembered in this process),
    so that a segment request costs a dictionary lookup, not a Redis round trip.

    A limiter that fails (Redis down) does not stop playback: the error is logged (now and
    then) and the stream is let through.
    """

    def __init__(self, limiter: StreamLimiter, interval: float | None = None) -> None:
        self.limiter = limiter
        self.interval = interval if interval is not None else min(5.0, limiter.ttl / 3)
        self._beats: dict[str, float] = {}
        self._last_error = 0.0

    def due(self, stream: str) -> bool:
        """Whether a request of ``stream`` should renew it now (O(1), no I/O)."""
        last = self._beats.get(stream)
        return last is None or time.monotonic() - last >= self.interval

    def start(self, account: str, limit: int, stream: str | None = None) -> str | None:
        """A stream counted for ``account`` (``stream``, or a new id; a live one is renewed),
        or None: ``limit`` other streams are live."""
        stream = stream or new_stream_id()
        return stream if self.beat(account, stream, limit) else None

    def beat(self, account: str, stream: str, limit: int) -> bool:
        """Renew ``stream`` (claim it again if it had freed itself); False: refused."""
        try:
            ok = self.limiter.claim(account, stream, limit)
        except redis.RedisError as exc:  # a limiter failure must not stop playback
            self._failed(exc)
            return True
        if ok:
            self._remember(stream)
        else:
            self._beats.pop(stream, None)
        return ok

    def release(self, account: str, stream: str) -> None:
        """Free ``stream`` now."""
        self._beats.pop(stream, None)
        try:
            self.limiter.release(account, stream)
        except redis.RedisError as exc:
            self._failed(exc)

    def _remember(self, stream: str) -> None:
        now = time.monotonic()
        if len(self._beats) > 100_000:  # streams that ended long ago
            stale = now - max(self.interval, self.limiter.ttl)
            self._beats = {k: v for k, v in self._beats.items() if v > stale}
        self._beats[stream] = now

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error > 60:
            self._last_error = now
            log.warning("streams.limiter_failed", error=type(exc).__name__)


def stream_tracker(settings: Settings, client: redis.Redis | None = None) -> StreamTracker:
    """The stream limits of the settings: in Redis when ``client`` is given (the client of
    ``MEDIAPLANE_REDIS_URL``), else in this process."""
    ttl = settings.stream_ttl_seconds
    if client is None:
        return StreamTracker(InProcessStreams(ttl))
    return StreamTracker(RedisStreams(client, ttl=ttl, prefix=settings.queue_namespace))
