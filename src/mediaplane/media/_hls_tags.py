"""The tags of HLS playlists (RFC 8216bis) as models, and attribute lists.

Each tag is a frozen dataclass with ``parse(value)`` (the text after ``#NAME:``) and
``render()`` (the whole line); :mod:`._hls` composes them into playlists. Attributes a model
does not know are kept raw in ``extra`` and written back after the known ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._errors import ManifestError

Attrs = tuple[tuple[str, str], ...]
"""Attributes kept as they came (name, raw value — quotes included) in their order."""


# -- attribute lists ------------------------------------------------------------------------


def _q(value: str) -> str:
    """An HLS quoted-string: no quotes or line breaks may appear inside it."""
    return '"' + value.replace('"', "'").replace("\n", " ").replace("\r", " ") + '"'


def _one_line(value: str) -> str:
    """Text that stays on its line: a tag value or title cannot start a new tag."""
    return value.replace("\n", " ").replace("\r", " ")


def _uri_line(uri: str) -> str:
    """A URI line: line breaks percent-encoded (no URI may hold them raw)."""
    return uri.replace("\r", "%0D").replace("\n", "%0A")


def parse_attributes(text: str) -> Attrs:
    """``NAME=value,NAME="quoted, string"`` → pairs (raw values, quotes kept)."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            raise ManifestError(f"attribute without a value: {text[i : i + 40]!r}")
        name = text[i:eq].strip()
        if not name or not all(c.isalnum() or c == "-" for c in name):
            raise ManifestError(f"bad attribute name {name[:40]!r}")
        j = eq + 1
        if j < n and text[j] == '"':
            end = text.find('"', j + 1)
            if end < 0:
                raise ManifestError(f"unterminated quoted string in {name}")
            j = end + 1
            if j < n and text[j] != ",":
                raise ManifestError(f"text after the quoted value of {name}")
        else:
            comma = text.find(",", j)
            j = n if comma < 0 else comma
        raw = text[eq + 1 : j]
        pairs.append((name, raw if raw.startswith('"') else raw.strip()))
        i = j + 1
    return tuple(pairs)


def _render_attrs(pairs: list[tuple[str, str]]) -> str:
    """``NAME=value,…``; raw values (enumerations, ``extra``) are kept on one line too."""
    return _one_line(",".join(f"{k}={v}" for k, v in pairs))


class _Reader:
    """Typed access to one tag's attributes; what is not read stays in :meth:`rest`."""

    def __init__(self, tag: str, text: str) -> None:
        self.tag = tag
        pairs = parse_attributes(text)
        self.attrs = dict(pairs)
        if len(self.attrs) != len(pairs):
            raise ManifestError(f"{tag} names an attribute twice")
        self.order = [k for k, _ in pairs]
        self.used: set[str] = set()

    def raw(self, name: str) -> str | None:
        self.used.add(name)
        return self.attrs.get(name)

    def quoted(self, name: str) -> str | None:
        v = self.raw(name)
        if v is None:
            return None
        if len(v) < 2 or v[0] != '"' or v[-1] != '"':
            raise ManifestError(f"{self.tag}: {name} must be a quoted string")
        return v[1:-1]

    def need(self, name: str) -> str:
        v = self.quoted(name)
        if v is None:
            raise ManifestError(f"{self.tag} has no {name}")
        return v

    def integer(self, name: str) -> int | None:
        v = self.raw(name)
        return None if v is None else _int(v, f"{self.tag} {name}")

    def number(self, name: str) -> float | None:
        v = self.raw(name)
        return None if v is None else _float(v, f"{self.tag} {name}")

    def flag(self, name: str) -> bool | None:
        v = self.raw(name)
        if v is None:
            return None
        if v not in ("YES", "NO"):
            raise ManifestError(f"{self.tag}: {name} must be YES or NO")
        return v == "YES"

    def hex(self, name: str) -> bytes | None:
        v = self.raw(name)
        if v is None:
            return None
        if not v[:2].lower() == "0x":
            raise ManifestError(f"{self.tag}: {name} must be a hexadecimal sequence")
        try:
            return bytes.fromhex(v[2:] if len(v) % 2 == 0 else "0" + v[2:])
        except ValueError:
            raise ManifestError(f"{self.tag}: {name} is not hexadecimal") from None

    def rest(self) -> Attrs:
        return tuple((k, self.attrs[k]) for k in self.order if k not in self.used)


def _int(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise ManifestError(f"{what}: {text[:40]!r} is not a decimal integer")
    return int(text)


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ManifestError(f"{what}: {text[:40]!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ManifestError(f"{what}: {text[:40]!r} is not a finite number")
    return value


def _yes(value: bool) -> str:
    return "YES" if value else "NO"


def _num(value: float) -> str:
    """A decimal-floating-point attribute: as short as it can be written exactly."""
    return str(int(value)) if value == int(value) else repr(value)


def _date(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_date(text: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ManifestError(f"{what}: {text[:40]!r} is not an ISO 8601 date") from None


def _put(out: list[tuple[str, str]], name: str, value: str | None) -> None:
    if value is not None:
        out.append((name, value))


def _put_q(out: list[tuple[str, str]], name: str, value: str | None) -> None:
    if value is not None:
        out.append((name, _q(value)))


# -- tags shared by both playlist kinds -----------------------------------------------------


@dataclass(frozen=True)
class Tag:
    """A tag (or comment) the models do not know: ``#NAME`` or ``#NAME:VALUE``, kept as is."""

    name: str
    value: str | None = None

    def render(self) -> str:
        text = self.name + ("" if self.value is None else ":" + self.value)
        return "#" + _one_line(text)


@dataclass(frozen=True)
class Start:
    """EXT-X-START: where a player should begin (seconds; negative from the end)."""

    time_offset: float
    precise: bool | None = None

    def render(self) -> str:
        attrs = [("TIME-OFFSET", _num(self.time_offset))]
        if self.precise is not None:
            attrs.append(("PRECISE", _yes(self.precise)))
        return "#EXT-X-START:" + _render_attrs(attrs)

    @classmethod
    def parse(cls, value: str) -> Start:
        r = _Reader("EXT-X-START", value)
        offset = r.number("TIME-OFFSET")
        if offset is None:
            raise ManifestError("EXT-X-START has no TIME-OFFSET")
        return cls(offset, r.flag("PRECISE"))


@dataclass(frozen=True)
class Key:
    """EXT-X-KEY (media playlists) or EXT-X-SESSION-KEY (master): how segments are encrypted.

    ``method`` is NONE, AES-128, SAMPLE-AES or SAMPLE-AES-CTR; ``iv`` 16 bytes when given.
    """

    method: str
    uri: str | None = None
    iv: bytes | None = None
    keyformat: str | None = None
    keyformat_versions: str | None = None
    extra: Attrs = ()

    def render(self, tag: str = "EXT-X-KEY") -> str:
        attrs = [("METHOD", self.method)]
        _put_q(attrs, "URI", self.uri)
        _put(attrs, "IV", None if self.iv is None else "0x" + self.iv.hex().upper())
        _put_q(attrs, "KEYFORMAT", self.keyformat)
        _put_q(attrs, "KEYFORMATVERSIONS", self.keyformat_versions)
        return f"#{tag}:" + _render_attrs([*attrs, *self.extra])

    @classmethod
    def parse(cls, value: str, tag: str = "EXT-X-KEY") -> Key:
        r = _Reader(tag, value)
        method = r.raw("METHOD")
        if not method:
            raise ManifestError(f"{tag} has no METHOD")
        return cls(
            method=method,
            uri=r.quoted("URI"),
            iv=r.hex("IV"),
            keyformat=r.quoted("KEYFORMAT"),
            keyformat_versions=r.quoted("KEYFORMATVERSIONS"),
            extra=r.rest(),
        )


# -- media playlists ------------------------------------------------------------------------


@dataclass(frozen=True)
class Map:
    """EXT-X-MAP: the initialization section (fMP4 ``init.mp4``) of the segments after it."""

    uri: str
    byterange: str | None = None

    def render(self) -> str:
        attrs = [("URI", _q(self.uri))]
        _put_q(attrs, "BYTERANGE", self.byterange)
        return "#EXT-X-MAP:" + _render_attrs(attrs)

    @classmethod
    def parse(cls, value: str) -> Map:
        r = _Reader("EXT-X-MAP", value)
        return cls(r.need("URI"), r.quoted("BYTERANGE"))


@dataclass(frozen=True)
class DateRange:
    """EXT-X-DATERANGE: a span of time (an ad break: ``scte35_out``/``scte35_in`` hold the
    SCTE-35 splice_info_section bytes). ``client_attributes`` are the ``X-`` ones, raw."""

    id: str
    start_date: datetime
    class_: str | None = None
    end_date: datetime | None = None
    duration: float | None = None
    planned_duration: float | None = None
    scte35_cmd: bytes | None = None
    scte35_out: bytes | None = None
    scte35_in: bytes | None = None
    end_on_next: bool = False
    client_attributes: Attrs = ()

    def render(self) -> str:
        attrs = [("ID", _q(self.id))]
        _put_q(attrs, "CLASS", self.class_)
        attrs.append(("START-DATE", _q(_date(self.start_date))))
        _put_q(attrs, "END-DATE", None if self.end_date is None else _date(self.end_date))
        _put(attrs, "DURATION", None if self.duration is None else _num(self.duration))
        planned = self.planned_duration
        _put(attrs, "PLANNED-DURATION", None if planned is None else _num(planned))
        for name, data in (
            ("SCTE35-CMD", self.scte35_cmd),
            ("SCTE35-OUT", self.scte35_out),
            ("SCTE35-IN", self.scte35_in),
        ):
            _put(attrs, name, None if data is None else "0x" + data.hex().upper())
        if self.end_on_next:
            attrs.append(("END-ON-NEXT", "YES"))
        return "#EXT-X-DATERANGE:" + _render_attrs([*attrs, *self.client_attributes])

    @classmethod
    def parse(cls, value: str) -> DateRange:
        r = _Reader("EXT-X-DATERANGE", value)
        end = r.quoted("END-DATE")
        rng = cls(
            id=r.need("ID"),
            class_=r.quoted("CLASS"),
            start_date=_parse_date(r.need("START-DATE"), "START-DATE"),
            end_date=None if end is None else _parse_date(end, "END-DATE"),
            duration=r.number("DURATION"),
            planned_duration=r.number("PLANNED-DURATION"),
            scte35_cmd=r.hex("SCTE35-CMD"),
            scte35_out=r.hex("SCTE35-OUT"),
            scte35_in=r.hex("SCTE35-IN"),
            end_on_next=bool(r.flag("END-ON-NEXT")),
            client_attributes=r.rest(),
        )
        if any(not k.startswith("X-") for k, _ in rng.client_attributes):
            raise ManifestError("EXT-X-DATERANGE has an attribute that is not X-")
        return rng


@dataclass(frozen=True)
class Part:
    """EXT-X-PART: one partial segment (LL-HLS), ``duration`` in seconds."""

    uri: str
    duration: float
    independent: bool = False
    byterange: str | None = None
    gap: bool = False

    def render(self) -> str:
        attrs = [("DURATION", _num(self.duration)), ("URI", _q(self.uri))]
        if self.independent:
            attrs.append(("INDEPENDENT", "YES"))
        _put_q(attrs, "BYTERANGE", self.byterange)
        if self.gap:
            attrs.append(("GAP", "YES"))
        return "#EXT-X-PART:" + _render_attrs(attrs)

    @classmethod
    def parse(cls, value: str) -> Part:
        r = _Reader("EXT-X-PART", value)
        duration = r.number("DURATION")
        if duration is None:
            raise ManifestError("EXT-X-PART has no DURATION")
        return cls(
            uri=r.need("URI"),
            duration=duration,
            independent=bool(r.flag("INDEPENDENT")),
            byterange=r.quoted("BYTERANGE"),
            gap=bool(r.flag("GAP")),
        )


@dataclass(frozen=True)
class PreloadHint:
    """EXT-X-PRELOAD-HINT: the next part (or map) a player may request before it exists."""

    type: str  # PART or MAP
    uri: str
    byterange_start: int | None = None
    byterange_length: int | None = None

    def render(self) -> str:
        attrs = [("TYPE", self.type), ("URI", _q(self.uri))]
        start, length = self.byterange_start, self.byterange_length
        _put(attrs, "BYTERANGE-START", None if start is None else str(start))
        _put(attrs, "BYTERANGE-LENGTH", None if length is None else str(length))
        return "#EXT-X-PRELOAD-HINT:" + _render_attrs(attrs)

    @classmethod
    def parse(cls, value: str) -> PreloadHint:
        r = _Reader("EXT-X-PRELOAD-HINT", value)
        kind = r.raw("TYPE")
        if kind not in ("PART", "MAP"):
            raise ManifestError("EXT-X-PRELOAD-HINT TYPE must be PART or MAP")
        return cls(kind, r.need("URI"), r.integer("BYTERANGE-START"), r.integer("BYTERANGE-LENGTH"))


@dataclass(frozen=True)
class RenditionReport:
    """EXT-X-RENDITION-REPORT: the newest segment/part of another rendition (LL-HLS)."""

    uri: str
    last_msn: int | None = None
    last_part: int | None = None

    def render(self) -> str:
        attrs = [("URI", _q(self.uri))]
        _put(attrs, "LAST-MSN", None if self.last_msn is None else str(self.last_msn))
        _put(attrs, "LAST-PART", None if self.last_part is None else str(self.last_part))
        return "#EXT-X-RENDITION-REPORT:" + _render_attrs(attrs)

    @classmethod
    def parse(cls, value: str) -> RenditionReport:
        r = _Reader("EXT-X-RENDITION-REPORT", value)
        return cls(r.need("URI"), r.integer("LAST-MSN"), r.integer("LAST-PART"))


@dataclass(frozen=True)
class ServerControl:
    """EXT-X-SERVER-CONTROL: blocking reloads, delta updates and hold-backs (seconds)."""

    can_block_reload: bool = False
    can_skip_until: float | None = None
    can_skip_dateranges: bool = False
    hold_back: float | None = None
    part_hold_back: float | None = None

    def render(self) -> str:
        attrs: list[tuple[str, str]] = []
        if self.can_block_reload:
            attrs.append(("CAN-BLOCK-RELOAD", "YES"))
        skip = self.can_skip_until
        _put(attrs, "CAN-SKIP-UNTIL", None if skip is None else _num(skip))
        if self.can_skip_dateranges:
            attrs.append(("CAN-SKIP-DATERANGES", "YES"))
        _put(attrs, "HOLD-BACK", None if self.hold_back is None else _num(self.hold_back))
        phb = self.part_hold_back
        _put(attrs, "PART-HOLD-BACK", None if phb is None else _num(phb))
        return "#EXT-X-SERVER-CONTROL:" + _render_attrs(attrs)

    @classmethod
    def parse(cls, value: str) -> ServerControl:
        r = _Reader("EXT-X-SERVER-CONTROL", value)
        return cls(
            can_block_reload=bool(r.flag("CAN-BLOCK-RELOAD")),
            can_skip_until=r.number("CAN-SKIP-UNTIL"),
            can_skip_dateranges=bool(r.flag("CAN-SKIP-DATERANGES")),
            hold_back=r.number("HOLD-BACK"),
            part_hold_back=r.number("PART-HOLD-BACK"),
        )


@dataclass(frozen=True)
class Skip:
    """EXT-X-SKIP: a delta update left out this many segments (and these date ranges)."""

    skipped_segments: int
    recently_removed_dateranges: tuple[str, ...] = ()

    def render(self) -> str:
        attrs = [("SKIPPED-SEGMENTS", str(self.skipped_segments))]
        if self.recently_removed_dateranges:
            removed = "\t".join(self.recently_removed_dateranges)
            attrs.append(("RECENTLY-REMOVED-DATERANGES", _q(removed)))
        return "#EXT-X-SKIP:" + _render_attrs(attrs)

    @classmethod
    def parse(cls, value: str) -> Skip:
        r = _Reader("EXT-X-SKIP", value)
        skipped = r.integer("SKIPPED-SEGMENTS")
        if skipped is None:
            raise ManifestError("EXT-X-SKIP has no SKIPPED-SEGMENTS")
        removed = r.quoted("RECENTLY-REMOVED-DATERANGES")
        return cls(skipped, tuple(removed.split("\t")) if removed else ())


# -- multivariant playlist tags ------------------------------------------------------------


@dataclass(frozen=True)
class Media:
    """EXT-X-MEDIA: one rendition of a group (audio language, subtitles, …)."""

    type: str  # AUDIO, VIDEO, SUBTITLES, CLOSED-CAPTIONS
    group_id: str
    name: str
    default: bool | None = None
    autoselect: bool | None = None
    forced: bool | None = None
    language: str | None = None
    assoc_language: str | None = None
    instream_id: str | None = None
    characteristics: str | None = None
    channels: str | None = None
    uri: str | None = None
    extra: Attrs = ()

    def render(self) -> str:
        attrs = [("TYPE", self.type), ("GROUP-ID", _q(self.group_id)), ("NAME", _q(self.name))]
        for name, flag in (
            ("DEFAULT", self.default),
            ("AUTOSELECT", self.autoselect),
            ("FORCED", self.forced),
        ):
            _put(attrs, name, None if flag is None else _yes(flag))
        _put_q(attrs, "LANGUAGE", self.language)
        _put_q(attrs, "ASSOC-LANGUAGE", self.assoc_language)
        _put_q(attrs, "INSTREAM-ID", self.instream_id)
        _put_q(attrs, "CHARACTERISTICS", self.characteristics)
        _put_q(attrs, "CHANNELS", self.channels)
        _put_q(attrs, "URI", self.uri)
        return "#EXT-X-MEDIA:" + _render_attrs([*attrs, *self.extra])

    @classmethod
    def parse(cls, value: str) -> Media:
        r = _Reader("EXT-X-MEDIA", value)
        kind = r.raw("TYPE")
        if not kind:
            raise ManifestError("EXT-X-MEDIA has no TYPE")
        return cls(
            type=kind,
            group_id=r.need("GROUP-ID"),
            name=r.need("NAME"),
            default=r.flag("DEFAULT"),
            autoselect=r.flag("AUTOSELECT"),
            forced=r.flag("FORCED"),
            language=r.quoted("LANGUAGE"),
            assoc_language=r.quoted("ASSOC-LANGUAGE"),
            instream_id=r.quoted("INSTREAM-ID"),
            characteristics=r.quoted("CHARACTERISTICS"),
            channels=r.quoted("CHANNELS"),
            uri=r.quoted("URI"),
            extra=r.rest(),
        )


@dataclass(frozen=True)
class Variant:
    """EXT-X-STREAM-INF and its URI: one variant stream (bits per second, frames per second)."""

    uri: str
    bandwidth: int
    average_bandwidth: int | None = None
    codecs: str | None = None
    resolution: tuple[int, int] | None = None
    frame_rate: float | None = None
    audio: str | None = None
    video: str | None = None
    subtitles: str | None = None
    closed_captions: str | None = None  # raw: a quoted group id, or NONE
    extra: Attrs = ()

    def lines(self) -> list[str]:
        attrs = [("BANDWIDTH", str(self.bandwidth))]
        avg = self.average_bandwidth
        _put(attrs, "AVERAGE-BANDWIDTH", None if avg is None else str(avg))
        _put_q(attrs, "CODECS", self.codecs)
        res = self.resolution
        _put(attrs, "RESOLUTION", None if res is None else f"{res[0]}x{res[1]}")
        fps = self.frame_rate
        _put(attrs, "FRAME-RATE", None if fps is None else f"{fps:.3f}")
        _put_q(attrs, "AUDIO", self.audio)
        _put_q(attrs, "VIDEO", self.video)
        _put_q(attrs, "SUBTITLES", self.subtitles)
        _put(attrs, "CLOSED-CAPTIONS", self.closed_captions)
        line = "#EXT-X-STREAM-INF:" + _render_attrs([*attrs, *self.extra])
        return [line, _uri_line(self.uri)]

    @classmethod
    def parse(cls, value: str, uri: str) -> Variant:
        r = _Reader("EXT-X-STREAM-INF", value)
        bandwidth = r.integer("BANDWIDTH")
        if bandwidth is None:
            raise ManifestError("EXT-X-STREAM-INF has no BANDWIDTH")
        res = r.raw("RESOLUTION")
        resolution = None
        if res is not None:
            w, x, h = res.partition("x")
            if not x:
                raise ManifestError("EXT-X-STREAM-INF RESOLUTION is not WxH")
            resolution = (_int(w, "RESOLUTION"), _int(h, "RESOLUTION"))
        return cls(
            uri=uri,
            bandwidth=bandwidth,
            average_bandwidth=r.integer("AVERAGE-BANDWIDTH"),
            codecs=r.quoted("CODECS"),
            resolution=resolution,
            frame_rate=r.number("FRAME-RATE"),
            audio=r.quoted("AUDIO"),
            video=r.quoted("VIDEO"),
            subtitles=r.quoted("SUBTITLES"),
            closed_captions=r.raw("CLOSED-CAPTIONS"),
            extra=r.rest(),
        )
