"""DASH MPDs as models: :class:`MPD` → :class:`Period` → :class:`AdaptationSet` →
:class:`Representation`, with :class:`SegmentTemplate` timelines (ISO/IEC 23009-1).

Pure dataclasses with ``MPD.parse()`` and ``render()`` (``bytes(mpd)`` is the UTF-8 text), no
I/O. An MPD is hostile input: at most :data:`MAX_MPD_BYTES` and :data:`MAX_DEPTH` levels are
read, no DTD (so no entity expansion), and nothing but :class:`ManifestError` is raised.

Modelled besides the VOD subset we write: dynamic (live) MPD attributes, UTCTiming,
ContentProtection (``cenc:default_KID``, ``cenc:pssh``) for DRM and EventStream/Event for ads
(SCTE-35). Attributes and elements the models do not know are kept (:class:`Node`) and
written back after the known ones; durations and dates stay the strings they were
(:func:`iso_duration` / :func:`parse_iso_duration` convert seconds).

``render(parse(text)) == text`` holds for canonical text (what :meth:`MPD.render` writes);
``parse(render(x)) == x`` for every model.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from ._errors import ManifestError

DASH_NS = "urn:mpeg:dash:schema:mpd:2011"
CENC_NS = "urn:mpeg:cenc:2013"
XLINK_NS = "http://www.w3.org/1999/xlink"
SCTE35_NS = "http://www.scte.org/schemas/35/2016"
CLEARKEY_NS = "http://dashif.org/guidelines/clearKey"
DASHIF_NS = "https://dashif.org/CPS"
#: Prefixes written for the namespaces MPDs share (ElementTree's registry is process-wide).
for _prefix, _uri in (
    ("cenc", CENC_NS),
    ("xlink", XLINK_NS),
    ("scte35", SCTE35_NS),
    ("clearkey", CLEARKEY_NS),
    ("dashif", DASHIF_NS),
):
    ET.register_namespace(_prefix, _uri)

MAX_MPD_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32
#: CENC's ContentProtection scheme (the one that carries default_KID).
MP4_PROTECTION = "urn:mpeg:dash:mp4protection:2011"

Attrs = tuple[tuple[str, str], ...]
"""Attributes the models do not know: (name in ``{namespace}local`` form, value), in order."""


def _d(local: str) -> str:
    return f"{{{DASH_NS}}}{local}"


def iso_duration(seconds: float) -> str:
    """Seconds as the xs:duration we write (``PT5.000S``)."""
    return f"PT{seconds:.3f}S"


_DURATION = re.compile(
    r"P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)


def parse_iso_duration(text: str) -> float:
    """An xs:duration (days, hours, minutes, seconds) in seconds."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or text.strip() in ("P", "PT"):
        raise ManifestError(f"{text[:40]!r} is not an ISO 8601 duration")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


@dataclass(frozen=True)
class Node:
    """An element the models do not know, kept whole (``tag`` in ``{namespace}local`` form)."""

    tag: str
    attributes: Attrs = ()
    text: str | None = None
    children: tuple[Node, ...] = ()

    def element(self) -> ET.Element:
        el = ET.Element(self.tag.removeprefix(f"{{{DASH_NS}}}"), dict(self.attributes))
        el.text = self.text
        el.extend(c.element() for c in self.children)
        return el

    @classmethod
    def of(cls, el: ET.Element) -> Node:
        children = tuple(cls.of(c) for c in el)
        return cls(str(el.tag), tuple(el.attrib.items()), _text(el, children), children)


def _text(el: ET.Element, children: tuple[object, ...]) -> str | None:
    # Indentation between child elements is layout, not content.
    if children and (el.text is None or not el.text.strip()):
        return None
    return el.text


class _Reader:
    """Typed access to an element's attributes; :meth:`rest` is what was not read."""

    def __init__(self, el: ET.Element) -> None:
        self.el = el
        self.used: set[str] = set()

    def get(self, name: str) -> str | None:
        self.used.add(name)
        return self.el.get(name)

    def need(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise ManifestError(f"{_local(self.el)} has no {name}")
        return v

    def int(self, name: str) -> int | None:
        v = self.get(name)
        if v is None:
            return None
        if not (v.isascii() and v.isdigit()) or len(v) > 20:
            raise ManifestError(f"{_local(self.el)}@{name}: {v[:40]!r} is not an integer")
        return int(v)

    def rest(self) -> Attrs:
        return tuple((k, v) for k, v in self.el.attrib.items() if k not in self.used)


def _local(el: ET.Element) -> str:
    return str(el.tag).rpartition("}")[2]


def _element(tag: str, attrs: list[tuple[str, str | None]], extra: Attrs) -> ET.Element:
    el = ET.Element(tag)  # DASH elements unqualified: the root declares the namespace
    for k, v in [*attrs, *extra]:
        if v is not None:
            el.set(k, v)
    return el


def _s(value: int | None) -> str | None:
    return None if value is None else str(value)


def _sub(parent: ET.Element, children: list[ET.Element], nodes: tuple[Node, ...]) -> None:
    parent.extend(children)
    parent.extend(n.element() for n in nodes)


@dataclass(frozen=True)
class Descriptor:
    """A DescriptorType element: Role, Accessibility, AudioChannelConfiguration, UTCTiming,
    EssentialProperty, SupplementalProperty."""

    scheme_id_uri: str
    value: str | None = None
    id: str | None = None

    def element(self, tag: str) -> ET.Element:
        attrs = [("schemeIdUri", self.scheme_id_uri), ("value", self.value), ("id", self.id)]
        return _element(tag, attrs, ())

    @classmethod
    def of(cls, el: ET.Element) -> Descriptor:
        r = _Reader(el)
        return cls(r.need("schemeIdUri"), r.get("value"), r.get("id"))


@dataclass(frozen=True)
class ContentProtection:
    """A ContentProtection descriptor: the CENC scheme (``value`` cenc or cbcs, with
    ``default_kid``) or one DRM system (``urn:uuid:…``, with its ``pssh`` box)."""

    scheme_id_uri: str
    value: str | None = None
    default_kid: str | None = None
    pssh: bytes | None = None
    extra: Attrs = ()
    nodes: tuple[Node, ...] = ()  # e.g. a ClearKey Laurl

    def element(self) -> ET.Element:
        attrs = [
            ("schemeIdUri", self.scheme_id_uri),
            ("value", self.value),
            (f"{{{CENC_NS}}}default_KID", self.default_kid),
        ]
        el = _element("ContentProtection", attrs, self.extra)
        if self.pssh is not None:
            ET.SubElement(el, f"{{{CENC_NS}}}pssh").text = base64.b64encode(self.pssh).decode()
        _sub(el, [], self.nodes)
        return el

    @classmethod
    def of(cls, el: ET.Element) -> ContentProtection:
        r = _Reader(el)
        pssh: bytes | None = None
        nodes: list[Node] = []
        for c in el:
            if c.tag == f"{{{CENC_NS}}}pssh" and pssh is None:
                try:
                    pssh = base64.b64decode((c.text or "").strip(), validate=True)
                except (binascii.Error, ValueError):
                    raise ManifestError("cenc:pssh is not base64") from None
            else:
                nodes.append(Node.of(c))
        return cls(
            r.need("schemeIdUri"),
            r.get("value"),
            r.get(f"{{{CENC_NS}}}default_KID"),
            pssh,
            r.rest(),
            tuple(nodes),
        )


@dataclass(frozen=True)
class TimelineEntry:
    """An ``S`` of a SegmentTimeline: start ``t`` (omitted when contiguous), duration ``d``,
    ``r`` repeats (timescale units)."""

    d: int
    t: int | None = None
    r: int | None = None

    def element(self) -> ET.Element:
        return _element("S", [("t", _s(self.t)), ("d", str(self.d)), ("r", _s(self.r))], ())

    @classmethod
    def of(cls, el: ET.Element) -> TimelineEntry:
        r = _Reader(el)
        d = r.int("d")
        if d is None:
            raise ManifestError("S has no d")
        t = r.int("t")
        rv = r.get("r")
        if rv is not None and rv != "-1" and not (rv.isascii() and rv.isdigit()):
            raise ManifestError(f"S@r: {rv[:40]!r} is not an integer")
        if rv is not None and len(rv) > 20:
            raise ManifestError("S@r is too large")
        return cls(d, t, None if rv is None else int(rv))


@dataclass(frozen=True)
class SegmentTemplate:
    """Numbered (``$Number$``) or timed segments; ``timeline`` None for a fixed ``duration``."""

    media: str | None = None
    initialization: str | None = None
    timescale: int | None = None
    start_number: int | None = None
    duration: int | None = None
    presentation_time_offset: int | None = None
    timeline: tuple[TimelineEntry, ...] | None = None
    extra: Attrs = ()

    def element(self) -> ET.Element:
        attrs = [
            ("timescale", _s(self.timescale)),
            ("initialization", self.initialization),
            ("media", self.media),
            ("startNumber", _s(self.start_number)),
            ("duration", _s(self.duration)),
            ("presentationTimeOffset", _s(self.presentation_time_offset)),
        ]
        el = _element("SegmentTemplate", attrs, self.extra)
        if self.timeline is not None:
            tl = ET.SubElement(el, "SegmentTimeline")
            tl.extend(s.element() for s in self.timeline)
        return el

    @classmethod
    def of(cls, el: ET.Element) -> SegmentTemplate:
        r = _Reader(el)
        tl = el.find(_d("SegmentTimeline"))
        timeline = None if tl is None else tuple(TimelineEntry.of(s) for s in tl.iter(_d("S")))
        return cls(
            media=r.get("media"),
            initialization=r.get("initialization"),
            timescale=r.int("timescale"),
            start_number=r.int("startNumber"),
            duration=r.int("duration"),
            presentation_time_offset=r.int("presentationTimeOffset"),
            timeline=timeline,
            extra=r.rest(),
        )

    def numbers(self) -> list[tuple[int, int, int]]:
        """(number, start, duration) of every segment the timeline lists (``r=-1`` once)."""
        out: list[tuple[int, int, int]] = []
        number = self.start_number if self.start_number is not None else 1
        t = 0
        for s in self.timeline or ():
            t = s.t if s.t is not None else t
            for _ in range(max(0, s.r or 0) + 1):
                out.append((number, t, s.d))
                number += 1
                t += s.d
        return out


def _children(el: ET.Element, known: dict[str, list[ET.Element]]) -> tuple[Node, ...]:
    """Sort ``el``'s children into ``known`` (by DASH local name); the rest as nodes."""
    nodes: list[Node] = []
    for c in el:
        name = str(c.tag)
        local = name.removeprefix(f"{{{DASH_NS}}}")
        if local != name and local in known:
            known[local].append(c)
        else:
            nodes.append(Node.of(c))
    return tuple(nodes)


def _one(found: list[ET.Element]) -> ET.Element | None:
    return found[0] if found else None


@dataclass(frozen=True)
class Representation:
    """One encoded track: bits per second ``bandwidth``, ``frame_rate`` as written
    (``30`` or ``30000/1001``)."""

    id: str
    bandwidth: int
    codecs: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    sar: str | None = None
    frame_rate: str | None = None
    audio_sampling_rate: str | None = None
    audio_channels: tuple[Descriptor, ...] = ()  # AudioChannelConfiguration
    content_protection: tuple[ContentProtection, ...] = ()
    segment_template: SegmentTemplate | None = None
    extra: Attrs = ()
    nodes: tuple[Node, ...] = ()

    def element(self) -> ET.Element:
        attrs = [
            ("id", self.id),
            ("mimeType", self.mime_type),
            ("bandwidth", str(self.bandwidth)),
            ("codecs", self.codecs),
            ("width", _s(self.width)),
            ("height", _s(self.height)),
            ("sar", self.sar),
            ("frameRate", self.frame_rate),
            ("audioSamplingRate", self.audio_sampling_rate),
        ]
        el = _element("Representation", attrs, self.extra)
        children = [c.element("AudioChannelConfiguration") for c in self.audio_channels]
        children += [c.element() for c in self.content_protection]
        if self.segment_template is not None:
            children.append(self.segment_template.element())
        _sub(el, children, self.nodes)
        return el

    @classmethod
    def of(cls, el: ET.Element) -> Representation:
        r = _Reader(el)
        bandwidth = r.int("bandwidth")
        if bandwidth is None:
            raise ManifestError("Representation has no bandwidth")
        k: dict[str, list[ET.Element]] = {
            "AudioChannelConfiguration": [], "ContentProtection": [], "SegmentTemplate": []
        }  # fmt: skip
        nodes = _children(el, k)
        st = _one(k["SegmentTemplate"])
        return cls(
            id=r.need("id"),
            mime_type=r.get("mimeType"),
            bandwidth=bandwidth,
            codecs=r.get("codecs"),
            width=r.int("width"),
            height=r.int("height"),
            sar=r.get("sar"),
            frame_rate=r.get("frameRate"),
            audio_sampling_rate=r.get("audioSamplingRate"),
            audio_channels=tuple(Descriptor.of(c) for c in k["AudioChannelConfiguration"]),
            content_protection=tuple(ContentProtection.of(c) for c in k["ContentProtection"]),
            segment_template=None if st is None else SegmentTemplate.of(st),
            extra=r.rest(),
            nodes=nodes,
        )


@dataclass(frozen=True)
class AdaptationSet:
    """Interchangeable representations of one content type (a video ladder, one language)."""

    representations: tuple[Representation, ...] = ()
    id: str | None = None
    content_type: str | None = None
    mime_type: str | None = None
    segment_alignment: str | None = None
    start_with_sap: str | None = None
    max_width: int | None = None
    max_height: int | None = None
    max_frame_rate: str | None = None
    par: str | None = None
    lang: str | None = None
    #: Common to every representation of the set (RepresentationBase attributes).
    codecs: str | None = None
    width: int | None = None
    height: int | None = None
    sar: str | None = None
    frame_rate: str | None = None
    audio_sampling_rate: str | None = None
    audio_channels: tuple[Descriptor, ...] = ()
    label: str | None = None
    content_protection: tuple[ContentProtection, ...] = ()
    accessibility: tuple[Descriptor, ...] = ()
    roles: tuple[Descriptor, ...] = ()
    segment_template: SegmentTemplate | None = None
    extra: Attrs = ()
    nodes: tuple[Node, ...] = ()

    def element(self) -> ET.Element:
        attrs = [
            ("id", self.id),
            ("contentType", self.content_type),
            ("mimeType", self.mime_type),
            ("segmentAlignment", self.segment_alignment),
            ("startWithSAP", self.start_with_sap),
            ("maxWidth", _s(self.max_width)),
            ("maxHeight", _s(self.max_height)),
            ("maxFrameRate", self.max_frame_rate),
            ("par", self.par),
            ("lang", self.lang),
            ("codecs", self.codecs),
            ("width", _s(self.width)),
            ("height", _s(self.height)),
            ("sar", self.sar),
            ("frameRate", self.frame_rate),
            ("audioSamplingRate", self.audio_sampling_rate),
        ]
        el = _element("AdaptationSet", attrs, self.extra)
        children: list[ET.Element] = []
        if self.label is not None:
            label = ET.Element("Label")
            label.text = self.label
            children.append(label)
        children += [c.element("AudioChannelConfiguration") for c in self.audio_channels]
        children += [c.element() for c in self.content_protection]
        children += [a.element("Accessibility") for a in self.accessibility]
        children += [a.element("Role") for a in self.roles]
        if self.segment_template is not None:
            children.append(self.segment_template.element())
        children += [r.element() for r in self.representations]
        _sub(el, children, self.nodes)
        return el

    @classmethod
    def of(cls, el: ET.Element) -> AdaptationSet:
        r = _Reader(el)
        names = ("Label", "AudioChannelConfiguration", "ContentProtection", "Accessibility", "Role")
        k: dict[str, list[ET.Element]] = {n: [] for n in (*names, "SegmentTemplate")}
        k["Representation"] = []
        nodes = _children(el, k)
        label = _one(k["Label"])
        st = _one(k["SegmentTemplate"])
        return cls(
            id=r.get("id"),
            content_type=r.get("contentType"),
            mime_type=r.get("mimeType"),
            segment_alignment=r.get("segmentAlignment"),
            start_with_sap=r.get("startWithSAP"),
            max_width=r.int("maxWidth"),
            max_height=r.int("maxHeight"),
            max_frame_rate=r.get("maxFrameRate"),
            par=r.get("par"),
            lang=r.get("lang"),
            codecs=r.get("codecs"),
            width=r.int("width"),
            height=r.int("height"),
            sar=r.get("sar"),
            frame_rate=r.get("frameRate"),
            audio_sampling_rate=r.get("audioSamplingRate"),
            audio_channels=tuple(Descriptor.of(c) for c in k["AudioChannelConfiguration"]),
            label=None if label is None else (label.text or ""),
            content_protection=tuple(ContentProtection.of(c) for c in k["ContentProtection"]),
            accessibility=tuple(Descriptor.of(c) for c in k["Accessibility"]),
            roles=tuple(Descriptor.of(c) for c in k["Role"]),
            segment_template=None if st is None else SegmentTemplate.of(st),
            representations=tuple(Representation.of(c) for c in k["Representation"]),
            extra=r.rest(),
            nodes=nodes,
        )


@dataclass(frozen=True)
class Event:
    """One event of an EventStream (an ad break's SCTE-35 cue: ``nodes`` holds the
    ``scte35:Signal``, or ``text`` the base64 message, as the scheme says)."""

    id: str | None = None
    presentation_time: int | None = None
    duration: int | None = None
    message_data: str | None = None
    text: str | None = None
    nodes: tuple[Node, ...] = ()

    def element(self) -> ET.Element:
        attrs = [
            ("id", self.id),
            ("presentationTime", _s(self.presentation_time)),
            ("duration", _s(self.duration)),
            ("messageData", self.message_data),
        ]
        el = _element("Event", attrs, ())
        el.text = self.text
        _sub(el, [], self.nodes)
        return el

    @classmethod
    def of(cls, el: ET.Element) -> Event:
        r = _Reader(el)
        nodes = tuple(Node.of(c) for c in el)
        return cls(
            r.get("id"),
            r.int("presentationTime"),
            r.int("duration"),
            r.get("messageData"),
            _text(el, nodes),
            nodes,
        )


@dataclass(frozen=True)
class EventStream:
    """Timed events of a period (``urn:scte:scte35:2014:xml+bin`` for ad cues)."""

    scheme_id_uri: str
    value: str | None = None
    timescale: int | None = None
    events: tuple[Event, ...] = ()

    def element(self) -> ET.Element:
        attrs = [
            ("schemeIdUri", self.scheme_id_uri),
            ("value", self.value),
            ("timescale", _s(self.timescale)),
        ]
        el = _element("EventStream", attrs, ())
        el.extend(e.element() for e in self.events)
        return el

    @classmethod
    def of(cls, el: ET.Element) -> EventStream:
        r = _Reader(el)
        events = tuple(Event.of(c) for c in el.iter(_d("Event")))
        return cls(r.need("schemeIdUri"), r.get("value"), r.int("timescale"), events)


@dataclass(frozen=True)
class Period:
    """A span of the presentation (ads and live splice new periods in)."""

    adaptation_sets: tuple[AdaptationSet, ...] = ()
    id: str | None = None
    start: str | None = None  # xs:duration
    duration: str | None = None
    event_streams: tuple[EventStream, ...] = ()
    extra: Attrs = ()
    nodes: tuple[Node, ...] = ()

    def element(self) -> ET.Element:
        attrs = [("id", self.id), ("start", self.start), ("duration", self.duration)]
        el = _element("Period", attrs, self.extra)
        children = [e.element() for e in self.event_streams]
        children += [a.element() for a in self.adaptation_sets]
        _sub(el, children, self.nodes)
        return el

    @classmethod
    def of(cls, el: ET.Element) -> Period:
        r = _Reader(el)
        k: dict[str, list[ET.Element]] = {"EventStream": [], "AdaptationSet": []}
        nodes = _children(el, k)
        return cls(
            id=r.get("id"),
            start=r.get("start"),
            duration=r.get("duration"),
            event_streams=tuple(EventStream.of(c) for c in k["EventStream"]),
            adaptation_sets=tuple(AdaptationSet.of(c) for c in k["AdaptationSet"]),
            extra=r.rest(),
            nodes=nodes,
        )


@dataclass(frozen=True)
class MPD:
    """A Media Presentation Description: ``type`` static (VOD) or dynamic (live)."""

    periods: tuple[Period, ...] = ()
    type: str | None = "static"
    profiles: str | None = None
    min_buffer_time: str | None = None
    media_presentation_duration: str | None = None
    availability_start_time: str | None = None
    publish_time: str | None = None
    minimum_update_period: str | None = None
    time_shift_buffer_depth: str | None = None
    suggested_presentation_delay: str | None = None
    max_segment_duration: str | None = None
    utc_timing: tuple[Descriptor, ...] = ()
    extra: Attrs = ()
    nodes: tuple[Node, ...] = ()

    def element(self) -> ET.Element:
        attrs = [
            ("xmlns", DASH_NS),
            ("type", self.type),
            ("profiles", self.profiles),
            ("minBufferTime", self.min_buffer_time),
            ("mediaPresentationDuration", self.media_presentation_duration),
            ("availabilityStartTime", self.availability_start_time),
            ("publishTime", self.publish_time),
            ("minimumUpdatePeriod", self.minimum_update_period),
            ("timeShiftBufferDepth", self.time_shift_buffer_depth),
            ("suggestedPresentationDelay", self.suggested_presentation_delay),
            ("maxSegmentDuration", self.max_segment_duration),
        ]
        el = _element("MPD", attrs, self.extra)
        children = [p.element() for p in self.periods]
        children += [u.element("UTCTiming") for u in self.utc_timing]
        _sub(el, children, self.nodes)
        return el

    def render(self) -> str:
        root = self.element()
        ET.indent(root)
        body = ET.tostring(root, encoding="unicode")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"

    def __bytes__(self) -> bytes:
        return self.render().encode()

    @classmethod
    def parse(cls, data: str | bytes, *, max_bytes: int = MAX_MPD_BYTES) -> MPD:
        """Read an MPD; :class:`ManifestError` on anything else or anything malformed."""
        root = _xml(data, max_bytes)
        if root.tag != _d("MPD"):
            raise ManifestError("not a DASH MPD (the root is not an MPD element)")
        r = _Reader(root)
        k: dict[str, list[ET.Element]] = {"Period": [], "UTCTiming": []}
        nodes = _children(root, k)
        return cls(
            type=r.get("type"),
            profiles=r.get("profiles"),
            min_buffer_time=r.get("minBufferTime"),
            media_presentation_duration=r.get("mediaPresentationDuration"),
            availability_start_time=r.get("availabilityStartTime"),
            publish_time=r.get("publishTime"),
            minimum_update_period=r.get("minimumUpdatePeriod"),
            time_shift_buffer_depth=r.get("timeShiftBufferDepth"),
            suggested_presentation_delay=r.get("suggestedPresentationDelay"),
            max_segment_duration=r.get("maxSegmentDuration"),
            periods=tuple(Period.of(p) for p in k["Period"]),
            utc_timing=tuple(Descriptor.of(u) for u in k["UTCTiming"]),
            extra=r.rest(),
            nodes=nodes,
        )


#: A declaration (DOCTYPE, ENTITY): refused, so no entity can expand (billion laughs).
_DECLARATION = re.compile(rb"<!(?!--|\[CDATA\[)")


def _xml(data: str | bytes, max_bytes: int) -> ET.Element:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise ManifestError(f"MPD larger than {max_bytes} bytes")
    if _DECLARATION.search(raw):
        raise ManifestError("MPD has a DTD declaration (refused)")
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    depth = 0
    root: ET.Element | None = None
    try:
        parser.feed(raw)
        parser.close()
        for item in parser.read_events():
            event, el = item[0], item[-1]
            if not isinstance(el, ET.Element):
                continue
            depth += 1 if event == "start" else -1
            if event == "start" and not str(el.tag).startswith("{"):
                raise ManifestError(f"MPD element <{str(el.tag)[:40]}> is in no namespace")
            if depth > MAX_DEPTH:
                raise ManifestError(f"MPD nests deeper than {MAX_DEPTH} elements")
            root = el if event == "end" and depth == 0 else root
    except ET.ParseError as exc:
        raise ManifestError(f"MPD is not well-formed XML: {exc}") from None
    except (ValueError, UnicodeError, LookupError) as exc:
        raise ManifestError(f"MPD cannot be read: {exc}") from None
    if root is None:
        raise ManifestError("MPD is empty")
    return root


__all__ = [
    "MPD",
    "AdaptationSet",
    "ContentProtection",
    "Descriptor",
    "Event",
    "EventStream",
    "Node",
    "Period",
    "Representation",
    "SegmentTemplate",
    "TimelineEntry",
    "iso_duration",
    "parse_iso_duration",
]
