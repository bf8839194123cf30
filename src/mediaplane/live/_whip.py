"""WHIP ingest: the media of one WebRTC publisher, decoded by aiortc, re-encoded into MPEG-TS
(H.264 with a keyframe every half segment, AAC) and written into the live session's sink,
so the stream goes on like an SRT publisher's (recording, LL-HLS, DASH, WHEP).

aiortc hands over decoded frames (it decodes VP8, VP9, H.264 and Opus itself). They are
muxed, uncompressed and with their timestamps, as NUT (PyAV, in this process: a copy per
frame) into one ffmpeg per publisher, which encodes (``libx264``, ``aac``) and writes
MPEG-TS on its stdout; that goes to the sink. The ffmpeg runs under an address-space limit
and in its own process group, killed on every path out.

Timestamps: each track's RTP clock, anchored at the wall clock when its first frame came
(the tracks' RTP clocks start at random values and are not related without RTCP), so the
tracks line up to within the jitter of their first frames. Video frames are scaled to the
first frame's size: a browser lowers its resolution under load, an encoder's input cannot
change size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import structlog

from mediaplane.media import ChildOptions

if TYPE_CHECKING:
    from ._rtmp import PublishSink

__all__ = ["WhipPublisher", "whip_encode_argv"]

log = structlog.get_logger("mediaplane.live")

#: RLIMIT_AS of a WHIP publisher's encoder.
ENCODER_MEMORY_BYTES = 2 * 1024**3
#: Largest picture taken from a publisher (pixels): 1080p.
MAX_PIXELS = 1920 * 1088
#: Bytes read from the encoder's MPEG-TS output at a time.
READ_BYTES = 64 * 1024
#: Seconds a frame may wait for the encoder to take it; the encoder to finish at the end.
WRITE_TIMEOUT = 10.0
CLOSE_TIMEOUT = 10.0
VIDEO_TIME_BASE = Fraction(1, 90000)
AUDIO_RATE = 48000


def whip_encode_argv(ffmpeg: str, *, gop_seconds: float, preset: str, audio: bool) -> list[str]:
    """ffmpeg: NUT (raw video and PCM) on stdin → H.264 + AAC in MPEG-TS on stdout, a
    keyframe every ``gop_seconds``, no B-frames (WHEP viewers get these frames as they are),
    frames passed at their own times (a browser's frame rate varies)."""
    argv = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "nut",
        "-i",
        "pipe:0",
        "-map",
        "0:v?",
        "-map",
        "0:a?",
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-bf",
        "0",
        "-b:v",
        "2500k",
        "-maxrate",
        "3000k",
        "-bufsize",
        "3000k",
        "-force_key_frames",
        f"expr:gte(t,n_forced*{gop_seconds:g})",
        "-fps_mode",
        "passthrough",
    ]
    if audio:
        argv += ["-c:a", "aac", "-b:a", "128k", "-ar", str(AUDIO_RATE), "-ac", "2"]
    return [*argv, "-f", "mpegts", "-flush_packets", "1", "-muxdelay", "0", "pipe:1"]


class _Pipe:
    """The file PyAV's muxer writes into: bytes collected until the next drain."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


class WhipPublisher:
    """One WHIP publisher's media path: ``add_track`` its received tracks (before ``run``),
    then ``run`` until the tracks end or ``stop`` is called; the sink is closed at the end.

    :param sink: where the MPEG-TS goes (``LiveIngest.open_sink``'s, protocol ``whip``).
    :param gop_seconds: keyframe interval of the re-encoded video.
    """

    def __init__(
        self,
        sink: PublishSink,
        *,
        ffmpeg: str,
        preset: str,
        gop_seconds: float,
        memory_bytes: int = ENCODER_MEMORY_BYTES,
    ) -> None:
        self.sink = sink
        self.ffmpeg = ffmpeg
        self.preset = preset
        self.gop_seconds = gop_seconds
        self.memory_bytes = memory_bytes
        self.tracks: dict[str, Any] = {}
        self.error: str | None = None
        self._stopping = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: deque[bytes] = deque(maxlen=20)
        self._frames: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue(maxsize=120)
        self._t0 = time.monotonic()
        self._anchors: dict[str, tuple[int, int]] = {}  # kind -> (first pts, its stream pts)
        self._last: dict[str, int] = {}
        self._audio_samples = 0
        self.frames_in = 0

    def add_track(self, track: Any) -> None:
        """A track of the publisher (``video`` or ``audio``; one of each is kept)."""
        if track.kind in ("video", "audio") and track.kind not in self.tracks:
            self.tracks[track.kind] = track

    def stop(self) -> None:
        """End the publish (DELETE, the peer went away): the encoder finishes, then the
        sink closes."""
        self._stopping.set()

    async def run(self) -> None:
        """Read the tracks, encode, write the sink; returns when the publish is over."""
        readers = [asyncio.create_task(self._read(kind, t)) for kind, t in self.tracks.items()]
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await self._encode()
        except Exception as exc:  # the publish ends; the reason goes to the log
            self.error = str(exc)
            log.warning("live.whip_failed", error=str(exc))
        finally:
            for t in [*readers, stop]:
                t.cancel()
            for t in [*readers, stop]:
                with contextlib.suppress(BaseException):
                    await t
            await self._reap(kill=self.error is not None)
            try:
                await self.sink.close()
            except Exception:
                log.exception("live.whip_sink_close_failed")

    async def _read(self, kind: str, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                if self._frames.full():  # the encoder is behind: drop, never pile up
                    continue
                self._frames.put_nowait((kind, frame))
        except MediaStreamError:
            pass
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                self._frames.put_nowait(None)

    async def _next(self) -> tuple[str, Any] | None:
        get = asyncio.ensure_future(self._frames.get())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if get in done:
            return get.result()
        get.cancel()
        return None

    async def _encode(self) -> None:
        import av

        pipe = _Pipe()
        container: Any = None
        streams: dict[str, Any] = {}
        size: tuple[int, int] | None = None
        pump: asyncio.Task[None] | None = None
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
        ended = 0
        try:
            while True:
                item = await self._next()
                if item is None:
                    ended += 1
                    if self._stopping.is_set() or ended >= len(self.tracks):
                        break
                    continue
                kind, frame = item
                if container is None:
                    if "video" in self.tracks and kind != "video":
                        continue  # the picture size comes from the first video frame
                    if kind == "video":
                        size = (frame.width, frame.height)
                        if size[0] * size[1] > MAX_PIXELS or min(size) < 16:
                            raise ValueError(f"the picture size {size[0]}x{size[1]} is refused")
                    container = av.open(
                        pipe, "w", format="nut", options={"max_interleave_delta": "300000"}
                    )
                    if "video" in self.tracks:
                        assert size is not None
                        vs = container.add_stream("rawvideo", rate=30)
                        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
                        vs.codec_context.time_base = VIDEO_TIME_BASE
                        vs.time_base = VIDEO_TIME_BASE
                        streams["video"] = vs
                    if "audio" in self.tracks:
                        aus = container.add_stream("pcm_s16le", rate=AUDIO_RATE)
                        aus.layout = "stereo"
                        aus.format = "s16"
                        aus.time_base = Fraction(1, AUDIO_RATE)
                        streams["audio"] = aus
                    pump = await self._start("audio" in streams)
                packets: list[Any] = []
                if kind == "video":
                    assert size is not None
                    if (frame.width, frame.height) != size or frame.format.name != "yuv420p":
                        pts = frame.pts
                        frame = frame.reformat(width=size[0], height=size[1], format="yuv420p")
                        frame.pts = pts
                    frame.pts = self._stamp("video", frame.pts, 90000)
                    frame.time_base = VIDEO_TIME_BASE
                    packets = streams["video"].encode(frame)
                else:
                    for out in resampler.resample(frame):
                        if "anchor" not in self._last:  # wall clock of the first samples
                            self._last["anchor"] = int((time.monotonic() - self._t0) * AUDIO_RATE)
                        out.pts = self._last["anchor"] + self._audio_samples
                        out.time_base = Fraction(1, AUDIO_RATE)
                        self._audio_samples += out.samples
                        packets += streams["audio"].encode(out)
                for p in packets:
                    container.mux(p)
                self.frames_in += 1
                await self._send(pipe.take())
                if pump is not None and pump.done():
                    break  # the encoder or the sink gave up
            if container is not None:
                for s in streams.values():
                    for p in s.encode(None):
                        container.mux(p)
                container.close()
                container = None
                await self._send(pipe.take())
                self._close_stdin()
                if pump is not None:
                    await asyncio.wait_for(pump, CLOSE_TIMEOUT)
        finally:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
            if pump is not None and not pump.done():
                pump.cancel()
                with contextlib.suppress(BaseException):
                    await pump
            if pump is not None and pump.done() and not pump.cancelled():
                exc = pump.exception()
                if exc is not None:
                    raise exc

    def _stamp(self, kind: str, pts: int | None, rate: int) -> int:
        """A frame's time on the stream's clock: its track's RTP clock, anchored at the wall
        clock of the track's first frame, never going back."""
        now = int((time.monotonic() - self._t0) * rate)
        if pts is None:
            out = now
        else:
            first, at = self._anchors.setdefault(kind, (pts, now))
            out = at + ((pts - first) & 0xFFFFFFFF if pts < first else pts - first)
        last = self._last.get(kind)
        if last is not None and out <= last:
            out = last + 1
        self._last[kind] = out
        return out

    async def _start(self, audio: bool) -> asyncio.Task[None]:
        argv = whip_encode_argv(
            self.ffmpeg, gop_seconds=self.gop_seconds, preset=self.preset, audio=audio
        )
        log.debug("process.start", name="ffmpeg-whip", argv=argv)
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            **ChildOptions(self.memory_bytes).popen_kwargs(),  # type: ignore[arg-type]
        )
        asyncio.get_running_loop().create_task(self._read_stderr(self._proc))
        return asyncio.create_task(self._pump(self._proc))

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            self._stderr.append(line)

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        """The encoder's MPEG-TS into the sink, to its end."""
        assert proc.stdout is not None
        while data := await proc.stdout.read(READ_BYTES):
            await self.sink.write(data)
        code = await proc.wait()
        if code != 0:
            tail = b"".join(self._stderr).decode("utf-8", "replace").strip()[-500:]
            raise RuntimeError(f"the WHIP encoder exited with status {code}: {tail}")

    async def _send(self, data: bytes) -> None:
        proc = self._proc
        if not data or proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(data)
            await asyncio.wait_for(proc.stdin.drain(), WRITE_TIMEOUT)
        except (BrokenPipeError, ConnectionResetError):
            raise RuntimeError("the WHIP encoder stopped taking frames") from None

    def _close_stdin(self) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    async def _reap(self, *, kill: bool) -> None:
        proc = self._proc
        if proc is None:
            return
        self._close_stdin()
        if kill:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), CLOSE_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers in its group
