"""Live streaming: publishers in (RTMP ingest), live packaging, live stream resources.

This part: :class:`RtmpServer` takes RTMP publishers on one port, checks each stream key
through an ``authorize`` callback before any media, and writes each publisher's FLV to the
:class:`PublishSink` that ``open_sink`` returns.
"""

from __future__ import annotations

from ._rtmp import Authorize, OpenSink, PublishSink, RtmpServer

__all__ = ["Authorize", "OpenSink", "PublishSink", "RtmpServer"]
