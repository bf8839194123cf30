"""H.264 parameter sets in band: how a recording joins publishes of different encoder
settings (another picture size, profile or level) without re-encoding them.

A VOD rendition has one init segment, and an ``avc1`` sample entry says every sample is
decoded with the SPS/PPS in its ``avcC``. An ``avc3`` sample entry allows parameter sets in
the samples themselves (ISO/IEC 14496-15 5.3.2), which then take precedence: so the
recording's init becomes ``avc3`` (:func:`to_avc3`) and every keyframe gets its own
publish's SPS and PPS in front (:func:`insert_parameter_sets`, one fragment at a time),
length-prefixed as the samples' NAL units are: Chromium puts the init segment's parameter
sets before a keyframe that has none, so the first keyframe of a segment is not enough.
The samples are not decoded or re-encoded; only the first sample's size (``trun``, or
``tfhd``'s default for a one-sample fragment) and the ``mdat`` size change. Checked in
Chromium: such a recording (320x180, 480x270, 320x180 publishes) plays through in MSE,
switching picture size.
"""

from __future__ import annotations

import struct

from mediaplane.media import Fmp4Error

__all__ = ["insert_parameter_sets", "parameter_sets", "to_avc3"]


def _box(data: bytes | bytearray, kind: bytes, start: int = 0, end: int | None = None) -> int:
    """Offset of the first ``kind`` box among the boxes in ``data[start:end]`` (walking box
    headers, not searching bytes); -1 when there is none."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, name = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        if size < 8 or pos + size > end:
            raise Fmp4Error(f"a {name!r} box runs past its parent")
        if name == kind:
            return pos
        pos += size
    return -1


def parameter_sets(init: bytes) -> tuple[int, bytes]:
    """(NAL length size, the SPS and PPS NAL units length-prefixed) from an H.264 init
    segment's ``avcC``. :class:`Fmp4Error` without one."""
    at = init.find(b"avcC")
    if at < 4:
        raise Fmp4Error("the init segment has no avcC")
    body = at + 4
    length_size = (init[body + 4] & 0x03) + 1
    out = bytearray()
    pos = body + 5
    for count_mask in (0x1F, 0xFF):  # SPS count in 5 bits, then the PPS count
        count = init[pos] & count_mask
        pos += 1
        for _ in range(count):
            (size,) = struct.unpack_from(">H", init, pos)
            nal = init[pos + 2 : pos + 2 + size]
            if len(nal) != size:
                raise Fmp4Error("the avcC is cut short")
            out += size.to_bytes(length_size, "big") + nal
            pos += 2 + size
    return length_size, bytes(out)


def to_avc3(init: bytes) -> bytes:
    """``init`` with its ``avc1`` sample entry renamed ``avc3`` (same size, same avcC)."""
    at = init.find(b"avc1")
    if at < 4:
        raise Fmp4Error("the init segment has no avc1 sample entry")
    return init[:at] + b"avc3" + init[at + 4 :]


def insert_parameter_sets(segment: bytes, nals: bytes) -> bytes:
    """``segment`` (a fragment: [styp,] moof, mdat, …) with ``nals`` in front of the first
    sample of its first fragment."""
    if not nals:
        return segment
    moof = _box(segment, b"moof")
    if moof < 0:
        raise Fmp4Error("the segment has no moof")
    (moof_size,) = struct.unpack_from(">I", segment, moof)
    mdat = moof + moof_size
    if segment[mdat + 4 : mdat + 8] != b"mdat":
        raise Fmp4Error("the first moof is not followed by its mdat")
    out = bytearray(segment)
    traf = _box(out, b"traf", moof + 8, mdat)
    if traf < 0:
        raise Fmp4Error("the moof has no traf")
    (traf_size,) = struct.unpack_from(">I", out, traf)
    tfhd = _box(out, b"tfhd", traf + 8, traf + traf_size)
    trun = _box(out, b"trun", traf + 8, traf + traf_size)
    if tfhd < 0 or trun < 0:
        raise Fmp4Error("the traf has no tfhd or trun")
    n = len(nals)
    tfhd_flags = int.from_bytes(out[tfhd + 9 : tfhd + 12], "big")
    trun_flags = int.from_bytes(out[trun + 9 : trun + 12], "big")
    if tfhd_flags & 0x01:
        raise Fmp4Error("an explicit base data offset would move")
    if trun_flags & 0x200:  # per-sample sizes: the first one
        field = trun + 16 + (4 if trun_flags & 0x01 else 0) + (4 if trun_flags & 0x04 else 0)
        field += 4 if trun_flags & 0x100 else 0
    elif tfhd_flags & 0x10:  # the default sample size: only for a one-sample fragment
        if struct.unpack_from(">I", out, trun + 12)[0] != 1:
            raise Fmp4Error("a default sample size is shared by several samples")
        field = tfhd + 16 + (4 if tfhd_flags & 0x02 else 0) + (4 if tfhd_flags & 0x08 else 0)
    else:
        raise Fmp4Error("the fragment names no sample size")
    struct.pack_into(">I", out, field, struct.unpack_from(">I", out, field)[0] + n)
    (mdat_size,) = struct.unpack_from(">I", out, mdat)
    if mdat_size == 1:
        header = 16
        struct.pack_into(">Q", out, mdat + 8, struct.unpack_from(">Q", out, mdat + 8)[0] + n)
    else:
        header = 8
        struct.pack_into(">I", out, mdat, mdat_size + n)
    return bytes(out[: mdat + header]) + nals + bytes(out[mdat + header :])
