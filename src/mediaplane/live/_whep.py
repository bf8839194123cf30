"""WHEP playback: a live stream's H.264, as its packager already has it, sent to WebRTC
viewers without re-encoding.

The packager's ffmpeg writes video as fMP4, one frame per fragment (see
:mod:`._packager`); its pipe thread hands every init segment and fragment to
:meth:`H264Fanout.feed` as well. The fan-out turns a fragment into an Annex B access unit
(the ``mdat``'s length-prefixed NAL units, with the init segment's SPS and PPS before each
keyframe) and queues it, on the ingest's event loop, to every viewer's
:class:`ViewerTrack`, which aiortc packetizes as it is (``RTCRtpSender`` sends an
``av.Packet`` without encoding it). A viewer starts at the next keyframe; a viewer that
falls behind (its queue full) drops frames up to the next keyframe, never holding memory
for it. Timestamps stay monotonic across a publisher's reconnect (a new packager restarts
at zero).

Audio is not sent yet (video only): see the report in the module's commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from fractions import Fraction
from typing import Any

import structlog

from mediaplane.media import Fragment, InitSegment

__all__ = ["H264Fanout", "ViewerTrack", "annexb_access_unit", "avcc_parameter_sets"]

log = structlog.get_logger("mediaplane.live")

VIDEO_CLOCK = 90000
#: Access units a viewer's queue holds (about 2 s at 30 fps) before it skips to a keyframe.
VIEWER_QUEUE = 60
START_CODE = b"\x00\x00\x00\x01"


def _boxes(data: bytes, pos: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes in ``data[pos:end]``."""
    end = len(data) if end is None else end
    out = []
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        if size < header or pos + size > end:
            break
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def avcc_parameter_sets(init: bytes) -> tuple[list[bytes], int] | None:
    """The SPS and PPS NAL units of an init segment's ``avcC`` and its NAL length size, or
    None when its first video track is not H.264."""
    at = init.find(b"avcC")
    if at < 4:
        return None
    size = struct.unpack_from(">I", init, at - 4)[0]
    rec = init[at + 4 : at - 4 + size]
    if len(rec) < 7 or rec[0] != 1:
        return None
    length_size = (rec[4] & 3) + 1
    sets: list[bytes] = []
    pos = 5
    for count_mask in (0x1F, 0xFF):
        if pos >= len(rec):
            return None
        count = rec[pos] & count_mask
        pos += 1
        for _ in range(count):
            if pos + 2 > len(rec):
                return None
            n = struct.unpack_from(">H", rec, pos)[0]
            sets.append(bytes(rec[pos + 2 : pos + 2 + n]))
            pos += 2 + n
    return sets, length_size


def annexb_access_unit(
    fragment: bytes, length_size: int, parameter_sets: list[bytes], keyframe: bool
) -> bytes:
    """A one-sample fragment's access unit as Annex B, SPS and PPS first on a keyframe
    (unless it carries its own); access unit delimiters are dropped."""
    mdat = next(((s, e) for k, s, e in _boxes(fragment) if k == b"mdat"), None)
    if mdat is None:
        return b""
    pos, end = mdat
    nals: list[bytes] = []
    while pos + length_size <= end:
        n = int.from_bytes(fragment[pos : pos + length_size], "big")
        pos += length_size
        if n == 0 or pos + n > end:
            break
        nal = fragment[pos : pos + n]
        pos += n
        if nal[0] & 0x1F != 9:
            nals.append(nal)
    if keyframe and not any(nal[0] & 0x1F == 7 for nal in nals):
        nals = [*parameter_sets, *nals]
    return b"".join(START_CODE + nal for nal in nals)


class ViewerTrack:
    """The video track one WHEP viewer's sender reads: pre-encoded access units as
    ``av.Packet`` (90 kHz), from the next keyframe on."""

    kind = "video"

    def __init__(self, fanout: H264Fanout) -> None:
        self.fanout = fanout
        self.queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue(VIEWER_QUEUE)
        self.waiting = True  # for a keyframe
        self.track = packet_track("video", VIDEO_CLOCK, self)

    def offer(self, au: bytes, ts: int, keyframe: bool) -> None:
        if self.waiting and not keyframe:
            return
        if self.queue.full():
            self.waiting = True  # behind: skip to the next keyframe
            return
        self.waiting = False
        self.queue.put_nowait((au, ts))

    def end(self) -> None:
        end_queue(self.queue)


_TRACK_CLASSES: dict[str, Any] = {}


def packet_track(kind: str, clock: int, viewer: Any) -> Any:
    """An aiortc MediaStreamTrack of ``kind`` whose frames are the encoded packets
    (``clock`` Hz timestamps) ``viewer.queue`` holds; None in the queue, or the track
    stopped, ends it, and stopping unsubscribes ``viewer`` from ``viewer.fanout``. One
    subclass per kind (aiortc is imported lazily)."""
    cls = _TRACK_CLASSES.get(kind)
    if cls is None:
        from aiortc.mediastreams import MediaStreamTrack

        class _PacketTrack(MediaStreamTrack):
            def __init__(self, viewer: Any) -> None:
                super().__init__()
                self.viewer = viewer

            async def recv(self) -> Any:
                import av
                from aiortc.mediastreams import MediaStreamError

                item = await self.viewer.queue.get()
                if item is None or self.readyState != "live":
                    self.stop()
                    raise MediaStreamError
                data, ts = item
                packet = av.Packet(data)
                packet.pts = packet.dts = ts
                packet.time_base = Fraction(1, clock)
                return packet

            def stop(self) -> None:
                super().stop()
                self.viewer.fanout.unsubscribe(self.viewer)

        _PacketTrack.kind = kind
        cls = _TRACK_CLASSES[kind] = _PacketTrack
    return cls(viewer)


def end_queue(queue: asyncio.Queue[Any]) -> None:
    """Put the end (None) into a viewer's ``queue``, dropping what it holds if it is full."""
    with contextlib.suppress(asyncio.QueueFull):
        while queue.full():
            queue.get_nowait()
        queue.put_nowait(None)


class H264Fanout:
    """One live stream's video, from its packager's pipe thread to its WHEP viewers.

    :param loop: the event loop the viewers' peer connections run on.
    :param max_viewers: viewers at once (``subscribe`` returns None beyond).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, max_viewers: int) -> None:
        self.loop = loop
        self.max_viewers = max_viewers
        self.viewers: set[ViewerTrack] = set()
        self.rendition: str | None = None  # the rendition followed (the first video one)
        self.h264 = False
        self._sets: list[bytes] = []
        self._length_size = 4
        self._timescale = VIDEO_CLOCK
        self._offset = 0  # added to a packager's 90 kHz times (continuity over reconnects)
        self._rebase = False
        self._last = -1
        self.frames = 0

    # -- the packager's pipe thread -------------------------------------------------------

    def feed(self, name: str, item: InitSegment | Fragment) -> None:
        """An init segment or fragment of rendition ``name`` (called from a thread)."""
        if isinstance(item, InitSegment):
            track = item.tracks[0] if item.tracks else None
            if track is None or track.kind != "video":
                return
            if self.rendition is not None and name != self.rendition:
                return
            self.rendition = name
            found = avcc_parameter_sets(item.data)
            self.h264 = found is not None
            if found is not None:
                self._sets, self._length_size = found
            self._timescale = track.timescale or VIDEO_CLOCK
            self._rebase = True
            return
        if name != self.rendition or not self.h264:
            return
        ts = item.decode_time * VIDEO_CLOCK // self._timescale
        if self._rebase:  # a new packager: go on from where the last one was
            self._offset = self._last + 3000 - ts if self._last >= 0 else -ts
            self._rebase = False
        ts += self._offset
        self._last = ts
        if not self.viewers:
            return  # nobody watches over WebRTC: no work
        au = annexb_access_unit(item.data, self._length_size, self._sets, item.sync)
        if au:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self.loop.call_soon_threadsafe(self._deliver, au, ts, item.sync)

    # -- the event loop -------------------------------------------------------------------

    def _deliver(self, au: bytes, ts: int, keyframe: bool) -> None:
        self.frames += 1
        for viewer in list(self.viewers):
            viewer.offer(au, ts, keyframe)

    def subscribe(self) -> ViewerTrack | None:
        """A new viewer's track (it starts at the next keyframe), or None when full."""
        if len(self.viewers) >= self.max_viewers:
            return None
        viewer = ViewerTrack(self)
        self.viewers.add(viewer)
        return viewer

    def unsubscribe(self, viewer: ViewerTrack) -> None:
        self.viewers.discard(viewer)

    def end(self) -> None:
        """The stream went idle: every viewer's track ends."""
        for viewer in list(self.viewers):
            viewer.end()
        self.viewers.clear()
