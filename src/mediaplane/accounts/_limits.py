"""Brute-force brakes for sign-in: failures counted per key (an account, a client address),
and past a threshold a lockout window that doubles with each further failure.

:class:`Limiter` is the Protocol; :class:`InProcessLimiter` keeps the counts in this process
(one web process, or "per process" on a fleet). A Redis limiter can implement the same three
methods for a fleet. :class:`SignInGuard` combines one limiter per account and one per
address, which is what the sign-in page calls.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

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
