"""LL-HLS Playlist Delta Updates (RFC 8216bis 6.2.5.1): the media playlist a player asks
for with ``_HLS_skip=YES``, its oldest segments replaced by one ``EXT-X-SKIP`` tag.

A delta skips the segments that lie wholly further than the Skip Boundary (the playlist's
``CAN-SKIP-UNTIL``) from the playlist's end (the end of its newest part), with the tags
that apply to them only; ``EXT-X-MEDIA-SEQUENCE`` and ``EXT-X-DISCONTINUITY-SEQUENCE`` stay
as they are (they number the skipped segments too: a player merges the delta into the
playlist it has). What a remaining segment needs of a skipped one is repeated on the first
remaining segment: the ``EXT-X-MAP`` in force, and its ``EXT-X-PROGRAM-DATE-TIME`` (the last
skipped one's plus the durations after it) when it has none of its own.

Never skipped: a segment carrying ``EXT-X-DISCONTINUITY`` (or any older one). The RFC
allows it, but a player numbers the remaining segments' discontinuities from the tags it
sees, so the skip stops before the oldest discontinuity instead. A playlist whose skipped
part would hold a tag that outlives its segment or must stay (``EXT-X-KEY``,
``EXT-X-BITRATE``, ``EXT-X-BYTERANGE``, ``EXT-X-DATERANGE``; the packager writes none) is
answered whole, as is one without ``CAN-SKIP-UNTIL``, an ended one, one already a delta,
and one shorter than the boundary (nothing to skip).

It works on the lines of the packager's playlist: a few splits and searches in C over the
whole text, and Python only over the tail within the boundary (a 12-hour DVR playlist of
2 s segments is 65 000 lines; its delta is about a dozen segments).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mediaplane.media import ManifestError, ServerControl

__all__ = ["SKIP_VALUES", "delta_update"]

#: The ``_HLS_skip`` values a delta answers: ``v2`` also skips old EXT-X-DATERANGE tags,
#: and the packager writes none, so it is ``YES``.
SKIP_VALUES = ("YES", "v2")
#: EXT-X-SKIP needs EXT-X-VERSION 9.
SKIP_VERSION = 9
#: Seconds: the rounding of the playlist's durations (EXTINF to the microsecond, parts to
#: 10 µs) is not a reason to keep a segment.
_SLACK = 1e-3

_SEGMENT_TAGS = frozenset(
    {
        b"EXTINF",
        b"EXT-X-DISCONTINUITY",
        b"EXT-X-KEY",
        b"EXT-X-MAP",
        b"EXT-X-PROGRAM-DATE-TIME",
        b"EXT-X-DATERANGE",
        b"EXT-X-BYTERANGE",
        b"EXT-X-GAP",
        b"EXT-X-BITRATE",
        b"EXT-X-PART",
        b"EXT-X-PRELOAD-HINT",
        b"EXT-X-RENDITION-REPORT",
    }
)
#: In the skipped part, these make the answer the whole playlist (see the module).
_KEPT = (b"\n#EXT-X-KEY:", b"\n#EXT-X-BITRATE:", b"\n#EXT-X-BYTERANGE:", b"\n#EXT-X-DATERANGE:")
_DISCONTINUITY = b"#EXT-X-DISCONTINUITY"
_MAP = b"#EXT-X-MAP:"
_PDT = b"#EXT-X-PROGRAM-DATE-TIME:"
_EXTINF = b"#EXTINF:"


def _is_uri(line: bytes) -> bool:
    return bool(line) and not line.startswith(b"#")


def _header(lines: list[bytes]) -> tuple[int, float, int | None] | None:
    """Where the segments begin, the Skip Boundary, and the EXT-X-VERSION line's index;
    None when the playlist offers no delta (no CAN-SKIP-UNTIL, already a delta)."""
    boundary: float | None = None
    version: int | None = None
    for i in range(1, len(lines)):
        line = lines[i]
        if not line:
            continue
        if not line.startswith(b"#"):
            break
        name, _, value = line[1:].partition(b":")
        if name in _SEGMENT_TAGS:
            break
        if name == b"EXT-X-SKIP":
            return None
        if name == b"EXT-X-VERSION":
            version = i
        elif name == b"EXT-X-SERVER-CONTROL":
            try:
                boundary = ServerControl.parse(value.decode()).can_skip_until
            except (ManifestError, UnicodeDecodeError):
                return None
    else:
        return None
    if boundary is None or boundary <= 0:
        return None
    return i, boundary, version


def _tags_before(lines: list[bytes], uri: int, start: int) -> int:
    """The index of the first tag line of the segment whose URI line is ``uri`` (the line
    after the previous segment's URI, or ``start``)."""
    j = uri - 1
    while j >= start and not _is_uri(lines[j]):
        j -= 1
    return j + 1


def _extinf(line: bytes) -> float:
    return float(line[len(_EXTINF) :].split(b",", 1)[0])


def _part_duration(line: bytes) -> float:
    for attr in line.partition(b":")[2].split(b","):
        if attr.startswith(b"DURATION="):
            return float(attr[len(b"DURATION=") :])
    raise ValueError("EXT-X-PART without DURATION")


def _last_skipped(lines: list[bytes], start: int, boundary: float) -> int | None:
    """The URI line of the newest segment that ends at least ``boundary`` seconds before
    the playlist's end; None when there is none (or the playlist has ended)."""
    after = 0.0  # seconds of the playlist after the segment looked at
    i = len(lines) - 1
    while i >= start and not _is_uri(lines[i]):  # the open segment's parts, the tail
        line = lines[i]
        if line.startswith(b"#EXT-X-PART:"):
            after += _part_duration(line)
        elif line == b"#EXT-X-ENDLIST":
            return None
        i -= 1
    while i >= start:
        if after + _SLACK >= boundary:
            return i
        first = _tags_before(lines, i, start)
        durations = [_extinf(line) for line in lines[first:i] if line.startswith(_EXTINF)]
        if len(durations) != 1:
            raise ValueError("a segment without one EXTINF")
        after += durations[0]
        i = first - 1
    return None


def _pdt_after(lines: list[bytes], start: int, cut: int) -> bytes | None:
    """The program date-time line the segment after URI line ``cut`` has by the skipped
    ones: the last skipped EXT-X-PROGRAM-DATE-TIME plus the durations from it on."""
    seconds = 0.0
    for j in range(cut, start - 1, -1):
        line = lines[j]
        if line.startswith(_EXTINF):
            seconds += _extinf(line)
        elif line.startswith(_PDT):
            text = line[len(_PDT) :].decode().replace("Z", "+00:00")
            at = datetime.fromisoformat(text) + timedelta(seconds=seconds)
            iso = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            return _PDT + iso.encode()
    return None


def delta_update(body: bytes) -> bytes:
    """``body`` (a live media playlist) as a Playlist Delta Update; ``body`` itself when it
    offers none or has nothing to skip (see the module). Raises nothing on a malformed
    playlist: it is answered whole."""
    try:
        return _delta(body)
    except (ValueError, UnicodeDecodeError):
        return body


def _delta(body: bytes) -> bytes:
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    head = _header(lines)
    if head is None:
        return body
    start, boundary, version_at = head
    cut = _last_skipped(lines, start, boundary)
    if cut is None:
        return body
    try:  # never past a discontinuity: the skip ends before the oldest one
        oldest = lines.index(_DISCONTINUITY, start, cut + 1)
    except ValueError:
        pass
    else:
        cut = _tags_before(lines, oldest, start) - 1
        if cut < start:
            return body
    skipped = b"\n" + b"\n".join(lines[start : cut + 1])
    if any(tag in skipped for tag in _KEPT):
        return body
    count = skipped.count(b"\n" + _EXTINF)
    first = cut + 1  # the first remaining segment's tags, up to its URI (or the tail)
    end = first
    while end < len(lines) and not _is_uri(lines[end]):
        end += 1
    own = lines[first:end]
    repeated: list[bytes] = []
    if not any(line.startswith(_MAP) for line in own):
        at = skipped.rfind(b"\n" + _MAP)
        if at >= 0:
            stop = skipped.find(b"\n", at + 1)
            repeated.append(skipped[at + 1 : stop if stop >= 0 else None])
    if not any(line.startswith(_PDT) for line in own):
        pdt = _pdt_after(lines, start, cut)
        if pdt is not None:
            repeated.append(pdt)
    if own and own[0] == _DISCONTINUITY:  # the canonical order: the discontinuity first
        first += 1
    header = lines[:start]
    if version_at is not None and int(header[version_at].partition(b":")[2]) < SKIP_VERSION:
        header[version_at] = b"#EXT-X-VERSION:%d" % SKIP_VERSION
    skip = b"#EXT-X-SKIP:SKIPPED-SEGMENTS=%d" % count
    return b"\n".join([*header, skip, *lines[cut + 1 : first], *repeated, *lines[first:]])
