"""Live streaming: publishers in (RTMP ingest), CMAF segments and LL-HLS out, live stream
resources, on one host.

:class:`RtmpServer` takes RTMP publishers on one port, checks each stream key through an
``authorize`` callback before any media, and writes each publisher's FLV to the
:class:`PublishSink` that ``open_sink`` returns. :class:`LivePackager` turns one publish
(FLV bytes, as the RTMP server hands them on) into CMAF segments, LL-HLS parts and playlists
in a directory the origin serves.
"""

from __future__ import annotations

from ._output import LiveOutput
from ._packager import FlvScanner, LivePackager
from ._rtmp import Authorize, OpenSink, PublishSink, RtmpServer

__all__ = [
    "Authorize",
    "FlvScanner",
    "LiveOutput",
    "LivePackager",
    "OpenSink",
    "PublishSink",
    "RtmpServer",
]
