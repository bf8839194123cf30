"""WHEP audio: a live stream's AAC transcoded to Opus once per stream (WebRTC has no AAC),
shared by all its WebRTC viewers.

The packager's pipe thread hands the audio rendition's init segment and fragments to
:meth:`OpusFanout.feed`. While the stream has WebRTC viewers, one transcoder thread reads
them (PyAV: the fMP4 demuxer on a queue, AAC decoder, resampler to 48 kHz stereo in 20 ms
frames, ``libopus``) and hands each Opus packet to every viewer's track on the event loop;
with no viewers it stops, and the fragments are not even queued. A viewer behind (queue
full) loses packets, never memory; a new packager (the publisher reconnected) restarts
the transcoder on its init segment. Packet times count samples, so they go on across
restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from fractions import Fraction
from typing import Any

import structlog

from mediaplane.media import Fragment, InitSegment

from ._whep import end_queue, packet_track

__all__ = ["AudioViewer", "OpusFanout"]

log = structlog.get_logger("mediaplane.live")

OPUS_RATE = 48000
OPUS_FRAME = 960  # 20 ms
OPUS_BITRATE = 96_000
#: Fragments waiting for the transcoder (a few seconds of audio) before some are dropped.
PENDING_FRAGMENTS = 64
#: Packets a viewer's queue holds (2 s) before new ones are dropped.
VIEWER_QUEUE = 100


class _QueueFile:
    """A read-only, non-seekable file over a queue of byte strings (None ends it)."""

    def __init__(self, chunks: queue.Queue[bytes | None]) -> None:
        self.chunks = chunks
        self.buf = b""
        self.ended = False

    def read(self, n: int = -1) -> bytes:
        while not self.buf and not self.ended:
            chunk = self.chunks.get()
            if chunk is None:
                self.ended = True
            else:
                self.buf = chunk
        n = len(self.buf) if n < 0 else n
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class AudioViewer:
    """The Opus track one WHEP viewer's sender reads."""

    kind = "audio"

    def __init__(self, fanout: OpusFanout) -> None:
        self.fanout = fanout
        self.queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue(VIEWER_QUEUE)
        self.track = packet_track("audio", OPUS_RATE, self)

    def offer(self, data: bytes, pts: int) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((data, pts))

    def end(self) -> None:
        end_queue(self.queue)


class OpusFanout:
    """One live stream's audio, transcoded to Opus once, to its WHEP viewers."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.viewers: set[AudioViewer] = set()
        self.rendition: str | None = None
        self.aac = False
        self._init: bytes | None = None
        self._lock = threading.Lock()
        self._pending: queue.Queue[bytes | None] | None = None  # the running transcoder's
        self._samples = 0  # Opus samples sent: the next packet's time
        self.packets = 0

    # -- the packager's pipe thread -------------------------------------------------------

    def feed(self, name: str, item: InitSegment | Fragment) -> None:
        if isinstance(item, InitSegment):
            track = item.tracks[0] if item.tracks else None
            if track is None or track.kind != "audio":
                return
            if self.rendition is not None and name != self.rendition:
                return
            self.rendition = name
            self.aac = track.codec.startswith("mp4a")
            with self._lock:
                self._init = item.data
                if self._pending is not None:  # a new packager: a new transcoder
                    self._stop_locked()
                    self._start_locked()
            return
        if name != self.rendition:
            return
        pending = self._pending
        if pending is not None:
            with contextlib.suppress(queue.Full):
                pending.put_nowait(item.data)

    # -- viewers (the event loop) ---------------------------------------------------------

    def subscribe(self) -> AudioViewer | None:
        """A viewer's Opus track, or None when the stream has no AAC audio."""
        if not self.aac:
            return None
        viewer = AudioViewer(self)
        self.viewers.add(viewer)
        with self._lock:
            if self._pending is None:
                self._start_locked()
        return viewer

    def unsubscribe(self, viewer: AudioViewer) -> None:
        self.viewers.discard(viewer)
        if not self.viewers:
            with self._lock:
                self._stop_locked()

    def end(self) -> None:
        for viewer in list(self.viewers):
            viewer.end()
        self.viewers.clear()
        with self._lock:
            self._stop_locked()

    def _deliver(self, data: bytes, pts: int) -> None:
        self.packets += 1
        for viewer in list(self.viewers):
            viewer.offer(data, pts)

    # -- the transcoder -------------------------------------------------------------------

    def _start_locked(self) -> None:
        if self._init is None:
            return
        pending: queue.Queue[bytes | None] = queue.Queue(PENDING_FRAGMENTS)
        pending.put_nowait(self._init)
        self._pending = pending
        t = threading.Thread(target=self._transcode, args=(pending,), name="whep-opus", daemon=True)
        t.start()

    def _stop_locked(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            while True:  # make room for the end
                try:
                    pending.put_nowait(None)
                    break
                except queue.Full:
                    with contextlib.suppress(queue.Empty):
                        pending.get_nowait()

    def _transcode(self, pending: queue.Queue[bytes | None]) -> None:
        """Thread: fMP4 AAC from ``pending`` → Opus packets to the viewers, to its end."""
        import av

        try:
            with av.open(_QueueFile(pending), "r", format="mp4") as container:
                stream = container.streams.audio[0]
                encoder: Any = av.CodecContext.create("libopus", "w")
                encoder.sample_rate = OPUS_RATE
                encoder.layout = "stereo"
                encoder.format = "s16"
                encoder.bit_rate = OPUS_BITRATE
                encoder.time_base = Fraction(1, OPUS_RATE)
                resampler = av.AudioResampler(
                    format="s16", layout="stereo", rate=OPUS_RATE, frame_size=OPUS_FRAME
                )
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        for chunk in resampler.resample(frame):
                            chunk.pts = None
                            for out in encoder.encode(chunk):
                                self._send(bytes(out))
        except Exception as exc:  # the stream's audio cannot be read: video goes on
            if self._pending is pending:
                log.warning("live.whep_audio_failed", error=str(exc))

    def _send(self, data: bytes) -> None:
        pts, self._samples = self._samples, self._samples + OPUS_FRAME
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self.loop.call_soon_threadsafe(self._deliver, data, pts)
