"""A ``sidx`` before a run of fMP4 fragments, for ffmpeg 5.1's decryption.

ffmpeg 5.1 (Debian's) decrypts fragmented MP4 only when a segment index lists its
fragments: without one it pairs a fragment's samples with another fragment's ``senc``
entries ("subsample size exceeds the packet size left"; Shaka Packager's own cenc output
fails the same way once its ``sidx`` boxes are blanked out). The tests that check our
encryption with ``ffmpeg -decryption_key`` put one ``sidx`` (ISO/IEC 14496-12 8.16.3)
indexing every fragment between the init segment and the fragments; the fragments' bytes
are untouched."""

from __future__ import annotations

import struct

from mediaplane.media import Fmp4Reader, Fragment, InitSegment


def indexed(init: bytes, media: bytes) -> bytes:
    """``init`` + a sidx of the fragments in ``media`` + ``media``."""
    reader = Fmp4Reader()
    first = reader.feed(init)
    items = reader.feed(media)
    head = first[0]
    assert isinstance(head, InitSegment)
    frags = [f for f in items if isinstance(f, Fragment)]
    track = head.tracks[0]
    refs = b"".join(
        struct.pack(">III", len(f.data) & 0x7FFFFFFF, f.duration, (0x9 << 28) if f.sync else 0)
        for f in frags
    )
    body = struct.pack(
        ">IIIQQHH", 1 << 24, track.track_id, track.timescale, frags[0].decode_time, 0, 0, len(frags)
    )
    sidx = struct.pack(">I4s", 8 + len(body) + len(refs), b"sidx") + body + refs
    return init + sidx + media
