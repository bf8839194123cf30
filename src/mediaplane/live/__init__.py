"""Live streaming: publishers in (RTMP), CMAF segments and LL-HLS out, on one host.

:class:`LivePackager` turns one publish (FLV bytes, as the RTMP server hands them on) into
CMAF segments, LL-HLS parts and playlists in a directory the origin serves.
"""

from __future__ import annotations

from ._output import LiveOutput
from ._packager import FlvScanner, LivePackager

__all__ = ["FlvScanner", "LiveOutput", "LivePackager"]
