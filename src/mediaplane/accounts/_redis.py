"""The Redis client of ``MEDIAPLANE_REDIS_URL``: what the sign-in brakes and the stream limits
share across web processes (none set: both stay in process)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    from mediaplane.config import Settings

__all__ = ["redis_client"]


def redis_client(settings: Settings) -> redis.Redis | None:
    """A client for ``settings.redis_url`` (None when it is not set). Short timeouts and one
    retry (a dropped connection): a Redis that does not answer costs a request about two
    seconds at most, never a hang."""
    if not settings.redis_url:
        return None
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
    )
