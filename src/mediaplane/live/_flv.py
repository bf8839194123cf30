"""FLV file header and tags (Adobe FLV spec v10.1, annex E), written from RTMP media messages.

An RTMP audio (8), video (9) or script data (18) message body is already an FLV tag body; a tag
adds an 11-byte header (type, 24-bit size, 24-bit timestamp plus an 8-bit upper byte, a zero
stream id) and is followed by its PreviousTagSize.
"""

from __future__ import annotations

import struct

AUDIO = 8
VIDEO = 9
SCRIPT = 18

_FLAG_AUDIO = 0x04
_FLAG_VIDEO = 0x01
#: Largest tag body the 24-bit size field holds.
MAX_TAG_BODY = 0xFFFFFF

_PREV = struct.Struct(">I")


def file_header(*, audio: bool = True, video: bool = True) -> bytes:
    """``FLV\\x01``, the audio/video flags, the 9-byte header size and PreviousTagSize0."""
    flags = (_FLAG_AUDIO if audio else 0) | (_FLAG_VIDEO if video else 0)
    return b"FLV\x01" + bytes([flags]) + b"\x00\x00\x00\x09" + b"\x00\x00\x00\x00"


def tag(kind: int, timestamp_ms: int, body: bytes | memoryview) -> bytes:
    """One FLV tag and its PreviousTagSize.

    :param kind: :data:`AUDIO`, :data:`VIDEO` or :data:`SCRIPT`.
    :param timestamp_ms: milliseconds, taken modulo 2**32 (the tag's 24 bits plus the
        extended upper byte).
    """
    size = len(body)
    if size > MAX_TAG_BODY:
        raise ValueError(f"FLV tag body of {size} bytes is over the 24-bit limit")
    ts = timestamp_ms & 0xFFFFFFFF
    header = bytes(
        (
            kind,
            (size >> 16) & 0xFF,
            (size >> 8) & 0xFF,
            size & 0xFF,
            (ts >> 16) & 0xFF,
            (ts >> 8) & 0xFF,
            ts & 0xFF,
            (ts >> 24) & 0xFF,
            0,
            0,
            0,
        )
    )
    return header + bytes(body) + _PREV.pack(11 + size)
