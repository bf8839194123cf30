"""HLS playlists as models: :class:`MasterPlaylist` and :class:`MediaPlaylist` (RFC 8216bis).

Pure dataclasses with ``parse()`` and ``render()`` (``bytes(playlist)`` is the UTF-8 text),
no I/O. A playlist is hostile input: :func:`parse_playlist` and the ``parse`` class methods
read at most :data:`MAX_PLAYLIST_BYTES` / :data:`MAX_LINES`, and raise nothing but
:class:`ManifestError` on anything malformed.

Modelled: VOD/EVENT/live media playlists, LL-HLS (EXT-X-PART, EXT-X-PART-INF,
EXT-X-PRELOAD-HINT, EXT-X-SERVER-CONTROL, EXT-X-SKIP delta updates, EXT-X-RENDITION-REPORT),
keys (EXT-X-KEY, EXT-X-SESSION-KEY), ads (EXT-X-DISCONTINUITY, EXT-X-PROGRAM-DATE-TIME,
EXT-X-DATERANGE with SCTE35-CMD/OUT/IN). Any other tag is kept as a :class:`Tag` where it
stood (in the header, or before the segment it precedes) and written back as it came.

Rendering writes tags in one canonical order, so ``render(parse(text)) == text`` holds for
canonical text and ``parse(render(x)) == x`` for every model whose strings hold no ``"`` or
line break (those are replaced on output so that a value can never open a new tag) and whose
dates are whole milliseconds (they are written to the millisecond).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._errors import ManifestError
from ._hls_tags import (
    DateRange,
    Key,
    Map,
    Media,
    Part,
    PreloadHint,
    RenditionReport,
    ServerControl,
    Skip,
    Start,
    Tag,
    Variant,
    _date,
    _float,
    _int,
    _num,
    _one_line,
    _parse_date,
    _Reader,
    _uri_line,
)

#: Bounds on what a parser reads: a 24-hour VOD of 1 s segments is ~200 000 lines.
MAX_PLAYLIST_BYTES = 16 * 1024 * 1024
MAX_LINES = 500_000
MAX_LINE_CHARS = 64 * 1024


@dataclass(frozen=True)
class MediaSegment:
    """One media segment and the tags that precede it.

    ``uri`` is None only for the last entry of a live LL-HLS playlist: the segment whose
    parts are listed but which is not finished (no EXTINF yet).
    ``keys`` and ``map`` are set where they change (they apply to the segments after).
    """

    uri: str | None
    duration: float | None = None  # seconds (EXTINF)
    title: str = ""
    discontinuity: bool = False
    keys: tuple[Key, ...] = ()
    map: Map | None = None
    program_date_time: datetime | None = None
    dateranges: tuple[DateRange, ...] = ()
    byterange: str | None = None
    gap: bool = False
    bitrate: int | None = None  # kilobits per second (EXT-X-BITRATE)
    parts: tuple[Part, ...] = ()
    tags: tuple[Tag, ...] = ()

    def lines(self) -> list[str]:
        out = ["#EXT-X-DISCONTINUITY"] if self.discontinuity else []
        out += [k.render() for k in self.keys]
        if self.map is not None:
            out.append(self.map.render())
        if self.program_date_time is not None:
            out.append("#EXT-X-PROGRAM-DATE-TIME:" + _date(self.program_date_time))
        out += [d.render() for d in self.dateranges]
        out += [t.render() for t in self.tags]
        if self.byterange is not None:
            out.append("#EXT-X-BYTERANGE:" + _one_line(self.byterange))
        if self.gap:
            out.append("#EXT-X-GAP")
        if self.bitrate is not None:
            out.append(f"#EXT-X-BITRATE:{self.bitrate}")
        out += [p.render() for p in self.parts]
        if self.duration is not None:
            out.append(f"#EXTINF:{self.duration:.6f},{_one_line(self.title)}")
        if self.uri is not None:
            out.append(_uri_line(self.uri))
        return out


PlaylistType = str  # "VOD" or "EVENT"


@dataclass(frozen=True)
class MediaPlaylist:
    """A media playlist: header tags, segments, and the LL-HLS tail (hints, reports)."""

    target_duration: int
    segments: tuple[MediaSegment, ...] = ()
    version: int | None = None
    media_sequence: int | None = None
    discontinuity_sequence: int | None = None
    playlist_type: PlaylistType | None = None
    independent_segments: bool = False
    start: Start | None = None
    server_control: ServerControl | None = None
    part_target: float | None = None  # EXT-X-PART-INF PART-TARGET, seconds
    skip: Skip | None = None
    tags: tuple[Tag, ...] = ()  # unknown header tags
    preload_hints: tuple[PreloadHint, ...] = ()
    rendition_reports: tuple[RenditionReport, ...] = ()
    endlist: bool = False

    def render(self) -> str:
        lines = ["#EXTM3U"]
        if self.version is not None:
            lines.append(f"#EXT-X-VERSION:{self.version}")
        lines.append(f"#EXT-X-TARGETDURATION:{self.target_duration}")
        if self.media_sequence is not None:
            lines.append(f"#EXT-X-MEDIA-SEQUENCE:{self.media_sequence}")
        if self.discontinuity_sequence is not None:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_sequence}")
        if self.playlist_type is not None:
            lines.append(f"#EXT-X-PLAYLIST-TYPE:{_one_line(self.playlist_type)}")
        if self.independent_segments:
            lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        if self.start is not None:
            lines.append(self.start.render())
        if self.server_control is not None:
            lines.append(self.server_control.render())
        if self.part_target is not None:
            lines.append(f"#EXT-X-PART-INF:PART-TARGET={_num(self.part_target)}")
        lines += [t.render() for t in self.tags]
        if self.skip is not None:
            lines.append(self.skip.render())
        for seg in self.segments:
            lines += seg.lines()
        lines += [h.render() for h in self.preload_hints]
        lines += [r.render() for r in self.rendition_reports]
        if self.endlist:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def __bytes__(self) -> bytes:
        return self.render().encode()

    @classmethod
    def parse(
        cls, data: str | bytes, *, max_bytes: int = MAX_PLAYLIST_BYTES, max_lines: int = MAX_LINES
    ) -> MediaPlaylist:
        """Read a media playlist; :class:`ManifestError` if it is not one or is malformed."""
        parsed = parse_playlist(data, max_bytes=max_bytes, max_lines=max_lines)
        if not isinstance(parsed, MediaPlaylist):
            raise ManifestError("a multivariant playlist, not a media playlist")
        return parsed

    @property
    def complete_segments(self) -> list[MediaSegment]:
        """The segments that have a URI (the unfinished LL-HLS one left out)."""
        return [s for s in self.segments if s.uri is not None]


@dataclass(frozen=True)
class MasterPlaylist:
    """A multivariant playlist: renditions (EXT-X-MEDIA) and variant streams."""

    variants: tuple[Variant, ...] = ()
    media: tuple[Media, ...] = ()
    version: int | None = None
    independent_segments: bool = False
    start: Start | None = None
    session_keys: tuple[Key, ...] = ()
    tags: tuple[Tag, ...] = ()

    def render(self) -> str:
        lines = ["#EXTM3U"]
        if self.version is not None:
            lines.append(f"#EXT-X-VERSION:{self.version}")
        if self.independent_segments:
            lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        if self.start is not None:
            lines.append(self.start.render())
        lines += [k.render("EXT-X-SESSION-KEY") for k in self.session_keys]
        lines += [t.render() for t in self.tags]
        lines += [m.render() for m in self.media]
        for v in self.variants:
            lines += v.lines()
        return "\n".join(lines) + "\n"

    def __bytes__(self) -> bytes:
        return self.render().encode()

    @classmethod
    def parse(
        cls, data: str | bytes, *, max_bytes: int = MAX_PLAYLIST_BYTES, max_lines: int = MAX_LINES
    ) -> MasterPlaylist:
        """Read a multivariant playlist; :class:`ManifestError` if it is not one."""
        parsed = parse_playlist(data, max_bytes=max_bytes, max_lines=max_lines)
        if not isinstance(parsed, MasterPlaylist):
            raise ManifestError("a media playlist, not a multivariant playlist")
        return parsed


# -- parsing --------------------------------------------------------------------------------

_MASTER_TAGS = frozenset({"EXT-X-STREAM-INF", "EXT-X-MEDIA", "EXT-X-SESSION-KEY"})
_MEDIA_TAGS = frozenset({"EXTINF", "EXT-X-TARGETDURATION", "EXT-X-PART", "EXT-X-ENDLIST"})


def _lines(data: str | bytes, max_bytes: int, max_lines: int) -> list[str]:
    if len(data) > max_bytes:
        raise ManifestError(f"playlist larger than {max_bytes} bytes (or characters)")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError("playlist is not UTF-8") from None
    data = data.removeprefix("\ufeff")
    if data.count("\n") >= max_lines:
        raise ManifestError(f"playlist longer than {max_lines} lines")
    lines = [line.rstrip("\r") for line in data.split("\n")]
    if not lines or lines[0].strip() != "#EXTM3U":
        raise ManifestError("not an HLS playlist (the first line is not #EXTM3U)")
    for line in lines:
        if len(line) > MAX_LINE_CHARS:
            raise ManifestError(f"playlist line longer than {MAX_LINE_CHARS} characters")
    return [line.strip() for line in lines[1:] if line.strip()]


def _split(line: str) -> tuple[str, str | None]:
    name, colon, value = line[1:].partition(":")
    return name, value if colon else None


def parse_playlist(
    data: str | bytes, *, max_bytes: int = MAX_PLAYLIST_BYTES, max_lines: int = MAX_LINES
) -> MasterPlaylist | MediaPlaylist:
    """Read either kind of playlist (told apart by its tags)."""
    lines = _lines(data, max_bytes, max_lines)
    names = {_split(line)[0] for line in lines if line.startswith("#")}
    if not names & _MEDIA_TAGS:
        return _MasterParser().run(lines)
    if names & _MASTER_TAGS:
        raise ManifestError("playlist mixes multivariant and media tags")
    return _MediaParser().run(lines)


def _value(name: str, value: str | None) -> str:
    if value is None:
        raise ManifestError(f"#{name} needs a value")
    return value


class _MasterParser:
    def run(self, lines: list[str]) -> MasterPlaylist:
        variants: list[Variant] = []
        media: list[Media] = []
        keys: list[Key] = []
        tags: list[Tag] = []
        version: int | None = None
        independent = False
        start: Start | None = None
        pending: str | None = None
        for line in lines:
            if not line.startswith("#"):
                if pending is None:
                    raise ManifestError(f"URI without EXT-X-STREAM-INF: {line[:60]!r}")
                variants.append(Variant.parse(pending, line))
                pending = None
                continue
            if pending is not None:
                raise ManifestError("EXT-X-STREAM-INF is not followed by its URI")
            name, value = _split(line)
            if name == "EXT-X-STREAM-INF":
                pending = _value(name, value)
            elif name == "EXT-X-MEDIA":
                media.append(Media.parse(_value(name, value)))
            elif name == "EXT-X-SESSION-KEY":
                keys.append(Key.parse(_value(name, value), name))
            elif name == "EXT-X-VERSION":
                version = _int(_value(name, value), name)
            elif name == "EXT-X-INDEPENDENT-SEGMENTS":
                independent = True
            elif name == "EXT-X-START":
                start = Start.parse(_value(name, value))
            else:
                tags.append(Tag(name, value))
        if pending is not None:
            raise ManifestError("EXT-X-STREAM-INF is not followed by its URI")
        return MasterPlaylist(
            tuple(variants), tuple(media), version, independent, start, tuple(keys), tuple(tags)
        )


class _MediaParser:
    """Collects the tags before each URI into that :class:`MediaSegment`."""

    def __init__(self) -> None:
        self.header: dict[str, object] = {}
        self.tags: list[Tag] = []
        self.segments: list[MediaSegment] = []
        self.hints: list[PreloadHint] = []
        self.reports: list[RenditionReport] = []
        self.endlist = False
        self.seg: dict[str, object] = {}
        self.seg_lists: dict[str, list[object]] = {}

    def _add(self, key: str, item: object) -> None:
        self.seg_lists.setdefault(key, []).append(item)

    def _segment_tag(self, name: str, value: str | None) -> bool:
        """Tags that belong to the next segment; False when ``name`` is none of them."""
        if name == "EXTINF":
            duration, _, title = _value(name, value).partition(",")
            self.seg["duration"] = _float(duration.strip(), "EXTINF")
            self.seg["title"] = title
        elif name == "EXT-X-DISCONTINUITY":
            self.seg["discontinuity"] = True
        elif name == "EXT-X-KEY":
            self._add("keys", Key.parse(_value(name, value)))
        elif name == "EXT-X-MAP":
            self.seg["map"] = Map.parse(_value(name, value))
        elif name == "EXT-X-PROGRAM-DATE-TIME":
            self.seg["program_date_time"] = _parse_date(_value(name, value), name)
        elif name == "EXT-X-DATERANGE":
            self._add("dateranges", DateRange.parse(_value(name, value)))
        elif name == "EXT-X-BYTERANGE":
            self.seg["byterange"] = _value(name, value)
        elif name == "EXT-X-GAP":
            self.seg["gap"] = True
        elif name == "EXT-X-BITRATE":
            self.seg["bitrate"] = _int(_value(name, value), name)
        elif name == "EXT-X-PART":
            self._add("parts", Part.parse(_value(name, value)))
        else:
            return False
        return True

    def _header_tag(self, name: str, value: str | None) -> bool:
        h = self.header
        if name == "EXT-X-VERSION":
            h["version"] = _int(_value(name, value), name)
        elif name == "EXT-X-TARGETDURATION":
            h["target_duration"] = _int(_value(name, value), name)
        elif name == "EXT-X-MEDIA-SEQUENCE":
            h["media_sequence"] = _int(_value(name, value), name)
        elif name == "EXT-X-DISCONTINUITY-SEQUENCE":
            h["discontinuity_sequence"] = _int(_value(name, value), name)
        elif name == "EXT-X-PLAYLIST-TYPE":
            h["playlist_type"] = _value(name, value)
        elif name == "EXT-X-INDEPENDENT-SEGMENTS":
            h["independent_segments"] = True
        elif name == "EXT-X-START":
            h["start"] = Start.parse(_value(name, value))
        elif name == "EXT-X-SERVER-CONTROL":
            h["server_control"] = ServerControl.parse(_value(name, value))
        elif name == "EXT-X-PART-INF":
            target = _Reader(name, _value(name, value)).number("PART-TARGET")
            if target is None:
                raise ManifestError("EXT-X-PART-INF has no PART-TARGET")
            h["part_target"] = target
        elif name == "EXT-X-SKIP":
            h["skip"] = Skip.parse(_value(name, value))
        else:
            return False
        return True

    def _tail_tag(self, name: str, value: str | None) -> bool:
        if name == "EXT-X-PRELOAD-HINT":
            self.hints.append(PreloadHint.parse(_value(name, value)))
        elif name == "EXT-X-RENDITION-REPORT":
            self.reports.append(RenditionReport.parse(_value(name, value)))
        elif name == "EXT-X-ENDLIST":
            self.endlist = True
        else:
            return False
        return True

    def _segment(self, uri: str | None) -> MediaSegment:
        lists = {k: tuple(v) for k, v in self.seg_lists.items()}
        seg = MediaSegment(uri, **self.seg, **lists)  # type: ignore[arg-type]
        self.seg, self.seg_lists = {}, {}
        return seg

    def _open(self) -> bool:
        return bool(self.seg or self.seg_lists)

    def run(self, lines: list[str]) -> MediaPlaylist:
        for line in lines:
            if not line.startswith("#"):
                if "duration" not in self.seg:
                    raise ManifestError(f"segment URI without EXTINF: {line[:60]!r}")
                self.segments.append(self._segment(line))
                continue
            name, value = _split(line)
            if self._header_tag(name, value) or self._tail_tag(name, value):
                continue
            if not self._segment_tag(name, value):
                tag = Tag(name, value)
                if self.segments or self._open():
                    self._add("tags", tag)
                else:
                    self.tags.append(tag)
        if self._open():
            self.segments.append(self._segment(None))
        return self._playlist()

    def _playlist(self) -> MediaPlaylist:
        h = self.header
        if "target_duration" not in h:
            raise ManifestError("media playlist has no EXT-X-TARGETDURATION")
        return MediaPlaylist(
            segments=tuple(self.segments),
            tags=tuple(self.tags),
            preload_hints=tuple(self.hints),
            rendition_reports=tuple(self.reports),
            endlist=self.endlist,
            **h,  # type: ignore[arg-type]
        )


__all__ = ["MasterPlaylist", "MediaPlaylist", "MediaSegment", "parse_playlist"]
