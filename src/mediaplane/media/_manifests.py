"""Render HLS playlists and the DASH MPD from a Presentation (pure functions, no I/O)."""

from __future__ import annotations

import math
from fractions import Fraction
from xml.etree import ElementTree as ET

from ._presentation import Presentation, Rendition

HLS_VERSION = 7
AUDIO_GROUP = "audio"
DASH_PROFILES = "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019"


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _fps_decimal(r: Rendition) -> str:
    fps = r.fps
    return f"{float(fps):.3f}" if fps else ""


def _q(value: str) -> str:
    """An HLS quoted-string: no quotes or line breaks may appear inside it."""
    return '"' + value.replace('"', "'").replace("\n", " ").replace("\r", " ") + '"'


START_AT_BEGINNING = "#EXT-X-START:TIME-OFFSET=0,PRECISE=YES"


#: HLS CHARACTERISTICS of an audio description track (Apple's media characteristic tag).
DESCRIBES_VIDEO = "public.accessibility.describes-video"
#: DASH descriptors: the Role scheme, and the DVB audio-purpose scheme for description.
DASH_ROLE = "urn:mpeg:dash:role:2011"
DASH_AUDIO_PURPOSE = "urn:tva:metadata:cs:AudioPurposeCS:2007"
AUDIO_PURPOSE_VISUALLY_IMPAIRED = "1"


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


def _audio_media(audio: list[Rendition], *, in_variant: bool) -> list[str]:
    """EXT-X-MEDIA lines of the one audio group; ``audio[0]`` is the DEFAULT=YES one.

    ``in_variant``: the default rendition's media is the variant's own playlist (an
    audio-only master), so its tag has no URI (RFC 8216 §4.3.4.1).
    """
    lines = []
    for i, (a, name) in enumerate(zip(audio, _audio_names(audio), strict=True)):
        default = i == 0
        attrs = [
            "TYPE=AUDIO",
            f"GROUP-ID={_q(AUDIO_GROUP)}",
            f"NAME={_q(name)}",
            f"DEFAULT={'YES' if default else 'NO'}",
            # A commentary is never picked for a viewer by language preference alone.
            f"AUTOSELECT={'YES' if default or a.role != 'commentary' else 'NO'}",
        ]
        if a.language:
            attrs.append(f"LANGUAGE={_q(a.language)}")
        if a.role == "description":
            attrs.append(f"CHARACTERISTICS={_q(DESCRIBES_VIDEO)}")
        if a.channels:
            attrs.append(f"CHANNELS={_q(str(a.channels))}")
        if not (default and in_variant):
            attrs.append(f"URI={_q(a.id + '/media.m3u8')}")
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs))
    return lines


def render_hls_master(p: Presentation) -> str:
    """The multivariant playlist: video variants, every audio rendition in one group.

    An audio-only presentation gets one audio variant (CODECS of the audio, no
    RESOLUTION): the default audio's playlist, the other languages in the group.
    While renditions are still growing, players are told to start at the beginning
    (EXT-X-START) rather than at the live edge of the EVENT playlists.
    """
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    audio = p.audio
    if not all(r.complete for r in p.video + audio):
        lines.append(START_AT_BEGINNING)
    if not p.video:
        if audio:
            main = audio[0]
            attrs = [
                f"BANDWIDTH={max(a.peak_bandwidth for a in audio)}",
                f"AVERAGE-BANDWIDTH={max(a.average_bandwidth for a in audio)}",
                f"CODECS={_q(main.codecs)}",
            ]
            if len(audio) > 1:
                lines += _audio_media(audio, in_variant=True)
                attrs.append(f"AUDIO={_q(AUDIO_GROUP)}")
            lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
            lines.append(f"{main.id}/media.m3u8")
        return "\n".join(lines) + "\n"
    lines += _audio_media(audio, in_variant=False)
    # BANDWIDTH covers whichever rendition of the group a player may pick (RFC 8216).
    audio_peak = max((a.peak_bandwidth for a in audio), default=0)
    audio_avg = max((a.average_bandwidth for a in audio), default=0)
    for v in p.video:
        codecs = v.codecs + ("," + audio[0].codecs if audio else "")
        attrs = [
            f"BANDWIDTH={v.peak_bandwidth + audio_peak}",
            f"AVERAGE-BANDWIDTH={v.average_bandwidth + audio_avg}",
            f"CODECS={_q(codecs)}",
        ]
        if v.width and v.height:
            attrs.append(f"RESOLUTION={v.width}x{v.height}")
        if v.fps:
            attrs.append(f"FRAME-RATE={_fps_decimal(v)}")
        if audio:
            attrs.append(f"AUDIO={_q(AUDIO_GROUP)}")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(f"{v.id}/media.m3u8")
    return "\n".join(lines) + "\n"


def render_hls_media(r: Rendition, segment_seconds: int = 2) -> str:
    """A media playlist of fMP4 segments (paths relative to the rendition's folder).

    VOD when the rendition is complete; a growing EVENT playlist (no ENDLIST) while it is
    still being encoded, which becomes the same VOD list when it completes.
    """
    durations = [s.duration / r.timescale for s in r.segments]
    target = max((_round_half_up(d) for d in durations), default=segment_seconds)
    if not r.complete:
        target = max(target, segment_seconds)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{max(1, target)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{'VOD' if r.complete else 'EVENT'}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if not r.complete:
        lines.append(START_AT_BEGINNING)
    lines.append('#EXT-X-MAP:URI="init.mp4"')
    for seg, d in zip(r.segments, durations, strict=True):
        lines.append(f"#EXTINF:{d:.6f},")
        lines.append(f"{seg.number}.m4s")
    if r.complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _iso_duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def _timeline(parent: ET.Element, r: Rendition) -> None:
    tl = ET.SubElement(parent, "SegmentTimeline")
    expected: int | None = None
    last: ET.Element | None = None
    repeat = 0
    prev_d: int | None = None
    for s in r.segments:
        contiguous = expected is not None and s.start == expected
        if last is not None and contiguous and s.duration == prev_d:
            repeat += 1
            last.set("r", str(repeat))
        else:
            last = ET.SubElement(tl, "S")
            if not contiguous:
                last.set("t", str(s.start))
            last.set("d", str(s.duration))
            repeat = 0
        prev_d = s.duration
        expected = s.start + s.duration


def _template(parent: ET.Element, r: Rendition) -> None:
    first = r.segments[0].number if r.segments else 1
    st = ET.SubElement(
        parent,
        "SegmentTemplate",
        timescale=str(r.timescale),
        initialization="$RepresentationID$/init.mp4",
        media="$RepresentationID$/$Number$.m4s",
        startNumber=str(first),
    )
    _timeline(st, r)


def render_mpd(p: Presentation) -> str:
    """A static MPD (isoff-live + CMAF profiles) with SegmentTemplate and SegmentTimeline."""
    mpd = ET.Element(
        "MPD",
        xmlns="urn:mpeg:dash:schema:mpd:2011",
        type="static",
        profiles=DASH_PROFILES,
        minBufferTime=_iso_duration(p.segment_seconds),
        mediaPresentationDuration=_iso_duration(p.duration),
    )
    period = ET.SubElement(mpd, "Period", id="0", start="PT0S")
    videos = p.video
    if videos:
        maxw = max(v.width or 0 for v in videos)
        maxh = max(v.height or 0 for v in videos)
        aset = ET.SubElement(
            period,
            "AdaptationSet",
            id="0",
            contentType="video",
            mimeType="video/mp4",
            segmentAlignment="true",
            startWithSAP="1",
            maxWidth=str(maxw),
            maxHeight=str(maxh),
        )
        fps = videos[0].fps
        if fps:
            aset.set("maxFrameRate", str(fps) if fps.denominator != 1 else str(fps.numerator))
        if maxw and maxh:
            g = math.gcd(maxw, maxh)
            aset.set("par", f"{maxw // g}:{maxh // g}")
        for v in videos:
            rep = ET.SubElement(
                aset,
                "Representation",
                id=v.id,
                bandwidth=str(v.peak_bandwidth),
                codecs=v.codecs,
                width=str(v.width),
                height=str(v.height),
                sar="1:1",
            )
            if v.fps:
                f = Fraction(v.fps)
                rep.set("frameRate", str(f) if f.denominator != 1 else str(f.numerator))
            _template(rep, v)
    audio = p.audio
    for i, (a, name) in enumerate(zip(audio, _audio_names(audio), strict=True), start=1):
        # One AdaptationSet per audio rendition (language, or role within a language).
        aset = ET.SubElement(
            period,
            "AdaptationSet",
            id=str(i),
            contentType="audio",
            mimeType="audio/mp4",
            segmentAlignment="true",
            startWithSAP="1",
        )
        if a.language:
            aset.set("lang", a.language)
        if a.name:
            ET.SubElement(aset, "Label").text = name
        if a.role == "description":
            ET.SubElement(
                aset,
                "Accessibility",
                schemeIdUri=DASH_AUDIO_PURPOSE,
                value=AUDIO_PURPOSE_VISUALLY_IMPAIRED,
            )
        role = a.role or ("main" if i == 1 else "alternate")
        ET.SubElement(aset, "Role", schemeIdUri=DASH_ROLE, value=role)
        rep = ET.SubElement(
            aset,
            "Representation",
            id=a.id,
            bandwidth=str(a.peak_bandwidth),
            codecs=a.codecs,
            audioSamplingRate=str(a.sample_rate or 48000),
        )
        ET.SubElement(
            rep,
            "AudioChannelConfiguration",
            schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011",
            value=str(a.channels or 2),
        )
        _template(rep, a)
    ET.indent(mpd)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(mpd, encoding="unicode") + "\n"
