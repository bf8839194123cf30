"""The playback access check: the entitlement decision at the origin, and the carry token.

Every playback request (manifests, segments, thumbnails) is checked against the asset's
catalog terms (moderation hold, availability window, territory) with what the origin's
short-lived lookup cache holds; the window is judged against the current time on each
request, never at cache time. The viewer's territory is looked up only when the asset's
rights restrict territories. The decision is :func:`mediaplane.accounts.entitle`.

Signed playback ids: the master playlist and the MPD (and thumbnails, storyboards) need a
playback token (``?token=``, RS256, checked with the signing keys cached a few seconds);
the URLs they render carry a :class:`CarryToken` (``?st=``): an HMAC, keyed by the server
secret, over the playback id, an expiry, the height cap and the viewer's account (when
known). Media playlists and segments check it in O(1) — no database, no RSA — so a CDN
edge could check it too. Gated assets (private, or not free: :mod:`._viewers`) carry one
the same way, whatever their playback id's policy.

Concurrent streams: when the viewer has an account (a web session, or the playback token's
``viewer_id``) and a limit applies (the plan's, on the decision, else
``MEDIAPLANE_MAX_STREAMS_PER_VIEWER``), the master claims a stream (:class:`StreamTracker`)
and its carry token names the account, the stream and the limit; the stream's later requests
renew it (a dictionary lookup per request, the limiter at most every few seconds), and a
start over the limit is a 429 ``too_many_streams``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mediaplane.accounts import (
    CachedKeys,
    StreamTracker,
    Viewer,
    ensure_secret_key,
    entitle,
    redis_client,
    stream_tracker,
)
from mediaplane.catalog import (
    ModerationStatus,
    PlaybackTerms,
    Rights,
    playback_refusal,
    viewer_territory,
)
from mediaplane.http import ApiError

if TYPE_CHECKING:
    from fastapi import Request

    from mediaplane.accounts import Decision
    from mediaplane.config import Settings
    from mediaplane.runtime import Runtime

__all__ = [
    "CARRY_SECONDS",
    "Carried",
    "CarryToken",
    "OriginAuth",
    "check_playback",
    "origin_auth",
    "playback_refusal",
    "refused",
    "refused_by",
    "stream_account",
    "too_many_streams",
    "viewer_territory",
]

#: How long a carry token lets media playlists and segments play after the master was
#: fetched (a long film plus pauses), rounded up to :data:`CARRY_BUCKET` so that the
#: rendered master stays the same (and cacheable) for a while.
CARRY_SECONDS = 4 * 3600
CARRY_BUCKET = 600
_CARRY_CONTEXT = b"mediaplane/carry-token/v1"
_NO_STORE = {"Cache-Control": "no-store"}
_HELD = frozenset({ModerationStatus.PENDING, ModerationStatus.REJECTED})


def refused(code: str, message: str) -> ApiError:
    """The 403 of a refusal: it depends on the viewer and the clock, so no cache keeps it."""
    return ApiError(403, code, message, headers=_NO_STORE)


def refused_by(decision: Decision) -> ApiError:
    """The refusal of a decision that is no: 404 for ``private`` (a private video does not
    exist for those who may not play it; the code says why), else a 403 (:func:`refused`)."""
    code = decision.reason or "forbidden"
    if code == "private":
        return ApiError(404, code, decision.message, headers=_NO_STORE)
    return refused(code, decision.message)


#: A user id or stream id as a carry token holds it (no ``.``: the token's separator).
_CARRY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Carried:
    """What a good carry token says: the height cap (0: none) and, for a counted stream,
    the account (``user_id``), the stream and the account's limit (``max_streams``)."""

    max_height: int
    user_id: str | None = None
    stream_id: str | None = None
    max_streams: int = 0


class CarryToken:
    """What the master's URLs carry: ``<expiry>.<max height, 0: none>.<signature>``, with the
    viewer's account after the height (``<expiry>.<height>.<user_id>.<signature>``) and, for
    a counted stream, its id and limit too (``….<user_id>.<stream_id>.<max_streams>.<sig>``)."""

    def __init__(self, secret: str) -> None:
        # A key of its own, derived from the server secret (which also signs access tokens).
        self._key = hmac.new(secret.encode(), _CARRY_CONTEXT, hashlib.sha256).digest()

    def _sign(self, playback_id: str, body: str) -> str:
        mac = hmac.digest(self._key, f"{playback_id}.{body}".encode(), "sha256")
        return base64.urlsafe_b64encode(mac[:18]).decode()

    def issue(
        self,
        playback_id: str,
        max_height: int | None,
        now: float,
        *,
        user_id: str | None = None,
        stream_id: str | None = None,
        max_streams: int = 0,
    ) -> str:
        """A token for ``playback_id`` valid ``CARRY_SECONDS`` (at least) from ``now``
        (Unix seconds), capping video at ``max_height`` pixels; for the account ``user_id``
        and its stream ``stream_id`` (counted under ``max_streams``) when given."""
        expires = (int(now) + CARRY_SECONDS) // CARRY_BUCKET * CARRY_BUCKET + CARRY_BUCKET
        fields = [str(expires), str(max_height or 0)]
        if stream_id is not None and user_id is None:
            raise ValueError("a stream belongs to an account: user_id is needed")
        if user_id is not None:
            fields.append(_carry_id(user_id))
        if stream_id is not None:
            fields += [_carry_id(stream_id), str(max(0, max_streams))]
        body = ".".join(fields)
        return f"{body}.{self._sign(playback_id, body)}"

    def read(self, value: str, playback_id: str, now: float) -> Carried | None:
        """What ``value`` carries if it is good for ``playback_id`` at ``now``, else None.
        Constant work: a split, a few bounded fields, one HMAC."""
        if len(value) > 400:
            return None
        body, _, signature = value.rpartition(".")
        parts = body.split(".")
        if len(parts) not in (2, 3, 5):
            return None
        expires, height = parts[0], parts[1]
        if not (0 < len(expires) <= 12 and expires.isdigit()):
            return None
        if not (0 < len(height) <= 5 and height.isdigit()) or int(expires) <= now:
            return None
        user = stream = None
        limit = 0
        if len(parts) > 2:
            user = parts[2]
            if not _CARRY_ID.fullmatch(user):
                return None
        if len(parts) == 5:
            stream, count = parts[3], parts[4]
            if not (_CARRY_ID.fullmatch(stream) and 0 < len(count) <= 4 and count.isdigit()):
                return None
            limit = int(count)
        good = self._sign(playback_id, body)
        if not hmac.compare_digest(good, signature):
            return None
        return Carried(int(height), user, stream, limit)

    def check(self, value: str, playback_id: str, now: float) -> int | None:
        """The height cap (0: none) of ``value`` if it is good for ``playback_id`` at
        ``now``, else None (:meth:`read`)."""
        found = self.read(value, playback_id, now)
        return None if found is None else found.max_height

    def verified(self, value: str | None, playback_id: str, now: float) -> Carried:
        """:meth:`read`, raising the 403 that says why for a missing, expired or bad token."""
        if not value:
            raise refused("token_missing", "This URL needs its playback token (?st=).")
        found = self.read(value, playback_id, now)
        if found is not None:
            return found
        expires = value.partition(".")[0]
        if (
            expires.isdigit()
            and int(expires) <= now
            and self.read(value, playback_id, 0) is not None
        ):
            raise refused("token_expired", "The playback token of this URL has expired.")
        raise refused("token_signature", "The playback token of this URL is not valid.")

    def verify(self, value: str | None, playback_id: str, now: float) -> int:
        """The height cap of :meth:`verified` (0: none)."""
        return self.verified(value, playback_id, now).max_height


def _carry_id(value: str) -> str:
    if not _CARRY_ID.fullmatch(value):
        raise ValueError("a carry token's ids are 1-64 of A-Z a-z 0-9 _ -")
    return value


def stream_account(user_id: str | None, viewer_id: str | None) -> str | None:
    """The account a stream is counted for: the signed-in user, else the playback token's
    viewer id (as a carry-token id: itself when it fits, else a digest of it)."""
    if user_id is not None:
        return user_id
    if not viewer_id:
        return None
    if _CARRY_ID.fullmatch(viewer_id):
        return viewer_id
    digest = hashlib.sha256(viewer_id.encode()).digest()[:16]
    return "v-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def too_many_streams(tracker: StreamTracker) -> ApiError:
    """The 429 of a start (or a stream that had freed itself) over the account's limit."""
    return ApiError(
        429,
        "too_many_streams",
        "This account is already playing on as many screens as its plan allows; stop one "
        "of them (it frees itself within a minute) and try again.",
        headers={**_NO_STORE, "Retry-After": str(max(1, round(tracker.limiter.ttl)))},
    )


class OriginAuth:
    """What the origin checks signed playback with: the carry token and the signing keys;
    and what it counts streams with (in Redis when ``MEDIAPLANE_REDIS_URL`` is set)."""

    def __init__(self, rt: Runtime) -> None:
        self.carry = CarryToken(ensure_secret_key(rt.settings))
        self.keys = CachedKeys(rt.db, ttl=rt.settings.playback_cache_seconds)
        self.streams = stream_tracker(rt.settings, redis_client(rt.settings))


def origin_auth(rt: Runtime) -> OriginAuth:
    """The runtime's :class:`OriginAuth`, made on first use (reads the secret once)."""
    return rt.shared(OriginAuth)


def check_playback(
    request: Request,
    settings: Settings,
    *,
    moderation: ModerationStatus,
    rights: Rights | None,
) -> None:
    """Raise a 403 :class:`ApiError` with the refusal's code when playback is not allowed
    (a public playback id: no token)."""
    if rights is None and moderation not in _HELD:
        return  # the common case: nothing to check
    terms = PlaybackTerms(moderation, rights)
    viewer = Viewer(lambda: viewer_territory(request, settings))
    decision = entitle(terms, viewer, signed=False, now=datetime.now(UTC))
    if not decision.allowed:
        raise refused(decision.reason or "forbidden", decision.message)
