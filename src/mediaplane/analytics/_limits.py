"""Rate limits for beacons: batches per window, per viewer and per client address.

:class:`InProcessRate` counts in this process (bounded memory: the least recently seen keys
are forgotten first); :class:`RedisRate` counts in Redis, shared by every web process (when
``MEDIAPLANE_REDIS_URL`` is set, as the sign-in brakes in :mod:`mediaplane.accounts` are).
Both are fixed windows: at most ``limit`` hits per ``window`` seconds per key.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import redis
import structlog

__all__ = ["InProcessRate", "Rate", "RedisRate"]

log = structlog.get_logger("mediaplane.analytics.limits")


class Rate(Protocol):
    def hit(self, key: str) -> float:
        """Count a hit of ``key``: 0 when it is within its share, else the seconds until
        its window ends (the hit is not taken)."""
        ...


@dataclass
class InProcessRate:
    limit: int
    window: float = 60.0
    max_keys: int = 100_000
    clock: Callable[[], float] = time.monotonic
    _counts: OrderedDict[str, tuple[int, int]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hit(self, key: str) -> float:
        now = self.clock()
        slot = int(now // self.window)
        with self._lock:
            seen_slot, n = self._counts.pop(key, (slot, 0))
            if seen_slot != slot:
                n = 0
            if n >= self.limit:
                self._counts[key] = (slot, n)
                return (slot + 1) * self.window - now
            self._counts[key] = (slot, n + 1)
            while len(self._counts) > self.max_keys:
                self._counts.popitem(last=False)
        return 0.0


# KEYS[1]: the key's counter in this window; ARGV: limit, window seconds.
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  local t = redis.call('TTL', KEYS[1])
  if t < 1 then t = 1 end
  return t
end
return 0
"""


class RedisRate:
    """:class:`Rate` in Redis. While Redis cannot be reached the limit is off (logged):
    beacons keep landing rather than every player being refused."""

    def __init__(
        self, client: redis.Redis, limit: int, window: float = 60.0, *, prefix: str = "mediaplane"
    ) -> None:
        self.limit = limit
        self.window = window
        self._prefix = f"{prefix}:beacons:"
        self._hit = client.register_script(_HIT)

    def hit(self, key: str) -> float:
        slot = int(time.time() // self.window)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        try:
            ttl = self._hit(
                keys=[f"{self._prefix}{digest}:{slot}"],
                args=[self.limit, math.ceil(self.window)],
            )
        except redis.RedisError as exc:
            log.warning("beacons.limiter_unavailable", error=type(exc).__name__)
            return 0.0
        return float(max(0, int(ttl)))
