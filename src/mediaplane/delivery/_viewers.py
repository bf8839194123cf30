"""Who watches a gated asset, and what their account holds: the origin's side of access
rules (visibility and free / plan / rental / purchase, :class:`mediaplane.accounts.AccessRule`).

At the master playlist and the MPD of a gated asset the viewer is the playback token's
viewer claim, else the signed-in user of the web session cookie (a same-origin watch page
sends it). Their :class:`~mediaplane.accounts.AccountFacts` for the asset are read from
the database and kept ``playback_cache_seconds`` (like the playback lookup); the decision
judges expiries and rental windows at request time. Media playlists and segments never
come here: the carry token, which names the user, authorises them.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from mediaplane.accounts import (
    SESSION_COOKIE,
    AccountFacts,
    PlaybackGrant,
    account_facts,
    find_session,
    record_rental_start,
)

if TYPE_CHECKING:
    from starlette.requests import Request

    from mediaplane.runtime import Runtime

__all__ = ["TtlCache", "forget_facts", "rental_started", "viewer_facts", "viewer_id"]
_MAX_COOKIE = 128


K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A small map whose entries live the seconds they were put for (oldest dropped past
    ``size``)."""

    def __init__(self, size: int = 4096) -> None:
        self.items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self.size = size

    def get(self, key: K) -> tuple[bool, V | None]:
        hit = self.items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: K, value: V, ttl: float) -> None:
        self.items[key] = (time.monotonic() + ttl, value)
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)

    def pop(self, key: K) -> None:
        self.items.pop(key, None)


#: sha256 of a session cookie → its user id (None: no live session).
_sessions: TtlCache[str, str | None] = TtlCache()
#: (user id, asset id) → what the account holds for the asset.
_facts: TtlCache[tuple[str, str], AccountFacts] = TtlCache()


def _session_user_id(rt: Runtime, cookie: str) -> str | None:
    key = hashlib.sha256(cookie.encode()).hexdigest()
    found, user_id = _sessions.get(key)
    if found:
        return user_id
    with rt.db.session() as s:
        row = find_session(s, cookie)
        user_id = row[1].id if row is not None else None
    _sessions.put(key, user_id, rt.settings.playback_cache_seconds)
    return user_id


def viewer_id(rt: Runtime, request: Request, grant: PlaybackGrant | None) -> str | None:
    """The viewer's account: the playback token's viewer claim (when it can be an account
    id: letters and digits), else the session's user."""
    if grant is not None and grant.viewer_id:
        claim = grant.viewer_id
        return claim if len(claim) <= 32 and claim.isascii() and claim.isalnum() else None
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > _MAX_COOKIE:
        return None
    return _session_user_id(rt, cookie)


def viewer_facts(
    rt: Runtime, user_id: str | None, asset_id: str, channel_id: str | None
) -> AccountFacts:
    """What ``user_id``'s account holds for the asset (cached a few seconds)."""
    if user_id is None:
        return AccountFacts()
    found, facts = _facts.get((user_id, asset_id))
    if found and facts is not None:
        return facts
    with rt.db.session() as s:
        facts = account_facts(s, user_id, asset_id, channel_id)
    _facts.put((user_id, asset_id), facts, rt.settings.playback_cache_seconds)
    return facts


def forget_facts(user_id: str, asset_id: str) -> None:
    """Drop the cached facts (after a write that changes them)."""
    _facts.pop((user_id, asset_id))


def rental_started(rt: Runtime, grant_id: str, user_id: str, asset_id: str, now: datetime) -> None:
    """Record a rental's first play (once: a later call changes nothing)."""
    with rt.db.session() as s:
        record_rental_start(s, grant_id, now)
    forget_facts(user_id, asset_id)
