"""Just enough ISO-BMFF reading to name codecs (RFC 6381) from an init segment."""

from __future__ import annotations

import struct

from ._errors import MediaError

AAC_LC = "mp4a.40.2"


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in ``data[start:end]``."""
    end = len(data) if end is None else end
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _find(
    data: bytes, path: list[bytes], start: int = 0, end: int | None = None
) -> tuple[int, int] | None:
    for kind, s, e in _boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                return s, e
            # Sample entries carry fixed fields before their child boxes.
            skip = {b"stsd": 8, b"avc1": 78, b"avc3": 78}.get(kind, 0)
            found = _find(data, path[1:], s + skip, e)
            if found:
                return found
    return None


def avc_codec_string(init: bytes) -> str:
    """``avc1.PPCCLL`` from the avcC box of an H.264 init segment."""
    for entry in (b"avc1", b"avc3"):
        box = _find(init, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", entry, b"avcC"])
        if box is not None:
            s, e = box
            if e - s < 4:
                break
            profile, compat, level = init[s + 1], init[s + 2], init[s + 3]
            return f"{entry.decode()}.{profile:02x}{compat:02x}{level:02x}"
    raise MediaError("no H.264 configuration (avcC) in the init segment")
