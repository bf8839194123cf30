"""Brute-force brakes for sign-in: failures counted per key (an account, a client address),
and past a threshold a lockout window that doubles with each further failure.

:class:`Limiter` is the Protocol; :class:`InProcessLimiter` keeps the counts in this process
(one web process, or "per process" on a fleet); :class:`RedisLimiter` keeps them in Redis, so
the brakes hold across every web process that shares it (chosen when ``MEDIAPLANE_REDIS_URL``
is set: :func:`signin_guard`). :class:`SignInGuard` combines one limiter per account and one per
address, which is what the sign-in page calls.
"""

from __future__ import annotations

import hashlib
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

log = structlog.get_logger("mediaplane.accounts.limits")

#: The longest a key is ever locked out, however many failures it has.
MAX_LOCKOUT_SECONDS = 3600.0


class Limiter(Protocol):
    """Counts failures per key and says how long a key must wait before its next try."""

    def retry_after(self, key: str) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        ...

    def failed(self, key: str) -> None:
        """Record a failed try of ``key``."""
        ...

    def reset(self, key: str) -> None:
        """Forget ``key``'s failures (it signed in)."""
        ...


@dataclass
class _Entry:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


@dataclass
class InProcessLimiter:
    """:class:`Limiter` in this process's memory.

    :param max_failures: failures allowed before the first lockout.
    :param lockout_seconds: the first lockout; each further failure doubles it, up to
        :data:`MAX_LOCKOUT_SECONDS`.
    :param max_keys: keys remembered at most (the least recently failed are forgotten first,
        so a flood of addresses cannot grow memory without bound).
    """

    max_failures: int
    lockout_seconds: float
    max_keys: int = 100_000
    clock: Callable[[], float] = time.monotonic
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, key: str) -> float:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return 0.0
            return max(0.0, entry.locked_until - self.clock())

    def failed(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            entry = self._entries.pop(key, None) or _Entry()
            if entry.last and now - entry.last > MAX_LOCKOUT_SECONDS:
                entry = _Entry()  # quiet for an hour: start over
            entry.failures += 1
            entry.last = now
            over = entry.failures - self.max_failures
            if over >= 0:
                wait = min(MAX_LOCKOUT_SECONDS, self.lockout_seconds * 2.0 ** min(over, 32))
                entry.locked_until = now + wait
            self._entries[key] = entry  # most recent last
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)

    def reset(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


# KEYS[1] the key's hash; ARGV: now, max failures, first lockout (s), longest lockout (s).
_FAILED = """
local now = tonumber(ARGV[1])
local longest = tonumber(ARGV[4])
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if last > 0 and now - last > longest then
  failures = 0
  redis.call('HDEL', KEYS[1], 'locked_until')
end
failures = failures + 1
redis.call('HSET', KEYS[1], 'failures', failures, 'last', ARGV[1])
local over = failures - tonumber(ARGV[2])
local wait = 0
if over >= 0 then
  wait = math.min(longest, tonumber(ARGV[3]) * 2 ^ math.min(over, 32))
  redis.call('HSET', KEYS[1], 'locked_until', tostring(now + wait))
end
redis.call('EXPIRE', KEYS[1], math.ceil(longest + wait) + 1)
return failures
"""


class RedisLimiter:
    """:class:`Limiter` in Redis (one hash per key that expires on its own), shared by every
    web process using the same Redis. Same rules as :class:`InProcessLimiter`; the clock is
    wall time (Unix seconds) of each process. While Redis cannot be reached the brakes are
    off (logged), rather than sign-in failing for everyone."""

    def __init__(
        self,
        client: redis.Redis,
        max_failures: int,
        lockout_seconds: float,
        *,
        prefix: str = "mediaplane",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.clock = clock
        self._client = client
        self._prefix = f"{prefix}:signin:"
        self._failed = client.register_script(_FAILED)

    def _key(self, key: str) -> str:
        return self._prefix + hashlib.sha256(key.encode()).hexdigest()[:40]

    def retry_after(self, key: str) -> float:
        try:
            until = self._client.hget(self._key(key), "locked_until")
        except redis.RedisError as exc:
            return self._unavailable(exc)
        if until is None:
            return 0.0
        return max(0.0, float(until) - self.clock())

    def failed(self, key: str) -> None:
        now, lockout = repr(self.clock()), repr(float(self.lockout_seconds))
        args: list[str | int] = [now, self.max_failures, lockout, repr(MAX_LOCKOUT_SECONDS)]
        try:
            self._failed(keys=[self._key(key)], args=args)
        except redis.RedisError as exc:
            self._unavailable(exc)

    def reset(self, key: str) -> None:
        try:
            self._client.delete(self._key(key))
        except redis.RedisError as exc:
            self._unavailable(exc)

    @staticmethod
    def _unavailable(exc: Exception) -> float:
        """Redis down: sign-in goes on unbraked (locking everyone out would be worse)."""
        log.warning("signin.limiter_unavailable", error=type(exc).__name__)
        return 0.0


@dataclass
class SignInGuard:
    """The sign-in brakes: one limiter for accounts (by normalised address), one for client
    addresses. A try waits for whichever of the two is locked longer."""

    accounts: Limiter
    addresses: Limiter

    @staticmethod
    def _account(email: str) -> str:
        return "account:" + email.strip().lower()[:254]

    @staticmethod
    def _address(address: str) -> str:
        return "address:" + address[:64]

    def retry_after(self, email: str, address: str) -> float:
        """Seconds before this account may be tried from this address (0: now)."""
        return max(
            self.accounts.retry_after(self._account(email)),
            self.addresses.retry_after(self._address(address)),
        )

    def failed(self, email: str, address: str) -> None:
        self.accounts.failed(self._account(email))
        self.addresses.failed(self._address(address))

    def succeeded(self, email: str, address: str) -> None:
        self.accounts.reset(self._account(email))
        self.addresses.reset(self._address(address))


def signin_guard(settings: Settings, client: redis.Redis | None = None) -> SignInGuard:
    """The sign-in brakes of the settings: in Redis when ``client`` is given (the client of
    ``MEDIAPLANE_REDIS_URL``), else in this process."""
    per_account, per_address = (
        settings.signin_failures_per_account,
        settings.signin_failures_per_address,
    )
    lockout = settings.signin_lockout_seconds
    if client is None:
        return SignInGuard(
            InProcessLimiter(per_account, lockout), InProcessLimiter(per_address, lockout)
        )
    prefix = settings.queue_namespace
    return SignInGuard(
        RedisLimiter(client, per_account, lockout, prefix=prefix),
        RedisLimiter(client, per_address, lockout, prefix=prefix),
    )
