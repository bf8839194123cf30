"""Real time: concurrent viewers and live QoE per playback id, from the beacons as they
arrive (before any flush to the lake).

A view counts as watching while its newest event (a heartbeat, every few seconds while the
player plays or stalls; or any other event) is younger than ``realtime_window_seconds``
and it has not ended (``end``, or a fatal error). Live QoE of the views watching now:

- ``rebuffering``: views whose newest ``rebuffer_start`` is later than their newest
  ``rebuffer_end``/``first_frame``;
- ``average_bitrate``: the mean of each view's newest reported bitrate (bits/s);
- ``errors_last_minute``: error events of the last 60 s (each ``(view, event)`` once: a
  replayed batch does not count twice).

Every update keeps the newest value of each field (max by event time), so batches may
arrive in any order, or twice. :class:`InProcessRealtime` keeps this in the process;
:class:`RedisRealtime` in Redis, shared by every web process (when ``MEDIAPLANE_REDIS_URL``
is set, as the beacon rate limits are). Times are the server's wall clock (ms since the
epoch): event times as the intake corrected and clamped them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import redis
import structlog

from mediaplane.accounts import Principal, redis_client
from mediaplane.catalog import AssetAction, authorized_asset
from mediaplane.live import LiveAction, authorized_live_stream

from ._beacons import BeaconEvent, EventKind

if TYPE_CHECKING:
    from mediaplane.runtime import Runtime

__all__ = [
    "ERROR_WINDOW_MS",
    "InProcessRealtime",
    "Realtime",
    "RealtimeFigures",
    "RedisRealtime",
    "ViewUpdate",
    "realtime_of",
    "realtime_view",
    "view_update",
]

log = structlog.get_logger("mediaplane.analytics.realtime")

#: Errors are counted over this last stretch (ms).
ERROR_WINDOW_MS = 60_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class ViewUpdate:
    """What one batch says about its view's present (times in server ms; 0: not said)."""

    playback_id: str
    view_id: str
    last_ms: int
    rebuffer_ms: int = 0  # newest rebuffer_start
    resumed_ms: int = 0  # newest rebuffer_end or first_frame
    ended_ms: int = 0  # end, or a fatal error
    bitrate_ms: int = 0  # when ``bitrate`` was reported
    bitrate: int = 0
    #: (event id, time) of each error event.
    errors: tuple[tuple[str, int], ...] = ()


def view_update(
    playback_id: str, view_id: str, events: Iterable[tuple[BeaconEvent, int]]
) -> ViewUpdate | None:
    """The update of one batch's valid events, each with its corrected time (None: none)."""
    last = rebuf = resumed = ended = br_ms = br = 0
    errors: list[tuple[str, int]] = []
    for e, ts in events:
        last = max(last, ts)
        kind = e.type
        if kind is EventKind.REBUFFER_START:
            rebuf = max(rebuf, ts)
        elif kind in (EventKind.REBUFFER_END, EventKind.FIRST_FRAME):
            resumed = max(resumed, ts)
        elif kind is EventKind.END:
            ended = max(ended, ts)
        elif kind is EventKind.ERROR:
            errors.append((e.id, ts))
            if e.fatal:
                ended = max(ended, ts)
        if e.bitrate is not None and ts >= br_ms:
            br_ms, br = ts, e.bitrate
    if not last:
        return None
    return ViewUpdate(playback_id, view_id, last, rebuf, resumed, ended, br_ms, br, tuple(errors))


@dataclass(frozen=True)
class RealtimeFigures:
    """The views of some playback ids watching now, and their live QoE."""

    viewers: int = 0
    rebuffering: int = 0
    bitrate_sum: int = 0  # of the watching views that reported one
    bitrate_views: int = 0
    errors_last_minute: int = 0

    def __add__(self, other: RealtimeFigures) -> RealtimeFigures:
        return RealtimeFigures(
            self.viewers + other.viewers,
            self.rebuffering + other.rebuffering,
            self.bitrate_sum + other.bitrate_sum,
            self.bitrate_views + other.bitrate_views,
            self.errors_last_minute + other.errors_last_minute,
        )

    @property
    def average_bitrate(self) -> int | None:
        return round(self.bitrate_sum / self.bitrate_views) if self.bitrate_views else None

    def to_api(self, window_s: float) -> dict[str, Any]:
        return {
            "viewers": self.viewers,
            "rebuffering_viewers": self.rebuffering,
            "average_bitrate": self.average_bitrate,
            "errors_last_minute": self.errors_last_minute,
            "window_s": window_s,
        }


class Realtime(Protocol):
    window_s: float

    def update(self, u: ViewUpdate) -> None:
        """Take what one batch says about its view."""
        ...

    def figures(self, playback_ids: list[str]) -> RealtimeFigures:
        """The views of these playback ids watching now."""
        ...


@dataclass
class _View:
    last_ms: int = 0
    rebuffer_ms: int = 0
    resumed_ms: int = 0
    ended_ms: int = 0
    bitrate_ms: int = 0
    bitrate: int = 0


@dataclass
class InProcessRealtime:
    """:class:`Realtime` in this process (bounded: past ``max_views`` new views are not
    followed; views older than the window are forgotten)."""

    window_s: float = 15.0
    max_views: int = 200_000
    clock: Callable[[], int] = _now_ms
    _views: dict[str, dict[str, _View]] = field(default_factory=dict)
    _errors: dict[str, dict[str, int]] = field(default_factory=dict)
    _count: int = 0
    _swept_ms: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, u: ViewUpdate) -> None:
        now = self.clock()
        with self._lock:
            if now - self._swept_ms > self.window_s * 1000:
                self._sweep(now)
            views = self._views.setdefault(u.playback_id, {})
            v = views.get(u.view_id)
            if v is None:
                if self._count >= self.max_views:
                    return
                v = views[u.view_id] = _View()
                self._count += 1
            v.last_ms = max(v.last_ms, u.last_ms)
            v.rebuffer_ms = max(v.rebuffer_ms, u.rebuffer_ms)
            v.resumed_ms = max(v.resumed_ms, u.resumed_ms)
            v.ended_ms = max(v.ended_ms, u.ended_ms)
            if u.bitrate_ms and u.bitrate_ms >= v.bitrate_ms:
                v.bitrate_ms, v.bitrate = u.bitrate_ms, u.bitrate
            if u.errors:
                errs = self._errors.setdefault(u.playback_id, {})
                for event_id, ts in u.errors:
                    errs[f"{u.view_id}\0{event_id}"] = ts

    def _sweep(self, now: int) -> None:
        """Forget views older than the window and errors older than a minute (lock held)."""
        self._swept_ms = now
        cutoff = now - int(self.window_s * 1000)
        for pid in list(self._views):
            views = self._views[pid]
            for view_id in [k for k, v in views.items() if v.last_ms < cutoff]:
                del views[view_id]
                self._count -= 1
            if not views:
                del self._views[pid]
        for pid in list(self._errors):
            errs = self._errors[pid]
            for key in [k for k, ts in errs.items() if ts < now - ERROR_WINDOW_MS]:
                del errs[key]
            if not errs:
                del self._errors[pid]

    def figures(self, playback_ids: list[str]) -> RealtimeFigures:
        now = self.clock()
        cutoff = now - int(self.window_s * 1000)
        total = RealtimeFigures()
        with self._lock:
            for pid in playback_ids:
                watching = [
                    v
                    for v in self._views.get(pid, {}).values()
                    if v.last_ms >= cutoff and not v.ended_ms
                ]
                rates = [v.bitrate for v in watching if v.bitrate_ms]
                errors = sum(
                    1 for ts in self._errors.get(pid, {}).values() if ts >= now - ERROR_WINDOW_MS
                )
                total += RealtimeFigures(
                    len(watching),
                    sum(1 for v in watching if v.rebuffer_ms > v.resumed_ms),
                    sum(rates),
                    len(rates),
                    errors,
                )
        return total


# KEYS: views (hash view → "last rebuffer resumed ended bitrate_ms bitrate"), seen (zset view
# → last), errors (zset "view\0event" → ts). ARGV: view, the update's six numbers, ttl s,
# the window's cutoff, the errors' cutoff, then error members and times. Each update also
# forgets up to 100 views older than the window (and old errors): the keys stay bounded by
# what the window holds even when nobody asks for the figures.
_UPDATE = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[9], 'LIMIT', 0, 100)
if #stale > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale))
  redis.call('ZREM', KEYS[2], unpack(stale))
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[10])
local old = redis.call('HGET', KEYS[1], ARGV[1])
local v = {0, 0, 0, 0, 0, 0}
if old then
  local i = 1
  for n in string.gmatch(old, '%S+') do v[i] = tonumber(n); i = i + 1 end
end
for i = 1, 4 do
  local n = tonumber(ARGV[i + 1])
  if n > v[i] then v[i] = n end
end
local bms = tonumber(ARGV[6])
if bms > 0 and bms >= v[5] then v[5] = bms; v[6] = tonumber(ARGV[7]) end
redis.call('HSET', KEYS[1], ARGV[1], table.concat(v, ' '))
redis.call('ZADD', KEYS[2], 'GT', v[1], ARGV[1])
local ttl = tonumber(ARGV[8])
for i = 11, #ARGV, 2 do redis.call('ZADD', KEYS[3], ARGV[i + 1], ARGV[i]) end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl) end
return 1
"""
# KEYS as above. ARGV: cutoff of the window, cutoff of the errors. Returns viewers,
# rebuffering, bitrate sum, views with a bitrate, errors.
_FIGURES = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, view in ipairs(stale) do redis.call('HDEL', KEYS[1], view) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[2])
local viewers, rebuf, brsum, brn = 0, 0, 0, 0
for _, s in ipairs(redis.call('HVALS', KEYS[1])) do
  local v, i = {}, 1
  for n in string.gmatch(s, '%S+') do v[i] = tonumber(n); i = i + 1 end
  if v[4] == 0 then
    viewers = viewers + 1
    if v[2] > v[3] then rebuf = rebuf + 1 end
    if v[5] > 0 then brsum = brsum + v[6]; brn = brn + 1 end
  end
end
return {viewers, rebuf, brsum, brn, redis.call('ZCARD', KEYS[3])}
"""


class RedisRealtime:
    """:class:`Realtime` in Redis, shared by every web process using it (three keys per
    playback id, expiring when nothing arrives). While Redis cannot be reached updates are
    lost and the figures are zero (logged): beacons keep landing in the lake."""

    def __init__(
        self,
        client: redis.Redis,
        window_s: float = 15.0,
        *,
        prefix: str = "mediaplane",
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.window_s = window_s
        self.clock = clock
        self._prefix = f"{prefix}:realtime:"
        self._update = client.register_script(_UPDATE)
        self._figures = client.register_script(_FIGURES)

    def _keys(self, pid: str) -> list[str]:
        base = self._prefix + pid
        return [base + ":views", base + ":seen", base + ":errors"]

    def update(self, u: ViewUpdate) -> None:
        ttl = max(int(self.window_s), ERROR_WINDOW_MS // 1000) * 2
        now = self.clock()
        args: list[str | int] = [
            u.view_id,
            u.last_ms,
            u.rebuffer_ms,
            u.resumed_ms,
            u.ended_ms,
            u.bitrate_ms,
            u.bitrate,
            ttl,
            now - int(self.window_s * 1000),
            now - ERROR_WINDOW_MS,
        ]
        for event_id, ts in u.errors:
            args += [f"{u.view_id}\0{event_id}", ts]
        try:
            self._update(keys=self._keys(u.playback_id), args=args)
        except redis.RedisError as exc:
            log.warning("realtime.unavailable", error=type(exc).__name__)

    def figures(self, playback_ids: list[str]) -> RealtimeFigures:
        now = self.clock()
        args = [now - int(self.window_s * 1000), now - ERROR_WINDOW_MS]
        total = RealtimeFigures()
        for pid in playback_ids:
            try:
                got = self._figures(keys=self._keys(pid), args=args)
            except redis.RedisError as exc:
                log.warning("realtime.unavailable", error=type(exc).__name__)
                continue
            total += RealtimeFigures(*(int(n) for n in got))
        return total


def _make_tracker(rt: Runtime) -> Realtime:
    s = rt.settings
    client = redis_client(s)
    window = s.realtime_window_seconds
    if client is None:
        return InProcessRealtime(window_s=window)
    return RedisRealtime(client, window, prefix=s.queue_namespace)


def realtime_of(rt: Runtime) -> Realtime:
    """This process's real-time tracker for the runtime (in Redis when the runtime has one)."""
    return rt.shared(_make_tracker)


def realtime_view(
    rt: Runtime,
    principal: Principal,
    *,
    asset_id: str | None = None,
    live_stream_id: str | None = None,
) -> dict[str, Any]:
    """Concurrent viewers and live QoE of an asset's (or a live stream's) playback ids, for
    a caller who may read it (blocking: one database read).

    :raises AssetNotFound, LiveStreamNotFound: no such thing, or not the caller's to see.
    """
    with rt.db.session() as s:
        if asset_id is not None:
            asset = authorized_asset(s, principal, asset_id, AssetAction.READ)
            ids = [p.id for p in asset.playback_ids]
            subject = {"asset_id": asset.id}
        else:
            assert live_stream_id is not None
            stream = authorized_live_stream(s, principal, live_stream_id, LiveAction.READ)
            ids = [p.id for p in stream.playback_ids]
            subject = {"live_stream_id": stream.id}
    tracker = realtime_of(rt)
    figures = tracker.figures(ids)
    at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {**subject, **figures.to_api(tracker.window_s), "at": at}
