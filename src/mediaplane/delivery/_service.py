"""The playback service: what the origin's routes (:mod:`._origin`, :mod:`._thumbs`) and its
lean path (:mod:`._fast`) call.

* lookup — playback id → :class:`Playable` (database, then a few seconds in memory), checked
  against the viewer (:func:`._access.check_playback`; for a signed playback id,
  :func:`admitted` checks the playback token and :func:`carried` the carry token);
* render — manifests rendered once per asset version with their ETag (:class:`Text`);
* serve — segments as local files or byte ranges of remote objects; thumbnails from stored
  frames or extracted with ffmpeg (the caller bounds how many at once).

Errors::

    DeliveryError
    └── PlaybackNotFound   404 (also a mediaplane.errors.NotFound), ``code`` not_found,
        │                  asset_errored
        └── NotReady       404 asset_not_ready with Retry-After
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import tempfile
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mediaplane.accounts import (
    SESSION_COOKIE,
    AccessRule,
    Decision,
    PlaybackGrant,
    PlaybackTokenRejected,
    Viewer,
    Visibility,
    entitle,
    verify_playback_token,
)
from mediaplane.catalog import (
    AssetStatus,
    ModerationStatus,
    PlaybackPolicy,
    PlaybackTerms,
    Rights,
    asset_for_playback,
    poster_key,
)
from mediaplane.errors import NotFound
from mediaplane.media import (
    STORYBOARD_WIDTHS,
    DrmUrls,
    PackagingOptions,
    Presentation,
    Rendition,
    ShakaPackager,
    TrackKey,
    decrypt_segment,
    extract_thumbnail,
    render_hls_master,
    render_hls_media,
    render_mpd,
    segment_iv,
    snap_thumbnail,
    storyboard_points,
    thumbnail_name,
)
from mediaplane.storage import ObjectNotFound

from ._access import (
    Carried,
    OriginAuth,
    check_playback,
    origin_auth,
    refused,
    refused_by,
    stream_account,
    too_many_streams,
    viewer_territory,
)
from ._viewers import rental_started, viewer_facts, viewer_id

if TYPE_CHECKING:
    from starlette.requests import Request

    from mediaplane.runtime import Runtime

IMMUTABLE = "public, max-age=31536000, immutable"
MANIFEST_CACHE = "public, max-age=60"
#: A playlist that gains segments: caches may hold it for about one segment at most.
GROWING_CACHE = "public, max-age=1"
RESTRICTED_CACHE = "private, max-age=60"
THUMB_CACHE = "public, max-age=86400"
HLS_TYPE = "application/vnd.apple.mpegurl"
DASH_TYPE = "application/dash+xml"
RID = re.compile(r"^[a-z0-9_]{1,32}$")
_SEGMENT = re.compile(r"(\d{1,9})\.m4s")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class DeliveryError(Exception):
    """Root of the playback service's errors."""


class PlaybackNotFound(DeliveryError, NotFound):
    """No such playback id, rendition, segment or picture, or an asset that failed."""

    def __init__(self, message: str, code: str = "not_found") -> None:
        super().__init__(message)
        self.code = code


class NotReady(PlaybackNotFound):
    """Not playable yet; the client may retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, "asset_not_ready")
        self.headers = {"Retry-After": str(retry_after)}


@dataclass(frozen=True)
class Playable:
    asset_id: str
    updated_at: datetime
    presentation: Presentation
    moderation: ModerationStatus
    rights: Rights | None
    playback_id: str = ""
    #: A signed playback id: plays with a playback token (see :func:`admitted`).
    signed: bool = False
    #: Under rights, signed or gated: caches must not share its responses between viewers.
    private: bool = False
    #: rendition id → its segment numbers, so a segment request is a set lookup.
    numbers: dict[str, frozenset[int]] = field(default_factory=dict, compare=False)
    #: Visibility and access rule; a gated asset plays like a signed id (carry tokens).
    rule: AccessRule = AccessRule()
    channel_id: str | None = None
    #: The origin's public base URL (``settings.public_url``): licence and key URLs are
    #: absolute.
    base_url: str = ""
    #: Some of its renditions are encrypted (players may still be on older ones).
    protected: bool = False

    @property
    def carries(self) -> bool:
        """Media playlists and segments need a carry token (signed, a gated asset, or a
        protected one: its key and licence requests carry the token too)."""
        return self.signed or self.rule.gated or self.protected

    def has_segment(self, rendition: Rendition, number: int) -> bool:
        known = self.numbers.get(rendition.id)
        if known is None:
            known = self.numbers[rendition.id] = frozenset(s.number for s in rendition.segments)
        return number in known


@dataclass(frozen=True)
class Text:
    """A rendered manifest with its ETag and the headers it is served with."""

    body: bytes
    etag: str
    media_type: str
    cache: str


class _LookupCache:
    """playback id → Playable for a few seconds, so segment requests skip the database."""

    def __init__(self, size: int = 2048) -> None:
        self.items: OrderedDict[str, tuple[float, Playable]] = OrderedDict()
        self.size = size

    def get(self, key: str) -> Playable | None:
        hit = self.items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, value: Playable, ttl: float) -> None:
        self.items[key] = (time.monotonic() + ttl, value)
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


_lookups = _LookupCache()
#: (asset, manifest name, asset version) → rendered body and its ETag (hashed once).
_manifests: OrderedDict[tuple[str, str, datetime], tuple[bytes, str]] = OrderedDict()


# -- lookup --------------------------------------------------------------------------------


#: What the lookup cache holds for a playback id now (no I/O), or None: the lean path's
#: lookup (the cache's own method, so it costs no extra call).
cached_playable = _lookups.get


def playable(rt: Runtime, playback_id: str, request: Request, aud: str = "v") -> Playable:
    """The asset behind ``playback_id`` if this viewer may play it now (else 403/404);
    ``aud`` is the use a signed playback id's token must be for (``v``, ``t``, ``s``)."""
    return admitted(rt, playback_id, request, aud)[0]


def lookup(rt: Runtime, playback_id: str) -> Playable:
    """The playable asset behind ``playback_id``: cached, else read from the database
    (and cached once its presentation is complete)."""
    hit = _lookups.get(playback_id)
    if hit is not None:
        return hit
    with rt.db.session() as s:
        asset, pid = asset_for_playback(s, playback_id)
        if asset.status is AssetStatus.ERRORED:
            raise PlaybackNotFound("This asset failed to process.", "asset_errored")
        if asset.status is not AssetStatus.READY or not asset.presentation:
            raise NotReady("This asset is still being prepared.", retry_after=2)
        signed = pid.policy is PlaybackPolicy.SIGNED
        rule = AccessRule(asset.visibility, asset.access, asset.rental_hours)
        found = Playable(
            asset.id,
            asset.updated_at,
            Presentation.from_dict(asset.presentation),
            asset.moderation,
            Rights.from_json(asset.rights) if asset.rights else None,
            playback_id,
            signed,
            signed or asset.rights is not None or rule.gated,
            rule=rule,
            channel_id=asset.channel_id,
            base_url=rt.settings.effective_public_url,
        )
        if any(r.kid for r in found.presentation.renditions):
            # Its manifests carry the token its licence asks for: one viewer's, uncached.
            found = replace(found, protected=True, private=True)
    if found.presentation.complete:  # a growing presentation changes with every segment
        _lookups.put(playback_id, found, rt.settings.playback_cache_seconds)
    return found


# -- signed playback -----------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What an admitted request renders with: the query its URLs carry (``""`` for a public
    playback id, else ``?st=<carry token>``) and the cap on video height (None: none)."""

    query: str = ""
    max_height: int | None = None


PUBLIC = Access()


def admitted(
    rt: Runtime, playback_id: str, request: Request, aud: str = "v"
) -> tuple[Playable, Access]:
    """The asset behind ``playback_id`` and what this viewer may render of it (else 403/404):
    for a signed playback id, the playback token (``?token=``, for use ``aud``) is checked
    and the entitlement decided; so is a gated asset's (private, or not free) with the
    viewer's account; a public one is checked as it always was."""
    p = lookup(rt, playback_id)
    if not p.carries or _shop_window(p, aud):
        check_playback(request, rt.settings, moderation=p.moderation, rights=p.rights)
        return p, PUBLIC
    try:
        return p, _admit_signed(rt, p, request, aud)
    except PlaybackTokenRejected as exc:
        raise refused(exc.code, exc.message) from None


def _shop_window(p: Playable, aud: str) -> bool:
    """Thumbnails of a public playback id play for anyone unless the asset is private:
    a plan's or a rental's poster is what its index shows."""
    return not p.signed and aud == "t" and p.rule.visibility is not Visibility.PRIVATE


def _admit_signed(rt: Runtime, p: Playable, request: Request, aud: str) -> Access:
    auth = origin_auth(rt)
    token = request.query_params.get("token")
    carry = request.query_params.get("st")
    if not token and carry and aud == "t":  # a thumbnail a storyboard points at
        cap = auth.carry.verify(carry, p.playback_id, time.time())
        check_playback(request, rt.settings, moderation=p.moderation, rights=p.rights)
        return Access("", cap or None)
    grant = verify_playback_token(token, p.playback_id, aud, auth.keys) if token else None
    user_id = viewer_id(rt, request, grant) if p.rule.gated else None
    facts = viewer_facts(rt, user_id, p.asset_id, p.channel_id) if p.rule.gated else None
    viewer = Viewer(lambda: viewer_territory(request, rt.settings), grant, user_id)
    terms = PlaybackTerms(p.moderation, p.rights)
    now = datetime.now(UTC)
    if facts is None:
        decision = entitle(terms, viewer, signed=p.signed, now=now)
    else:
        decision = entitle(terms, viewer, signed=p.signed, now=now, rule=p.rule, facts=facts)
    if not decision.allowed:
        raise refused_by(decision)
    if decision.start_rental is not None and user_id is not None:
        rental_started(rt, decision.start_rental, user_id, p.asset_id, now)
    if aud == "v":  # a master playlist or MPD: a stream starts
        return _start_stream(rt, auth, p.playback_id, request, grant, decision, user_id)
    carried_token = auth.carry.issue(
        p.playback_id, decision.max_height, time.time(), user_id=user_id
    )
    return Access("?st=" + carried_token, decision.max_height)


def _start_stream(
    rt: Runtime,
    auth: OriginAuth,
    playback_id: str,
    request: Request,
    grant: PlaybackGrant | None,
    decision: Decision,
    user_id: str | None,
) -> Access:
    """The carry token of a new stream: counted for the viewer's account when a limit
    applies (the plan's, else the install's), refused with ``too_many_streams`` past it.

    :param user_id: the viewer's account when already known (a gated asset's decision)."""
    limit = decision.max_streams
    if limit is None:
        limit = rt.settings.max_streams_per_viewer
    now = time.time()
    if limit <= 0:
        plain = auth.carry.issue(playback_id, decision.max_height, now, user_id=user_id)
        return Access("?st=" + plain, decision.max_height)
    user_id = user_id or viewer_id(rt, request, None)  # the session's user, if any
    account = stream_account(user_id, grant.viewer_id if grant else None)
    if account is None:  # nobody to count: an anonymous token
        plain = auth.carry.issue(playback_id, decision.max_height, now)
        return Access("?st=" + plain, decision.max_height)
    # One browser session replaying one video is the same stream (a reload must not count
    # twice); apps get a new stream per start (and may release it: DELETE …/stream).
    cookie = request.cookies.get(SESSION_COOKIE)
    same = _session_stream(cookie, playback_id) if user_id and cookie else None
    stream = auth.streams.start(account, limit, same)
    if stream is None:
        raise too_many_streams(auth.streams)
    token = auth.carry.issue(
        playback_id,
        decision.max_height,
        now,
        user_id=account,
        stream_id=stream,
        max_streams=limit,
    )
    return Access("?st=" + token, decision.max_height)


def admit_live(rt: Runtime, playback_id: str, request: Request, *, signed: bool = True) -> Access:
    """A signed live playback id's master playlist or MPD: the playback token (``?token=``,
    use ``v``) checked and the entitlement decided as for a signed VOD id (a live stream has
    no catalog terms), then a stream started with its carry token (:func:`_start_stream`).
    A public but protected one (``signed`` False) needs no token, and gets a carry token
    all the same (its licence requests carry it). Blocking (signing keys, the stream
    limiter); raises the 403/429 :class:`ApiError`."""
    auth = origin_auth(rt)
    token = request.query_params.get("token")
    try:
        grant = verify_playback_token(token, playback_id, "v", auth.keys) if token else None
        viewer = Viewer(lambda: viewer_territory(request, rt.settings), grant)
        decision = entitle(None, viewer, signed=signed, now=datetime.now(UTC))
    except PlaybackTokenRejected as exc:
        raise refused(exc.code, exc.message) from None
    if not decision.allowed:
        raise refused_by(decision)
    return _start_stream(rt, auth, playback_id, request, grant, decision, None)


def _drm_tail(playback_id: str, query: str) -> str:
    """The query of a licence or key URL: ``query`` (the carry token), then the playback id."""
    return f"{query}{'&' if query else '?'}pid={playback_id}"


def live_licence_url(rt: Runtime, playback_id: str, query: str) -> str:
    """The absolute ClearKey licence URL a protected live playback id's manifests name,
    carrying ``query`` (the carry token) and the playback id (as :func:`drm_urls`)."""
    return f"{rt.settings.effective_public_url}/drm/clearkey{_drm_tail(playback_id, query)}"


def live_carried(rt: Runtime, playback_id: str, value: str | None) -> tuple[Carried, bool]:
    """A signed live id's media playlist or file: what its carry token (``?st=``) says, and
    whether its stream is due a renewal (:func:`renew_carried`, blocking). No I/O: one HMAC.
    Raises the 403 that says why for a missing, expired or bad token."""
    auth = origin_auth(rt)
    c = auth.carry.verified(value, playback_id, time.time())
    return c, c.stream_id is not None and auth.streams.due(c.stream_id)


def renew_carried(rt: Runtime, c: Carried) -> None:
    """Renew the stream of a carry token (blocking; 429 when it had freed itself and its
    account is at the limit)."""
    _renew(origin_auth(rt), c)


def _session_stream(cookie: str, playback_id: str) -> str:
    """The stream id of a web session playing ``playback_id`` (the cookie stays secret)."""
    digest = hashlib.sha256(f"mediaplane/stream/{cookie}/{playback_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def _renew(auth: OriginAuth, c: Carried) -> None:
    """A request of ``c``'s stream: renew it when due (else nothing: no I/O); a stream that
    had freed itself and finds its account at the limit is refused (429)."""
    if c.stream_id is None or c.user_id is None or not auth.streams.due(c.stream_id):
        return
    if not auth.streams.beat(c.user_id, c.stream_id, c.max_streams):
        raise too_many_streams(auth.streams)


def stream_ping(rt: Runtime, playback_id: str, request: Request) -> float:
    """A player's heartbeat for the stream of its carry token (``?st=``, paused players):
    renews it and returns the seconds it lives without another (403/429 when refused)."""
    auth = origin_auth(rt)
    _renew(auth, auth.carry.verified(request.query_params.get("st"), playback_id, time.time()))
    return auth.streams.limiter.ttl


def stream_stop(rt: Runtime, playback_id: str, request: Request) -> None:
    """Release the stream of a carry token now (the player stopped); nothing for a token
    that counts no stream."""
    auth = origin_auth(rt)
    c = auth.carry.verified(request.query_params.get("st"), playback_id, time.time())
    if c.stream_id is not None and c.user_id is not None:
        auth.streams.release(c.user_id, c.stream_id)


def carried(
    rt: Runtime, playback_id: str, request: Request, rendition: str
) -> tuple[Playable, str]:
    """A media playlist's or segment's asset and the query its URLs carry (else 403/404):
    a signed playback id's carry token (``?st=``) is checked without the database."""
    p = lookup(rt, playback_id)
    query = ""
    if p.carries:  # the token first: the asset's own refusals are for entitled viewers
        value = request.query_params.get("st")
        auth = origin_auth(rt)
        c = auth.carry.verified(value, playback_id, time.time())
        if not _within(p, rendition, c.max_height):
            raise refused("token_max_resolution", "This rendition is above the token's cap.")
        _renew(auth, c)
        query = "?st=" + (value or "")
    check_playback(request, rt.settings, moderation=p.moderation, rights=p.rights)
    return p, query


def carried_query(rt: Runtime, p: Playable, query_string: bytes, parts: list[str]) -> str:
    """The lean path's :func:`carried` for a cached signed ``p`` and the request path's
    ``parts`` after /play/: the query to render with, or ``""`` when it is not a media
    playlist or segment, or the carry token is missing, bad or expired, or the rendition is
    above its cap, or its stream is due a renewal (the route then answers, with the
    reason, or renews the stream in a thread)."""
    if len(parts) != 3:
        return ""
    rendition = parts[1]
    for part in query_string.split(b"&"):
        if part.startswith(b"st="):
            value = part[3:].decode("latin-1")
            auth = origin_auth(rt)
            c = auth.carry.read(value, p.playback_id, time.time())
            if c is None or not _within(p, rendition, c.max_height):
                return ""
            if c.stream_id is not None and auth.streams.due(c.stream_id):
                return ""
            return "?st=" + value
    return ""


def _within(p: Playable, rendition: str, cap: int) -> bool:
    """Whether ``rendition`` is under the height cap (0: no cap); unknown ids pass (404 later)."""
    if not cap:
        return True
    r = p.presentation.rendition(rendition)
    return r is None or r.kind != "video" or (r.height or 0) <= cap


def _capped(pres: Presentation, cap: int | None) -> Presentation:
    """``pres`` without the video renditions above ``cap`` pixels high (the lowest stays)."""
    if cap is None:
        return pres
    videos = pres.video
    keep = {r.id for r in videos if (r.height or 0) <= cap}
    if videos and not keep:
        keep = {videos[0].id}
    return replace(
        pres, renditions=[r for r in pres.renditions if r.kind != "video" or r.id in keep]
    )


# -- render --------------------------------------------------------------------------------


def drm_urls(p: Playable, query: str) -> DrmUrls | None:
    """The absolute licence and key URLs of a protected ``p``, carrying ``query`` (the
    carry token) and the playback id; None when ``p`` is clear."""
    if not p.protected:
        return None
    tail = _drm_tail(p.playback_id, query)
    return DrmUrls(f"{p.base_url}/drm/clearkey{tail}", f"{p.base_url}/keys/{{kid}}{tail}")


def _personal(query: str) -> bool:
    """Whether URLs carrying ``query`` are one viewer's (a carry token that names an account
    has more than three fields): such manifests are kept once as a template, not per viewer."""
    return query.count(".") > 2


#: Where a viewer's carry token goes in a kept template (upper case: never in an id).
_MARK = "?st=CARRY-TOKEN"
_MARK_BYTES = _MARK.encode()


def _carrying(
    p: Playable,
    name: str,
    variant: str,
    query: str,
    render: Callable[[str], str],
    media_type: str,
    cache: str,
) -> Text:
    """A manifest whose URLs carry ``query``: kept per query when it is shared (a carry token
    of no account), else rendered once as a template (``variant``: what else it depends on)
    with the viewer's token put in per request, and an ETag of its own."""
    if not _personal(query):
        return _manifest(p, name + query, lambda: render(query), media_type, cache)
    t = _manifest(p, f"{name}{variant}{_MARK}", lambda: render(_MARK), media_type, cache)
    q = query.encode()
    tag = hashlib.sha1(q, usedforsecurity=False).hexdigest()[:16]
    return Text(t.body.replace(_MARK_BYTES, q), f'{t.etag[:-1]}-{tag}"', t.media_type, t.cache)


def _manifest(
    p: Playable, name: str, render: Callable[[], str], media_type: str, cache: str
) -> Text:
    key = (p.asset_id, name, p.updated_at)
    hit = _manifests.get(key)
    if hit is None:
        body = render().encode()
        hit = body, '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest() + '"'
        if not _personal(name):
            _manifests[key] = hit
            while len(_manifests) > 4096:
                _manifests.popitem(last=False)
    return Text(hit[0], hit[1], media_type, cache_control(p, cache))


def cache_control(p: Playable, public: str) -> str:
    """Media under rights (territories, a window) or signed must not be shared by caches
    between viewers or outlive the window: private and short for those, ``public`` for
    the rest."""
    return RESTRICTED_CACHE if p.private else public


def master_text(p: Playable, access: Access = PUBLIC) -> Text:
    """The HLS master playlist of ``p`` (its URLs carrying ``access.query``)."""
    growing = not p.presentation.complete
    cache = GROWING_CACHE if growing else MANIFEST_CACHE
    if access is PUBLIC:
        return _manifest(p, "master", lambda: render_hls_master(p.presentation), HLS_TYPE, cache)
    pres = _capped(p.presentation, access.max_height)
    return _carrying(
        p,
        "master",
        f"@{access.max_height}",
        access.query,
        lambda q: render_hls_master(pres, q, drm_urls(p, q)),
        HLS_TYPE,
        cache,
    )


def mpd_text(p: Playable, access: Access = PUBLIC) -> Text:
    """The DASH MPD of ``p`` (404 while only the muxed preview exists), its segment URLs
    carrying ``access.query``."""
    if any(r.scheme == "aes-128" for r in p.presentation.renditions if r.listed):
        raise PlaybackNotFound(
            "This asset is protected with HLS AES-128 (whole-segment encryption), which DASH "
            "cannot carry: play its HLS playlist, master.m3u8, instead.",
            "dash_not_available",
        )
    if not p.presentation.settled:
        raise NotReady(
            "DASH is served once the first renditions are packaged; HLS plays already.",
            retry_after=5,
        )
    # Rungs still encoding join later: a snapshot MPD must not be cached for long.
    cache = MANIFEST_CACHE if p.presentation.complete else GROWING_CACHE
    if access is PUBLIC:
        return _manifest(p, "mpd", lambda: render_mpd(p.presentation), DASH_TYPE, cache)
    pres = _capped(p.presentation, access.max_height)
    return _carrying(
        p,
        "mpd",
        f"@{access.max_height}",
        access.query,
        lambda q: render_mpd(pres, q, drm_urls(p, q)),
        DASH_TYPE,
        cache,
    )


def _rendition(p: Playable, rendition: str) -> Rendition:
    r = p.presentation.rendition(rendition) if RID.match(rendition) else None
    if r is None:
        raise PlaybackNotFound("No such rendition.")
    return r


def media_text(p: Playable, rendition: str, query: str = "") -> Text:
    """The HLS media playlist of one rendition of ``p`` (its URLs carrying ``query``)."""
    r = _rendition(p, rendition)
    return _carrying(
        p,
        f"media:{r.id}",
        "",
        query,
        lambda q: render_hls_media(
            r,
            p.presentation.segment_seconds,
            q,
            drm=drm_urls(p, q),
        ),
        HLS_TYPE,
        MANIFEST_CACHE if r.complete else GROWING_CACHE,
    )


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def storyboard_text(p: Playable, width: int, access: Access = PUBLIC) -> Text:
    """Seek previews as WebVTT: one cue per storyboard grid point, pointing at its
    thumbnail at the storyboard width nearest above ``width`` (carrying ``access.query``)."""
    pres = p.presentation
    if not pres.video:
        raise PlaybackNotFound("This asset has no video.")
    w = next((x for x in STORYBOARD_WIDTHS if x >= width), STORYBOARD_WIDTHS[-1])
    carry = "&" + access.query[1:] if access.query else ""

    def render() -> str:
        points = storyboard_points(pres.duration, pres.segment_seconds)
        ends = [*points[1:], pres.duration]
        cues = (
            f"{_vtt_time(t)} --> {_vtt_time(end)}\nthumbnail.jpg?time={t}&width={w}{carry}\n"
            for t, end in zip(points, ends, strict=True)
        )
        return "WEBVTT\n\n" + "\n".join(cues)

    cache = MANIFEST_CACHE if pres.complete else GROWING_CACHE
    return _manifest(p, f"storyboard:{w}{carry}", render, "text/vtt; charset=utf-8", cache)


# -- serve: segments -----------------------------------------------------------------------


def segment_object(p: Playable, rendition: str, name: str) -> tuple[str, str, str]:
    """(object key, media type, Cache-Control) of an init or media segment of ``p``."""
    r = _rendition(p, rendition)
    if name == "init.mp4":
        media_type = "video/mp4" if r.kind == "video" else "audio/mp4"
    else:
        m = _SEGMENT.fullmatch(name)
        if m is None or not p.has_segment(r, int(m.group(1))):
            raise PlaybackNotFound("No such segment.")
        media_type = "video/iso.segment"
    return f"assets/{p.asset_id}/cmaf/{r.id}/{name}", media_type, cache_control(p, IMMUTABLE)


@dataclass(frozen=True)
class Segment:
    """A segment to send: its object, headers and, in a local store, its file."""

    key: str
    media_type: str
    cache: str
    local: Path | None


def segment(rt: Runtime, p: Playable, rendition: str, name: str) -> Segment:
    """The init or media segment ``name`` of one rendition of ``p``."""
    key, media_type, cache = segment_object(p, rendition, name)
    try:
        local = rt.store.local_path(key)
    except ObjectNotFound:
        raise PlaybackNotFound("Segment not found.") from None
    return Segment(key, media_type, cache, local)


@dataclass(frozen=True)
class ByteRange:
    """The part of a remote segment to send: bytes ``[start, end)`` with ``status`` (200,
    206, or 416 with nothing to send) and the headers that describe them."""

    status: int
    headers: dict[str, str]
    start: int = 0
    end: int = 0


def segment_range(rt: Runtime, seg: Segment, range_header: str) -> ByteRange:
    """What to send of a remote segment for a ``Range`` header (``""``: all of it)."""
    try:
        info = rt.store.stat(seg.key)
    except ObjectNotFound:
        raise PlaybackNotFound("Segment not found.") from None
    headers = {"Cache-Control": seg.cache, "ETag": f'"{info.etag}"', "Accept-Ranges": "bytes"}
    start, end, status = 0, info.size, 200
    m = _RANGE.match(range_header.strip())
    if m and (m.group(1) or m.group(2)):
        if m.group(1):
            start = int(m.group(1))
            end = min(info.size, int(m.group(2)) + 1) if m.group(2) else info.size
        else:
            start, end = max(0, info.size - int(m.group(2))), info.size
        if start >= end or start >= info.size:
            return ByteRange(416, {"Content-Range": f"bytes */{info.size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    headers["Content-Length"] = str(end - start)
    return ByteRange(status, headers, start, end)


def segment_bytes(rt: Runtime, seg: Segment, span: ByteRange) -> AsyncIterator[bytes]:
    """The bytes of ``span`` of a remote segment, streamed from the store."""
    return rt.store.iter_range(seg.key, span.start, span.end)


# -- serve: pictures -----------------------------------------------------------------------


def audio_poster(rt: Runtime, p: Playable) -> bytes:
    """The one stored poster (a waveform JPEG, made by the asset job) of an audio-only
    asset, whatever time or width was asked for."""
    if not p.presentation.audio_only:
        raise PlaybackNotFound("This asset has no video.")
    try:
        return rt.store.get_bytes(poster_key(p.asset_id))
    except ObjectNotFound:
        raise PlaybackNotFound("This asset has no poster.") from None


@dataclass(frozen=True)
class Thumbnail:
    """A thumbnail snapped to the grid: its object key, the rendition and grid point it
    comes from, and whether it is final (kept in the store, cached long)."""

    key: str
    rendition: Rendition
    time: int
    width: int
    final: bool
    cache: str


def plan_thumbnail(p: Playable, time_s: float, width: int) -> Thumbnail:
    """Snap a request for a frame near ``time_s`` seconds, ``width`` pixels wide, to the
    asset's storyboard grid (the asset has video)."""
    pres = p.presentation
    videos = pres.video
    t, w = snap_thumbnail(time_s, width, pres.duration, pres.segment_seconds)
    r = next((v for v in videos if (v.width or 0) >= w), videos[-1])
    # While the ladder still grows, the frame may come from a nearer segment: keep it briefly.
    final = pres.complete
    cache = cache_control(p, THUMB_CACHE if final else GROWING_CACHE)
    return Thumbnail(f"assets/{p.asset_id}/{thumbnail_name(t, w)}", r, t, w, final, cache)


def stored_thumbnail(rt: Runtime, thumb: Thumbnail) -> bytes | None:
    """The thumbnail's JPEG if an earlier extraction (or the storyboard) stored it."""
    with contextlib.suppress(ObjectNotFound):
        return rt.store.get_bytes(thumb.key)
    return None


def _clear_fragment(rt: Runtime, r: Rendition, init: bytes, seg: bytes, number: int) -> bytes:
    """An encrypted rendition's init and one segment as a clear fragmented MP4 (for a
    thumbnail): our AES for ``aes-128``, the packager's raw-key decryption otherwise."""
    assert r.kid is not None
    key = rt.keys.get(bytes.fromhex(r.kid))
    if r.scheme == "aes-128":
        return init + decrypt_segment(seg, key.key, segment_iv(number))
    tmp = rt.settings.data_path / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp) as work:
        source = Path(work) / "in.mp4"
        source.write_bytes(init + seg)
        options = PackagingOptions(
            timeout_seconds=30, memory_bytes=min(rt.settings.subprocess_memory_bytes, 2 << 30)
        )
        out = ShakaPackager(rt.toolchain.packager).decrypt(
            source, r.kind, Path(work) / "out.mp4", TrackKey("X", key.kid, key.key), options
        )
        return out.read_bytes()


def make_thumbnail(rt: Runtime, p: Playable, thumb: Thumbnail) -> bytes:
    """Extract the thumbnail's frame with ffmpeg from the segment that holds it (stored
    when final)."""
    r = thumb.rendition
    ticks = thumb.time * r.timescale
    seg = next((s for s in r.segments if s.start <= ticks < s.start + s.duration), r.segments[-1])
    prefix = f"assets/{p.asset_id}/cmaf/{r.id}"
    init = rt.store.get_bytes(f"{prefix}/init.mp4")
    data = rt.store.get_bytes(f"{prefix}/{seg.number}.m4s")
    data = init + data if r.kid is None else _clear_fragment(rt, r, init, data, seg.number)
    seek = max(0.0, (ticks - seg.start) / r.timescale)
    jpeg = extract_thumbnail(rt.toolchain, rt.settings, data, seek, thumb.width)
    if thumb.final:
        rt.store.put_bytes(thumb.key, jpeg)
    return jpeg
