"""A bounded, incremental reader of fragmented MP4 (CMAF) as a byte stream.

:class:`Fmp4Reader` is fed bytes as they arrive (ffmpeg's fMP4 output on a pipe) and hands
back, in order, one :class:`InitSegment` (``ftyp`` + ``moov``) and then one
:class:`Fragment` per ``moof`` + ``mdat`` pair (with any ``styp``, ``sidx``, ``prft`` or
``emsg`` before it): its bytes, its track's base media decode time and duration in the
track's timescale (``mdhd``), and whether its first sample is a sync sample. Pure: no I/O.

The stream is hostile input: every box size is checked against a bound before its bytes
are kept (:data:`MAX_HEADER_BOX_BYTES` for ``moov``/``moof``, :data:`MAX_MDAT_BYTES` for
``mdat``), sample counts against the bytes that hold them, and anything malformed raises
:class:`Fmp4Error` (a :class:`MediaError`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ._errors import Fmp4Error
from ._mp4 import AAC_LC

#: ``moov``, ``moof`` and the small boxes between fragments: a few KiB in practice.
MAX_HEADER_BOX_BYTES = 4 * 1024 * 1024
#: One fragment's media: a one-second part of 100 Mbit/s video is 12.5 MB.
MAX_MDAT_BYTES = 64 * 1024 * 1024
#: Boxes that may stand between fragments and belong to the fragment that follows.
_FRAGMENT_PREFIX = frozenset({b"styp", b"sidx", b"prft", b"emsg", b"free", b"skip"})
#: Boxes an init segment may carry besides ftyp and moov.
_INIT_EXTRA = frozenset({b"free", b"skip", b"uuid", b"pdin"})
#: Container boxes descended into while reading moov/moof.
_MAX_DEPTH = 12

# tfhd flags
_TFHD_BASE_DATA_OFFSET = 0x01
_TFHD_SAMPLE_DESCRIPTION = 0x02
_TFHD_DEFAULT_DURATION = 0x08
_TFHD_DEFAULT_SIZE = 0x10
_TFHD_DEFAULT_FLAGS = 0x20
# trun flags
_TRUN_DATA_OFFSET = 0x01
_TRUN_FIRST_FLAGS = 0x04
_TRUN_DURATION = 0x100
_TRUN_SIZE = 0x200
_TRUN_FLAGS = 0x400
_TRUN_CTS = 0x800
#: sample_is_non_sync_sample in the sample flags (ISO/IEC 14496-12 8.8.3.1).
_NON_SYNC = 0x0001_0000


@dataclass(frozen=True)
class Track:
    """One track of an init segment.

    :param kind: ``video``, ``audio`` or the handler type as read (``text``, …).
    :param timescale: units per second of the track's media times (``mdhd``).
    :param codec: the RFC 6381 codecs string (``avc1.64001f``, ``mp4a.40.2``) or the
        sample entry's four-character code when it is not one we name.
    """

    track_id: int
    kind: str
    timescale: int
    codec: str
    width: int | None = None
    height: int | None = None
    default_duration: int = 0  # trex, media units
    default_flags: int = 0  # trex


@dataclass(frozen=True)
class InitSegment:
    """``ftyp`` + ``moov`` (and any free boxes), as bytes, and the tracks they describe."""

    data: bytes
    tracks: tuple[Track, ...]


@dataclass(frozen=True)
class Fragment:
    """One movie fragment (a CMAF chunk): the bytes from its ``styp``/``moof`` through its
    ``mdat``, and its single track's timing in that track's timescale."""

    data: bytes
    sequence: int  # mfhd sequence_number
    track_id: int
    decode_time: int  # tfdt baseMediaDecodeTime
    duration: int  # sum of the sample durations
    samples: int
    sync: bool  # the first sample is a sync sample (a keyframe, for video)


# -- box walking ----------------------------------------------------------------------------


def _header(data: bytes | bytearray, pos: int, end: int) -> tuple[bytes, int, int] | None:
    """(type, header length, box size) of the box at ``pos``, or None if its header is not
    all in ``data[:end]`` yet. A size of 0 ("to the end of the file") has no end in a
    stream and is refused, as is a size smaller than the header."""
    if pos + 8 > end:
        return None
    size, kind = struct.unpack_from(">I4s", data, pos)
    header = 8
    if size == 1:
        if pos + 16 > end:
            return None
        size = struct.unpack_from(">Q", data, pos + 8)[0]
        header = 16
    if size == 0:
        raise Fmp4Error(f"box {kind!r} has size 0 (to end of file), which a stream cannot have")
    if size < header:
        raise Fmp4Error(f"box {kind!r} is smaller ({size} bytes) than its header")
    return kind, header, size


def _children(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes filling ``data[start:end]`` exactly."""
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos < end:
        found = _header(data, pos, end)
        if found is None:
            raise Fmp4Error("truncated box header inside a container box")
        kind, header, size = found
        if pos + size > end:
            raise Fmp4Error(f"box {kind!r} runs past the box that holds it")
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, s, e in _children(data, start, end):
        if k == kind:
            return s, e
    return None


def _need(data: bytes, start: int, end: int, kind: bytes, where: str) -> tuple[int, int]:
    found = _child(data, start, end, kind)
    if found is None:
        raise Fmp4Error(f"{where} has no {kind.decode('latin-1')} box")
    return found


def _full_box(data: bytes, start: int, end: int, length: int, what: str) -> tuple[int, int]:
    """(version, flags) of a full box whose payload must hold ``length`` bytes after them."""
    if end - start < 4 + length:
        raise Fmp4Error(f"{what} box is too short")
    word = struct.unpack_from(">I", data, start)[0]
    return word >> 24, word & 0xFFFFFF


# -- init segment ---------------------------------------------------------------------------


def _codec(data: bytes, start: int, end: int) -> tuple[str, int | None, int | None]:
    """Codec string, width and height from an ``stsd`` payload (its first sample entry)."""
    if end - start < 8:
        raise Fmp4Error("stsd box is too short")
    entries = _children(data, start + 8, end)
    if not entries:
        raise Fmp4Error("stsd has no sample entry")
    kind, s, e = entries[0]
    if kind in (b"encv", b"enca"):  # encrypted (ISO/IEC 23001-7): frma names the format
        fixed = 78 if kind == b"encv" else 28
        sinf = _child(data, s + fixed, e, b"sinf") if e - s > fixed else None
        frma = _child(data, *sinf, b"frma") if sinf else None
        if frma is None or frma[1] - frma[0] < 4:
            raise Fmp4Error(f"{kind.decode('latin-1')} sample entry has no frma")
        kind = data[frma[0] : frma[0] + 4]
    name = kind.decode("latin-1")
    if kind in (b"avc1", b"avc3"):
        if e - s < 78:
            raise Fmp4Error(f"{name} sample entry is too short")
        width, height = struct.unpack_from(">HH", data, s + 24)
        avcc = _child(data, s + 78, e, b"avcC")
        if avcc is None or avcc[1] - avcc[0] < 4:
            raise Fmp4Error(f"{name} sample entry has no avcC")
        profile, compat, level = data[avcc[0] + 1 : avcc[0] + 4]
        return f"{name}.{profile:02x}{compat:02x}{level:02x}", width, height
    if kind == b"mp4a":
        if e - s < 28:
            raise Fmp4Error("mp4a sample entry is too short")
        esds = _child(data, s + 28, e, b"esds")
        return (_mp4a_codec(data, *esds) if esds else AAC_LC), None, None
    return name, None, None


def _mp4a_codec(data: bytes, start: int, end: int) -> str:
    """``mp4a.40.N`` from an esds box: its decoder config's object type and, for MPEG-4
    audio (0x40), the audio object type of the AudioSpecificConfig."""
    pos = start + 4  # version and flags
    object_type: int | None = None
    while pos + 2 <= end:
        tag = data[pos]
        pos += 1
        length = 0
        for _ in range(4):  # expandable size: up to four bytes, 7 bits each
            if pos >= end:
                return AAC_LC
            byte = data[pos]
            pos += 1
            length = (length << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        if tag == 0x03:  # ES_Descriptor: ES_ID(2), flags(1), then children
            flags = data[pos + 2] if pos + 2 < end else 0
            pos += 3 + (2 if flags & 0x80 else 0)
            if flags & 0x40 and pos < end:
                pos += 1 + data[pos]
            if flags & 0x20:
                pos += 2
        elif tag == 0x04:  # DecoderConfigDescriptor: objectTypeIndication, then 12 bytes
            if pos >= end:
                return AAC_LC
            object_type = data[pos]
            pos += 13
        elif tag == 0x05:  # DecoderSpecificInfo: AudioSpecificConfig
            if object_type != 0x40 or pos >= end:
                break
            aot = data[pos] >> 3
            if aot == 31 and pos + 1 < end:
                aot = 32 + (((data[pos] & 0x07) << 3) | (data[pos + 1] >> 5))
            return f"mp4a.40.{aot}"
        else:
            pos += length
    if object_type is not None and object_type != 0x40:
        return f"mp4a.{object_type:02x}"
    return AAC_LC


def parse_init(data: bytes) -> InitSegment:
    """Read an init segment (``ftyp`` + ``moov``) held whole in ``data``."""
    boxes = _children(data, 0, len(data))
    moov = next(((s, e) for k, s, e in boxes if k == b"moov"), None)
    if moov is None:
        raise Fmp4Error("init segment has no moov box")
    defaults: dict[int, tuple[int, int]] = {}
    mvex = _child(data, *moov, b"mvex")
    if mvex is not None:
        for kind, s, e in _children(data, *mvex):
            if kind == b"trex":
                _full_box(data, s, e, 20, "trex")
                track_id, _, duration, _, flags = struct.unpack_from(">5I", data, s + 4)
                defaults[track_id] = (duration, flags)
    tracks: list[Track] = []
    for kind, s, e in _children(data, *moov):
        if kind != b"trak":
            continue
        tkhd = _need(data, s, e, b"tkhd", "trak")
        version, _ = _full_box(data, *tkhd, 20, "tkhd")
        track_id = struct.unpack_from(">I", data, tkhd[0] + (20 if version == 1 else 12))[0]
        mdia = _need(data, s, e, b"mdia", "trak")
        mdhd = _need(data, *mdia, b"mdhd", "mdia")
        version, _ = _full_box(data, *mdhd, 20, "mdhd")
        timescale = struct.unpack_from(">I", data, mdhd[0] + (20 if version == 1 else 12))[0]
        if timescale == 0:
            raise Fmp4Error(f"track {track_id} has a timescale of 0")
        hdlr = _need(data, *mdia, b"hdlr", "mdia")
        _full_box(data, *hdlr, 8, "hdlr")
        handler = data[hdlr[0] + 8 : hdlr[0] + 12]
        kind_name = {b"vide": "video", b"soun": "audio"}.get(
            handler, handler.decode("latin-1").strip()
        )
        minf = _need(data, *mdia, b"minf", "mdia")
        stbl = _need(data, *minf, b"stbl", "minf")
        codec, width, height = _codec(data, *_need(data, *stbl, b"stsd", "stbl"))
        duration, flags = defaults.get(track_id, (0, 0))
        tracks.append(Track(track_id, kind_name, timescale, codec, width, height, duration, flags))
    if not tracks:
        raise Fmp4Error("init segment has no track")
    return InitSegment(bytes(data), tuple(tracks))


# -- fragments ------------------------------------------------------------------------------


def _parse_fragment(
    data: bytes, moof: tuple[int, int], tracks: dict[int, Track]
) -> tuple[int, int, int, int, int, bool]:
    """(sequence, track id, decode time, duration, samples, sync) of the moof at ``moof``."""
    mfhd = _need(data, *moof, b"mfhd", "moof")
    _full_box(data, *mfhd, 4, "mfhd")
    sequence = struct.unpack_from(">I", data, mfhd[0] + 4)[0]
    trafs = [(s, e) for k, s, e in _children(data, *moof) if k == b"traf"]
    if len(trafs) != 1:
        raise Fmp4Error(f"a CMAF fragment holds one track; this one holds {len(trafs)}")
    traf = trafs[0]
    tfhd = _need(data, *traf, b"tfhd", "traf")
    _, tf_flags = _full_box(data, *tfhd, 4, "tfhd")
    pos = tfhd[0] + 4
    track_id = struct.unpack_from(">I", data, pos)[0]
    pos += 4
    track = tracks.get(track_id)
    if track is None:
        raise Fmp4Error(f"fragment of track {track_id}, which the init segment does not have")
    default_duration, default_flags = track.default_duration, track.default_flags
    optional = [
        (_TFHD_BASE_DATA_OFFSET, 8),
        (_TFHD_SAMPLE_DESCRIPTION, 4),
        (_TFHD_DEFAULT_DURATION, 4),
        (_TFHD_DEFAULT_SIZE, 4),
        (_TFHD_DEFAULT_FLAGS, 4),
    ]
    need = sum(n for bit, n in optional if tf_flags & bit)
    if tfhd[1] - pos < need:
        raise Fmp4Error("tfhd box is too short for its flags")
    for bit, n in optional:
        if not tf_flags & bit:
            continue
        if bit == _TFHD_DEFAULT_DURATION:
            default_duration = struct.unpack_from(">I", data, pos)[0]
        elif bit == _TFHD_DEFAULT_FLAGS:
            default_flags = struct.unpack_from(">I", data, pos)[0]
        pos += n
    tfdt = _need(data, *traf, b"tfdt", "traf")
    version, _ = _full_box(data, *tfdt, 4, "tfdt")
    if version == 1:
        _full_box(data, *tfdt, 8, "tfdt")
        decode_time = struct.unpack_from(">Q", data, tfdt[0] + 4)[0]
    else:
        decode_time = struct.unpack_from(">I", data, tfdt[0] + 4)[0]
    duration = samples = 0
    sync: bool | None = None
    for kind, s, e in _children(data, *traf):
        if kind != b"trun":
            continue
        _, tr_flags = _full_box(data, s, e, 4, "trun")
        count = struct.unpack_from(">I", data, s + 4)[0]
        pos = s + 8
        first_flags: int | None = None
        if tr_flags & _TRUN_DATA_OFFSET:
            pos += 4
        if tr_flags & _TRUN_FIRST_FLAGS:
            if pos + 4 > e:
                raise Fmp4Error("trun box is too short for its flags")
            first_flags = struct.unpack_from(">I", data, pos)[0]
            pos += 4
        fields = [_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS, _TRUN_CTS]
        per_sample = 4 * sum(1 for f in fields if tr_flags & f)
        if pos > e or count * per_sample > e - pos:
            raise Fmp4Error(f"trun says {count} samples but holds fewer")
        if count == 0:
            continue
        if tr_flags & _TRUN_DURATION:
            offset = 0  # duration is the first per-sample field when present
            duration += sum(
                struct.unpack_from(">I", data, pos + i * per_sample + offset)[0]
                for i in range(count)
            )
        else:
            duration += count * default_duration
        if sync is None:
            flags = default_flags
            if first_flags is not None:
                flags = first_flags
            elif tr_flags & _TRUN_FLAGS:
                skip = 4 * sum(1 for f in (_TRUN_DURATION, _TRUN_SIZE) if tr_flags & f)
                flags = struct.unpack_from(">I", data, pos + skip)[0]
            sync = not flags & _NON_SYNC
        samples += count
    return sequence, track_id, decode_time, duration, samples, bool(sync)


# -- the stream reader ----------------------------------------------------------------------


class Fmp4Reader:
    """Splits a growing fMP4 byte stream into its init segment and fragments.

    ``feed(data)`` returns what became complete: the :class:`InitSegment` first (exactly
    once), then :class:`Fragment`\\s. ``end()`` checks the stream stopped between boxes.
    Memory is bounded by the largest box allowed plus one read.
    """

    def __init__(
        self,
        *,
        max_header_box: int = MAX_HEADER_BOX_BYTES,
        max_mdat: int = MAX_MDAT_BYTES,
    ) -> None:
        self.max_header_box = max_header_box
        self.max_mdat = max_mdat
        self.init: InitSegment | None = None
        self._tracks: dict[int, Track] = {}
        self._buf = bytearray()
        self._init_parts: list[bytes] = []
        self._pending: list[bytes] = []  # styp/moof… of the fragment being read
        self._moof: bytes | None = None

    def feed(self, data: bytes) -> list[InitSegment | Fragment]:
        """Add bytes; return the init segment and fragments they completed, in order."""
        self._buf += data
        out: list[InitSegment | Fragment] = []
        pos = 0
        buf = self._buf
        while True:
            found = _header(buf, pos, len(buf))
            if found is None:
                break
            kind, _, size = found
            if self.init is None and not self._init_parts and kind != b"ftyp":
                raise Fmp4Error(f"the stream starts with {kind!r}, not ftyp: it is not fMP4")
            limit = self.max_mdat if kind == b"mdat" else self.max_header_box
            if size > limit:
                raise Fmp4Error(f"box {kind!r} of {size} bytes is larger than {limit}")
            if pos + size > len(buf):
                break
            item = self._box(kind, bytes(buf[pos : pos + size]))
            if item is not None:
                out.append(item)
            pos += size
        del buf[:pos]
        return out

    def end(self) -> None:
        """The stream ended: :class:`Fmp4Error` if it stopped inside a box or a fragment."""
        if self._buf or self._moof is not None:
            raise Fmp4Error("the fMP4 stream ended inside a box or a fragment")
        if self.init is None:
            raise Fmp4Error("the fMP4 stream ended before its init segment")

    def _box(self, kind: bytes, box: bytes) -> InitSegment | Fragment | None:
        if self.init is None:
            return self._init_box(kind, box)
        if kind == b"moof":
            if self._moof is not None:
                raise Fmp4Error("two moof boxes without an mdat between them")
            self._moof = box
        elif kind == b"mdat":
            if self._moof is None:
                raise Fmp4Error("an mdat without the moof that describes it")
            return self._fragment(box)
        elif kind in _FRAGMENT_PREFIX:
            if self._moof is not None:
                raise Fmp4Error(f"{kind!r} between a moof and its mdat")
            self._pending.append(box)
            if sum(map(len, self._pending)) > self.max_header_box:
                raise Fmp4Error("too many boxes before a fragment")
        elif kind == b"mfra":  # the random-access index a file ends with: nothing to read
            if self._moof is not None or self._pending:
                raise Fmp4Error("mfra inside a fragment")
        else:
            raise Fmp4Error(f"unexpected box {kind!r} between fragments")
        return None

    def _init_box(self, kind: bytes, box: bytes) -> InitSegment | None:
        if not self._init_parts and kind != b"ftyp":
            raise Fmp4Error(f"the stream starts with {kind!r}, not ftyp: it is not fMP4")
        if kind not in (b"ftyp", b"moov") and kind not in _INIT_EXTRA:
            raise Fmp4Error(f"unexpected box {kind!r} in the init segment")
        self._init_parts.append(box)
        if sum(map(len, self._init_parts)) > self.max_header_box:
            raise Fmp4Error("init segment too large")
        if kind != b"moov":
            return None
        self.init = parse_init(b"".join(self._init_parts))
        self._init_parts = []
        self._tracks = {t.track_id: t for t in self.init.tracks}
        return self.init

    def _fragment(self, mdat: bytes) -> Fragment:
        assert self._moof is not None
        moof = self._moof
        head = b"".join(self._pending)
        self._pending, self._moof = [], None
        hdr = _header(moof, 0, len(moof))
        assert hdr is not None
        sequence, track_id, decode_time, duration, samples, sync = _parse_fragment(
            moof, (hdr[1], len(moof)), self._tracks
        )
        return Fragment(
            head + moof + mdat, sequence, track_id, decode_time, duration, samples, sync
        )


__all__ = ["Fmp4Reader", "Fragment", "InitSegment", "Track", "parse_init"]
