"""Build the HLS playlists and the DASH MPD of a Presentation as models (pure, no I/O).

What we serve is decided here; how a playlist or MPD is written is the models' own
:meth:`render` (:mod:`._hls`, :mod:`._dash`). ``render_*`` are the two steps in one.
"""

from __future__ import annotations

import base64
import math
import uuid
from dataclasses import replace
from fractions import Fraction

from ._dash import (
    MP4_PROTECTION,
    MPD,
    AdaptationSet,
    ContentProtection,
    Descriptor,
    Node,
    Period,
    Representation,
    SegmentTemplate,
    TimelineEntry,
    iso_duration,
)
from ._hls import MasterPlaylist, MediaPlaylist, MediaSegment
from ._hls_tags import Key, Map, Media, Start, Tag, Variant
from ._presentation import Presentation, Rendition
from ._protection import (
    CLEARKEY_SYSTEM_ID,
    COMMON_SYSTEM_ID,
    DrmUrls,
    common_pssh,
    segment_iv,
)

HLS_VERSION = 7
AUDIO_GROUP = "audio"
DASH_PROFILES = "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019"
#: While renditions still grow, players start at the beginning, not the live edge.
START_AT_BEGINNING = Start(time_offset=0, precise=True)

#: HLS CHARACTERISTICS of an audio description track (Apple's media characteristic tag).
DESCRIBES_VIDEO = "public.accessibility.describes-video"
#: DASH descriptors: the Role scheme, and the DVB audio-purpose scheme for description.
DASH_ROLE = "urn:mpeg:dash:role:2011"
DASH_AUDIO_PURPOSE = "urn:tva:metadata:cs:AudioPurposeCS:2007"
AUDIO_PURPOSE_VISUALLY_IMPAIRED = "1"
AUDIO_CHANNELS = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
#: Where a DASH ClearKey licence URL goes: DASH-IF's CPS namespace (``dashif:Laurl``, what
#: shaka-player 4.16 reads first) and the older ClearKey guideline (``clearkey:Laurl``).
DASHIF_NS = "https://dashif.org/CPS"
CLEARKEY_NS = "http://dashif.org/guidelines/clearKey"
CLEARKEY_KEYFORMAT = "org.w3.clearkey"
#: HLS METHOD of each sample-encryption scheme.
_SAMPLE_METHOD = {"cbcs": "SAMPLE-AES", "cenc": "SAMPLE-AES-CTR"}


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _audio_names(audio: list[Rendition]) -> list[str]:
    """One NAME per audio rendition, unique in the group (RFC 8216 requires it)."""
    names: list[str] = []
    for i, a in enumerate(audio, start=1):
        base = a.name or a.language or ("Default" if i == 1 else f"Audio {i}")
        name, n = base, 2
        while name in names:
            name, n = f"{base} ({n})", n + 1
        names.append(name)
    return names


def _audio_media(audio: list[Rendition], *, in_variant: bool, query: str = "") -> list[Media]:
    """The EXT-X-MEDIA of the one audio group; ``audio[0]`` is the DEFAULT=YES one.

    ``in_variant``: the default rendition's media is the variant's own playlist (an
    audio-only master), so its tag has no URI (RFC 8216 §4.3.4.1).
    """
    media = []
    for i, (a, name) in enumerate(zip(audio, _audio_names(audio), strict=True)):
        default = i == 0
        media.append(
            Media(
                type="AUDIO",
                group_id=AUDIO_GROUP,
                name=name,
                default=default,
                # A commentary is never picked for a viewer by language preference alone.
                autoselect=default or a.role != "commentary",
                language=a.language or None,
                characteristics=DESCRIBES_VIDEO if a.role == "description" else None,
                channels=str(a.channels) if a.channels else None,
                uri=None if default and in_variant else a.id + "/media.m3u8" + query,
            )
        )
    return media


def _audio_only_variants(
    audio: list[Rendition], query: str = ""
) -> tuple[list[Media], list[Variant]]:
    if not audio:
        return [], []
    main = audio[0]
    variant = Variant(
        uri=f"{main.id}/media.m3u8{query}",
        bandwidth=max(a.peak_bandwidth for a in audio),
        average_bandwidth=max(a.average_bandwidth for a in audio),
        codecs=main.codecs,
        audio=AUDIO_GROUP if len(audio) > 1 else None,
    )
    media = _audio_media(audio, in_variant=True, query=query) if len(audio) > 1 else []
    return media, [variant]


def _video_variants(p: Presentation, query: str = "") -> list[Variant]:
    audio = p.audio
    # BANDWIDTH covers whichever rendition of the group a player may pick (RFC 8216).
    audio_peak = max((a.peak_bandwidth for a in audio), default=0)
    audio_avg = max((a.average_bandwidth for a in audio), default=0)
    return [
        Variant(
            uri=f"{v.id}/media.m3u8{query}",
            bandwidth=v.peak_bandwidth + audio_peak,
            average_bandwidth=v.average_bandwidth + audio_avg,
            codecs=v.codecs + ("," + audio[0].codecs if audio else ""),
            resolution=(v.width, v.height) if v.width and v.height else None,
            frame_rate=float(v.fps) if v.fps else None,
            audio=AUDIO_GROUP if audio else None,
        )
        for v in p.video
    ]


def sample_key(scheme: str, kid_hex: str, licence_url: str) -> Key:
    """EXT-X-KEY / EXT-X-SESSION-KEY of a cenc/cbcs rendition: the ClearKey licence server
    (``SAMPLE-AES`` for cbcs, ``SAMPLE-AES-CTR`` for cenc, KEYFORMAT org.w3.clearkey)."""
    return Key(
        _SAMPLE_METHOD[scheme],
        uri=licence_url,
        keyformat=CLEARKEY_KEYFORMAT,
        keyformat_versions="1",
        extra=(("KEYID", "0x" + kid_hex.upper()),),
    )


def _sample_key(scheme: str, kid_hex: str, drm: DrmUrls) -> Key:
    return sample_key(scheme, kid_hex, drm.licence_url)


def _session_keys(p: Presentation, drm: DrmUrls | None) -> tuple[Key, ...]:
    if drm is None:
        return ()
    keys = {r.kid: r.scheme for r in [*p.video, *p.audio] if r.kid and r.scheme in _SAMPLE_METHOD}
    return tuple(_sample_key(scheme, kid, drm) for kid, scheme in keys.items() if scheme)


def hls_master(p: Presentation, query: str = "", drm: DrmUrls | None = None) -> MasterPlaylist:
    """The multivariant playlist: video variants, every audio rendition in one group.

    An audio-only presentation gets one audio variant (CODECS of the audio, no
    RESOLUTION): the default audio's playlist, the other languages in the group.
    While renditions are still growing, players are told to start at the beginning
    (EXT-X-START) rather than at the live edge of the EVENT playlists. ``query`` (like
    ``"?st=…"``) is appended to every playlist URI (signed playback carries a token so).
    A protected presentation declares its keys (EXT-X-SESSION-KEY, cenc/cbcs) at ``drm``.
    """
    audio = p.audio
    if p.video:
        media = _audio_media(audio, in_variant=False, query=query)
        variants = _video_variants(p, query)
    else:
        media, variants = _audio_only_variants(audio, query)
    growing = not all(r.complete for r in p.video + audio)
    return MasterPlaylist(
        variants=tuple(variants),
        media=tuple(media),
        version=HLS_VERSION,
        independent_segments=True,
        start=START_AT_BEGINNING if growing else None,
        session_keys=_session_keys(p, drm),
    )


def _aes_key(r: Rendition, number: int, drm: DrmUrls) -> Key:
    assert r.kid is not None
    return Key("AES-128", uri=drm.key(r.kid), iv=segment_iv(number))


def hls_media(
    r: Rendition,
    segment_seconds: int = 2,
    query: str = "",
    *,
    drm: DrmUrls | None = None,
) -> MediaPlaylist:
    """A media playlist of fMP4 segments (paths relative to the rendition's folder, with
    ``query`` appended).

    An encrypted rendition (its scheme and KID) names its key after EXT-X-MAP
    (the init segment is clear): AES-128 with the key URL at ``drm`` and an explicit IV
    per segment, or SAMPLE-AES(-CTR) with the ClearKey licence server.

    VOD when the rendition is complete; a growing EVENT playlist (no ENDLIST) while it is
    still being encoded, which becomes the same VOD list when it completes.
    """
    durations = [s.duration / r.timescale for s in r.segments]
    target = max((_round_half_up(d) for d in durations), default=segment_seconds)
    if not r.complete:
        target = max(target, segment_seconds)
    segments = [
        MediaSegment(uri=f"{seg.number}.m4s{query}", duration=d)
        for seg, d in zip(r.segments, durations, strict=True)
    ]
    init = Map("init.mp4" + query)
    protection = r.scheme
    keyed = drm is not None and r.kid is not None and protection is not None
    if keyed and protection == "aes-128":
        assert drm is not None
        segments = [
            replace(seg, keys=(_aes_key(r, n.number, drm),)) if i else seg
            for i, (seg, n) in enumerate(zip(segments, r.segments, strict=True))
        ]
    first_tags: tuple[Tag, ...] = ()
    if keyed and segments:
        assert drm is not None
        assert r.kid is not None
        assert protection is not None
        key = (
            _aes_key(r, r.segments[0].number, drm)
            if protection == "aes-128"
            else _sample_key(protection, r.kid, drm)
        )
        line = key.render().removeprefix("#")
        name, _, value = line.partition(":")
        first_tags = (Tag(name, value),)  # after EXT-X-MAP: the init is not encrypted
    if segments:
        segments[0] = MediaSegment(segments[0].uri, segments[0].duration, map=init, tags=first_tags)
    else:  # EXT-X-MAP with no segment after it yet: an open entry carries it
        segments = [MediaSegment(None, map=init)]
    return MediaPlaylist(
        target_duration=max(1, target),
        segments=tuple(segments),
        version=HLS_VERSION,
        media_sequence=0,
        playlist_type="VOD" if r.complete else "EVENT",
        independent_segments=True,
        start=None if r.complete else START_AT_BEGINNING,
        endlist=r.complete,
    )


def _timeline(r: Rendition) -> tuple[TimelineEntry, ...]:
    """``S`` entries: a run of contiguous equal durations is one entry with ``r``."""
    entries: list[TimelineEntry] = []
    expected: int | None = None
    prev_d: int | None = None
    for s in r.segments:
        contiguous = expected is not None and s.start == expected
        if entries and contiguous and s.duration == prev_d:
            last = entries[-1]
            entries[-1] = TimelineEntry(last.d, last.t, (last.r or 0) + 1)
        else:
            entries.append(TimelineEntry(s.duration, None if contiguous else s.start))
        prev_d = s.duration
        expected = s.start + s.duration
    return tuple(entries)


def _template(r: Rendition, query: str) -> SegmentTemplate:
    return SegmentTemplate(
        timescale=r.timescale,
        initialization="$RepresentationID$/init.mp4" + query,
        media="$RepresentationID$/$Number$.m4s" + query,
        start_number=r.segments[0].number if r.segments else 1,
        timeline=_timeline(r),
    )


def _rate(fps: Fraction) -> str:
    return str(fps) if fps.denominator != 1 else str(fps.numerator)


def content_protection(
    scheme: str, kid: bytes, licence_url: str, systems: tuple[tuple[str, str], ...] = ()
) -> tuple[ContentProtection, ...]:
    """A cenc/cbcs representation's descriptors: the scheme with its default KID, the W3C
    Common PSSH, and ClearKey with the licence URL (players need no configuration), then
    each commercial DRM system's PSSH (``systems``: system id, base64 box)."""
    laurls = (
        Node(f"{{{DASHIF_NS}}}Laurl", text=licence_url),
        Node(f"{{{CLEARKEY_NS}}}Laurl", (("Lic_type", "EME-1.0"),), licence_url),
    )
    return (
        ContentProtection(MP4_PROTECTION, scheme, str(uuid.UUID(bytes=kid))),
        # shaka-player reads the Common system as ClearKey too: it names the licence server.
        ContentProtection(
            f"urn:uuid:{COMMON_SYSTEM_ID}", pssh=common_pssh([kid]), nodes=laurls[:1]
        ),
        ContentProtection(f"urn:uuid:{CLEARKEY_SYSTEM_ID}", "ClearKey1.0", nodes=laurls),
        *(ContentProtection(f"urn:uuid:{sid}", pssh=base64.b64decode(box)) for sid, box in systems),
    )


def _protection(r: Rendition, drm: DrmUrls | None) -> tuple[ContentProtection, ...]:
    scheme = r.scheme
    if scheme not in _SAMPLE_METHOD or r.kid is None or drm is None:
        return ()
    return content_protection(scheme, bytes.fromhex(r.kid), drm.licence_url, tuple(r.drm_systems))


def _video_set(videos: list[Rendition], query: str, drm: DrmUrls | None = None) -> AdaptationSet:
    maxw = max(v.width or 0 for v in videos)
    maxh = max(v.height or 0 for v in videos)
    g = math.gcd(maxw, maxh) if maxw and maxh else 0
    fps = videos[0].fps
    reps = [
        Representation(
            id=v.id,
            bandwidth=v.peak_bandwidth,
            codecs=v.codecs,
            width=v.width,
            height=v.height,
            sar="1:1",
            frame_rate=_rate(v.fps) if v.fps else None,
            segment_template=_template(v, query),
            content_protection=_protection(v, drm),
        )
        for v in videos
    ]
    return AdaptationSet(
        id="0",
        content_type="video",
        mime_type="video/mp4",
        segment_alignment="true",
        start_with_sap="1",
        max_width=maxw,
        max_height=maxh,
        max_frame_rate=_rate(fps) if fps else None,
        par=f"{maxw // g}:{maxh // g}" if g else None,
        representations=tuple(reps),
    )


def _audio_set(
    i: int,
    a: Rendition,
    name: str,
    query: str,
    drm: DrmUrls | None = None,
) -> AdaptationSet:
    """One AdaptationSet per audio rendition (language, or role within a language)."""
    described = a.role == "description"
    rep = Representation(
        id=a.id,
        bandwidth=a.peak_bandwidth,
        codecs=a.codecs,
        audio_sampling_rate=str(a.sample_rate or 48000),
        audio_channels=(Descriptor(AUDIO_CHANNELS, str(a.channels or 2)),),
        segment_template=_template(a, query),
        content_protection=_protection(a, drm),
    )
    return AdaptationSet(
        id=str(i),
        content_type="audio",
        mime_type="audio/mp4",
        segment_alignment="true",
        start_with_sap="1",
        lang=a.language or None,
        label=name if a.name else None,
        accessibility=(
            (Descriptor(DASH_AUDIO_PURPOSE, AUDIO_PURPOSE_VISUALLY_IMPAIRED),) if described else ()
        ),
        roles=(Descriptor(DASH_ROLE, a.role or ("main" if i == 1 else "alternate")),),
        representations=(rep,),
    )


def dash_mpd(p: Presentation, query: str = "", drm: DrmUrls | None = None) -> MPD:
    """A static MPD (isoff-live + CMAF profiles) with SegmentTemplate and SegmentTimeline;
    ``query`` is appended to the segment templates. A cenc/cbcs presentation signals its
    protection per representation, with the licence server at ``drm``."""
    sets = [_video_set(p.video, query, drm)] if p.video else []
    audio = p.audio
    names = _audio_names(audio)
    sets += [
        _audio_set(i, a, n, query, drm)
        for i, (a, n) in enumerate(zip(audio, names, strict=True), start=1)
    ]
    return MPD(
        type="static",
        profiles=DASH_PROFILES,
        min_buffer_time=iso_duration(p.segment_seconds),
        media_presentation_duration=iso_duration(p.duration),
        periods=(Period(id="0", start="PT0S", adaptation_sets=tuple(sets)),),
    )


def render_hls_master(p: Presentation, query: str = "", drm: DrmUrls | None = None) -> str:
    """The multivariant playlist text of ``p`` (:func:`hls_master`, rendered)."""
    return hls_master(p, query, drm).render()


def render_hls_media(
    r: Rendition,
    segment_seconds: int = 2,
    query: str = "",
    *,
    drm: DrmUrls | None = None,
) -> str:
    """The media playlist text of ``r`` (:func:`hls_media`, rendered)."""
    return hls_media(r, segment_seconds, query, drm=drm).render()


def render_mpd(p: Presentation, query: str = "", drm: DrmUrls | None = None) -> str:
    """The MPD text of ``p`` (:func:`dash_mpd`, rendered)."""
    return dash_mpd(p, query, drm).render()
