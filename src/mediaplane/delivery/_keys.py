"""Key and licence delivery: HLS AES-128 keys (``GET /keys/{kid}``) and a W3C ClearKey
licence server (``POST /drm/clearkey``).

Both URLs are the ones a protected asset's manifests render (absolute, with the playback
id ``pid`` and the carry token ``st`` its master playlist or MPD was admitted with). A key
is released only when the carry token is good for that playback id, the entitlement
decision (:func:`mediaplane.accounts.entitle`, as at the master) says yes now, and the KID
is one of that playback id's asset's keys. A live playback id (a protected live stream's)
is admitted the same way: its carry token, the entitlement decided now (a live stream has
no catalog terms), and a KID among the live stream's own keys (every key epoch's: rotated
keys stay releasable while segments that use them may still be played). Every decision,
granted or refused, is written to the key-release log
(:func:`mediaplane.protect.record_release`) without the key; keys are never logged, and
every answer is ``Cache-Control: no-store``.

Refusals are JSON errors with a stable ``code``: 400 ``invalid_licence_request`` /
``invalid_kid``, 403 ``token_missing`` / ``token_expired`` / ``token_signature`` (the carry
token) or the entitlement's reason, 403 ``key_not_for_asset``, 404 ``key_not_found``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import Viewer, entitle, truncate_address
from mediaplane.catalog import PlaybackTerms
from mediaplane.errors import NotFound
from mediaplane.http import ApiError, runtime_dep
from mediaplane.intake import UploadError, read_body
from mediaplane.live import resolve_live_playback
from mediaplane.protect import (
    HD_MIN_HEIGHT,
    ContentKey,
    InvalidKey,
    KeyNotFound,
    b64url,
    parse_kid,
    record_release,
)
from mediaplane.runtime import Runtime

from ._access import origin_auth, refused_by, viewer_territory
from ._service import lookup
from ._viewers import viewer_facts

if TYPE_CHECKING:
    from ._access import Carried

router = APIRouter(tags=["drm"])

_NO_STORE = {"Cache-Control": "no-store"}
#: A ClearKey licence request names a few KIDs (one per track type); bounded well above.
MAX_LICENCE_BYTES = 4096
MAX_KIDS = 16


def _error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, code, message, headers=_NO_STORE)


class _Decision:
    """One request's audit context: who asked, from where, through which channel."""

    def __init__(self, rt: Runtime, request: Request, channel: str) -> None:
        self.rt, self.channel = rt, channel
        self.playback_id = request.query_params.get("pid") or None
        self.asset_id: str | None = None
        self.principal = "anonymous"
        client = request.client.host if request.client else None
        self.address = truncate_address(client)

    def record(self, kid: str, granted: bool, reason: str) -> None:
        record_release(
            self.rt.db,
            kid=kid,
            asset_id=self.asset_id,
            playback_id=self.playback_id,
            principal=self.principal,
            channel=self.channel,
            granted=granted,
            reason=reason,
            address=self.address,
        )

    def refuse(self, kids: list[str], exc: ApiError) -> ApiError:
        for kid in kids or ["-"]:
            self.record(kid, False, exc.code)
        return exc


def _admit_live(
    rt: Runtime, request: Request, d: _Decision, kids: list[str], live_stream_id: str
) -> tuple[str, Carried]:
    """A live playback id: its carry token, then the entitlement as at its master."""
    assert d.playback_id is not None
    d.asset_id = live_stream_id
    auth = origin_auth(rt)
    try:
        c = auth.carry.verified(request.query_params.get("st"), d.playback_id, time.time())
    except ApiError as exc:
        raise d.refuse(kids, exc) from None
    d.principal = c.user_id or "anonymous"
    viewer = Viewer(lambda: viewer_territory(request, rt.settings), None, c.user_id)
    decision = entitle(None, viewer, signed=False, now=datetime.now(UTC))
    if not decision.allowed:
        raise d.refuse(kids, refused_by(decision))
    return live_stream_id, c


def _admit(rt: Runtime, request: Request, d: _Decision, kids: list[str]) -> tuple[str, Carried]:
    """The id of what the playback id plays (an asset, or a live stream) if its carry
    token is good and the viewer entitled now."""
    if d.playback_id is None or len(d.playback_id) > 64:
        raise d.refuse(
            kids, _error(400, "invalid_licence_request", "The key URL needs its ?pid= playback id.")
        )
    live = resolve_live_playback(rt, d.playback_id)
    if live is not None:
        return _admit_live(rt, request, d, kids, live.live_stream_id)
    try:
        p = lookup(rt, d.playback_id)
    except NotFound as exc:  # no such playback id, or not playable (its 404 says which)
        for kid in kids or ["-"]:
            d.record(kid, False, str(getattr(exc, "code", "not_found")))
        raise
    d.asset_id = p.asset_id
    auth = origin_auth(rt)
    try:
        c = auth.carry.verified(request.query_params.get("st"), p.playback_id, time.time())
    except ApiError as exc:
        raise d.refuse(kids, exc) from None
    d.principal = c.user_id or "anonymous"
    terms = PlaybackTerms(p.moderation, p.rights)
    viewer = Viewer(lambda: viewer_territory(request, rt.settings), None, c.user_id)
    now = datetime.now(UTC)
    # The carry token stands for the playback token the master was admitted with; the
    # catalog's terms and the access rule are decided again, now.
    if p.rule.gated:
        facts = viewer_facts(rt, c.user_id, p.asset_id, p.channel_id)
        decision = entitle(terms, viewer, signed=False, now=now, rule=p.rule, facts=facts)
    else:
        decision = entitle(terms, viewer, signed=False, now=now)
    if not decision.allowed:
        raise d.refuse(kids, refused_by(decision))
    return p.asset_id, c


def _key(rt: Runtime, d: _Decision, owner: str, c: Carried, text: str) -> ContentKey:
    """The key of KID ``text`` if it is one of ``owner``'s (the asset's or the live
    stream's), and under the token's cap."""
    try:
        kid = parse_kid(text)
    except InvalidKey as exc:
        raise d.refuse([text[:32]], _error(400, "invalid_kid", str(exc))) from None
    try:
        key = rt.keys.get(kid)
    except KeyNotFound:
        raise d.refuse([kid.hex()], _error(404, "key_not_found", "No such key.")) from None
    if key.asset_id != owner:
        raise d.refuse(
            [kid.hex()],
            _error(403, "key_not_for_asset", "This key does not belong to this playback id."),
        )
    if c.max_height and c.max_height < HD_MIN_HEIGHT and key.track_type == "hd":
        raise d.refuse(
            [kid.hex()],
            _error(403, "token_max_resolution", "This key is for renditions above the cap."),
        )
    return key


def release_keys(rt: Runtime, request: Request, kids: list[str], channel: str) -> list[ContentKey]:
    """The keys of ``kids`` for this request, every decision logged (blocking)."""
    d = _Decision(rt, request, channel)
    owner, c = _admit(rt, request, d, [k[:32] for k in kids])
    keys = [_key(rt, d, owner, c, text) for text in kids]
    for key in keys:
        d.record(key.kid_hex, True, "granted")
    return keys


@router.get("/keys/{kid}")
def hls_key(kid: str, request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    """An HLS AES-128 key: its 16 bytes, after the token and entitlement checks."""
    key = release_keys(rt, request, [kid[:64]], "hls-key")[0]
    return Response(key.key, media_type="application/octet-stream", headers=_NO_STORE)


def _licence_kids(body: bytes) -> list[str]:
    """The KIDs of a W3C ClearKey licence request ``{"kids": [...], "type": ...}``."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    kids = data.get("kids") if isinstance(data, dict) else None
    kind = data.get("type", "temporary") if isinstance(data, dict) else None
    if (
        not isinstance(kids, list)
        or not kids
        or not all(isinstance(k, str) and len(k) <= 64 for k in kids)
        or kind not in ("temporary", "persistent-license")
    ):
        raise _error(
            400,
            "invalid_licence_request",
            'A ClearKey licence request is JSON: {"kids": [base64url KIDs], "type": "temporary"}.',
        )
    if len(kids) > MAX_KIDS:
        raise _error(400, "invalid_licence_request", f"At most {MAX_KIDS} KIDs per request.")
    return list(dict.fromkeys(kids))


@router.post("/drm/clearkey")
async def clearkey_licence(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    """W3C EME ClearKey licence: the JWK set of the KIDs asked for (``temporary``)."""
    try:
        body = await read_body(request, MAX_LICENCE_BYTES)
    except UploadError as exc:
        raise _error(exc.status, exc.code, exc.message) from None
    kids = _licence_kids(body)
    keys = await run_in_threadpool(release_keys, rt, request, kids, "clearkey")
    jwks = [{"kty": "oct", "k": b64url(k.key), "kid": b64url(k.kid)} for k in keys]
    payload = json.dumps({"keys": jwks, "type": "temporary"}).encode()
    return Response(payload, media_type="application/json", headers=_NO_STORE)
