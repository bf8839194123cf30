"""Live streaming: publishers in (RTMP and SRT ingest), live packaging, live stream resources.

This part: :class:`RtmpServer` takes RTMP publishers on one port, checks each stream key
through an ``authorize`` callback before any media, and writes each publisher's FLV to the
:class:`PublishSink` that ``open_sink`` returns. :class:`SrtServer` does the same for SRT
publishers on one UDP port (libsrt through ctypes), routed by stream id
(:func:`parse_stream_id`), and writes each publisher's MPEG-TS to its sink.
"""

from __future__ import annotations

from ._rtmp import Authorize, OpenSink, PublishSink, RtmpServer
from ._srt import SrtServer, StreamId, StreamIdError, parse_stream_id

__all__ = [
    "Authorize",
    "OpenSink",
    "PublishSink",
    "RtmpServer",
    "SrtServer",
    "StreamId",
    "StreamIdError",
    "parse_stream_id",
]
