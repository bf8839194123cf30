"""When a failed delivery is tried again: exponential backoff with full jitter."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

#: No wait between two attempts is longer than this.
MAX_DELAY_SECONDS = 3600.0


def retry_delay(
    attempts: int, base: float, rng: random.Random | None = None, cap: float = MAX_DELAY_SECONDS
) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``base · 2^(attempts-1)``
    (at most ``cap``), scaled by a random factor in [0.5, 1) so endpoints that failed
    together are not retried together."""
    ceiling = min(cap, base * 2.0 ** max(0, attempts - 1))
    draw = rng.random() if rng is not None else random.random()
    return ceiling * (0.5 + 0.5 * draw)


def next_attempt(
    attempts: int,
    created_at: datetime,
    now: datetime,
    *,
    base: float,
    window: float,
    rng: random.Random | None = None,
) -> datetime | None:
    """When to try again after ``attempts`` failures, or None once that would be past
    ``window`` seconds after the delivery was created (it has failed)."""
    at = now + timedelta(seconds=retry_delay(attempts, base, rng))
    return at if at <= created_at + timedelta(seconds=window) else None
