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
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple
from weakref import WeakKeyDictionary

from mediaplane.accounts import CachedKeys, Viewer, ensure_secret_key, entitle
from mediaplane.catalog import (
    ModerationStatus,
    PlaybackTerms,
    Rights,
    load_territory_table,
    normalize_territory,
    playback_refusal,
)
from mediaplane.http import ApiError

if TYPE_CHECKING:
    from fastapi import Request

    from mediaplane.accounts import Decision
    from mediaplane.config import Settings
    from mediaplane.runtime import Runtime

__all__ = [
    "CARRY_SECONDS",
    "CarryClaims",
    "CarryToken",
    "OriginAuth",
    "check_playback",
    "origin_auth",
    "playback_refusal",
    "refused",
    "refused_by",
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


class CarryClaims(NamedTuple):
    """What a good carry token says: the height cap (0: none) and the viewer's account
    (None: not known, e.g. a signed token without a viewer claim)."""

    max_height: int
    user_id: str | None


def _user_ok(user: str) -> bool:
    return len(user) <= 32 and user.isascii() and user.isalnum()


class CarryToken:
    """``<expiry>.<max height, 0: none>[.<user id>].<signature>``: what the master's URLs
    carry (the user id when the viewer's account is known)."""

    def __init__(self, secret: str) -> None:
        # A key of its own, derived from the server secret (which also signs access tokens).
        self._key = hmac.new(secret.encode(), _CARRY_CONTEXT, hashlib.sha256).digest()

    def _sign(self, playback_id: str, body: str) -> str:
        mac = hmac.digest(self._key, f"{playback_id}.{body}".encode(), "sha256")
        return base64.urlsafe_b64encode(mac[:18]).decode()

    def issue(
        self, playback_id: str, max_height: int | None, now: float, user_id: str | None = None
    ) -> str:
        """A token for ``playback_id`` valid ``CARRY_SECONDS`` (at least) from ``now``
        (Unix seconds), capping video at ``max_height`` pixels, for ``user_id``'s account
        (an id of letters and digits; None: no account)."""
        expires = (int(now) + CARRY_SECONDS) // CARRY_BUCKET * CARRY_BUCKET + CARRY_BUCKET
        body = f"{expires}.{max_height or 0}"
        if user_id:
            if not _user_ok(user_id):
                raise ValueError("a carry token's user id is letters and digits")
            body += "." + user_id
        return f"{body}.{self._sign(playback_id, body)}"

    def read(self, value: str, playback_id: str, now: float) -> CarryClaims | None:
        """The claims of ``value`` if it is good for ``playback_id`` at ``now``, else None.
        Constant work: a few splits, two integers, one HMAC."""
        body, _, signature = value.rpartition(".")
        expires, _, rest = body.partition(".")
        height, _, user = rest.partition(".")
        if not (0 < len(expires) <= 12 and expires.isdigit()):
            return None
        if not (0 < len(height) <= 5 and height.isdigit()) or int(expires) <= now:
            return None
        if "." in rest and not (user and _user_ok(user)):
            return None
        good = self._sign(playback_id, body)
        if not hmac.compare_digest(good, signature):
            return None
        return CarryClaims(int(height), user or None)

    def check(self, value: str, playback_id: str, now: float) -> int | None:
        """The height cap (0: none) of ``value`` if it is good for ``playback_id`` at
        ``now``, else None (:meth:`read`)."""
        claims = self.read(value, playback_id, now)
        return claims.max_height if claims is not None else None

    def verify(self, value: str | None, playback_id: str, now: float) -> int:
        """:meth:`check`, raising the 403 that says why for a missing, expired or bad token."""
        if not value:
            raise refused("token_missing", "This URL needs its playback token (?st=).")
        cap = self.check(value, playback_id, now)
        if cap is not None:
            return cap
        expires = value.partition(".")[0]
        if (
            expires.isdigit()
            and int(expires) <= now
            and self.check(value, playback_id, 0) is not None
        ):
            raise refused("token_expired", "The playback token of this URL has expired.")
        raise refused("token_signature", "The playback token of this URL is not valid.")


class OriginAuth:
    """What the origin checks signed playback with: the carry token and the signing keys."""

    def __init__(self, rt: Runtime) -> None:
        self.carry = CarryToken(ensure_secret_key(rt.settings))
        self.keys = CachedKeys(rt.db)


_auth: WeakKeyDictionary[Runtime, OriginAuth] = WeakKeyDictionary()


def origin_auth(rt: Runtime) -> OriginAuth:
    """The runtime's :class:`OriginAuth`, made on first use (reads the secret once)."""
    found = _auth.get(rt)
    if found is None:
        found = _auth[rt] = OriginAuth(rt)
    return found


def viewer_territory(request: Request, settings: Settings) -> str | None:
    """The viewer's country: the trusted header when configured and present with a country,
    else the operator's CIDR table for the socket peer's address, else None (unknown)."""
    if settings.territory_header is not None:
        code = normalize_territory(request.headers.get(settings.territory_header))
        if code is not None:
            return code
    if settings.territory_cidr_file is not None and request.client is not None:
        return load_territory_table(settings.territory_cidr_file).lookup(request.client.host)
    return None


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
