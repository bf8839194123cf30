"""The live ABR ladder: lower rungs encoded from the passthrough rung, one ffmpeg per stream.

:class:`LadderEncoder` takes the top rung's CMAF video as the packager reads it (the init
segment, then every fragment from the first keyframe on), feeds it to one ffmpeg
(:func:`mediaplane.media.live_ladder_argv`: decoded once, scaled, x264 ``zerolatency`` with a
keyframe exactly at each source keyframe) and hands each rung's fragments to
:class:`._output.LiveOutput` under that rung's name, their ``tfdt`` moved onto the source's
media timeline (ffmpeg's mp4 muxer starts every output at 0). With the same keyframes, the
same timestamps and the same segmenting rule, segment ``msn`` of every rung covers the same
media time.

Isolation: the encoder never slows the passthrough rung or the audio. Fragments wait for it
in a bounded queue (:data:`QUEUE_FRAMES`); when it falls further behind than that, or
fails, or runs out of its memory limit, the ladder alone ends (its playlists get ENDLIST,
the master lists the passthrough rung only, the stream's health says why) and the stream
goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import signal
import struct
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from mediaplane.media import (
    ChildOptions,
    Fmp4Error,
    Fmp4Reader,
    Fragment,
    InitSegment,
    LiveRung,
    MediaError,
    live_ladder_argv,
)

if TYPE_CHECKING:
    from ._health import HealthMeter
    from ._output import LiveOutput, PublishFeed

log = structlog.get_logger("mediaplane.live")

#: Frames of the source that may wait for the encoder (8 s at 30 fps: a publisher's burst
#: after a network stall, or the first second the packager holds, must fit).
QUEUE_FRAMES = 240
#: RLIMIT_AS of the ladder's ffmpeg: a decoder and up to two x264 encoders at 1080p and less.
MEMORY_BYTES = 2 * 1024**3
#: Seconds the encoder may take to finish once its input ended.
CLOSE_TIMEOUT = 15.0
READ_BYTES = 256 * 1024
STDERR_LINES = 20
_END = b""


def shift_decode_time(frag: Fragment, delta: int) -> Fragment:
    """``frag`` with its ``tfdt`` (and ``decode_time``) moved by ``delta`` media units; a
    version-0 (32-bit) tfdt that would overflow is left as it is (never so below 13 hours
    at 90 kHz)."""
    if delta == 0:
        return frag
    data = bytearray(frag.data)
    at = data.find(b"tfdt")
    new = frag.decode_time + delta
    if at < 4 or new < 0:
        return frag
    version = data[at + 4]
    if version == 1:
        struct.pack_into(">Q", data, at + 8, new)
    elif new < 2**32:
        struct.pack_into(">I", data, at + 8, new)
    else:
        return frag
    return dataclasses.replace(frag, data=bytes(data), decode_time=new)


class LadderEncoder:
    """One stream's ladder encoder (see the module's docstring).

    :param rungs: the rungs to encode (:func:`mediaplane.media.plan_live_ladder`); the
        caller has added each to ``output`` as a rendition.
    :param on_failed: called once, from a thread, with the message when the ladder ends
        early (the stream goes on without it).
    """

    def __init__(
        self,
        output: LiveOutput | PublishFeed,
        meter: HealthMeter,
        rungs: list[LiveRung],
        *,
        ffmpeg: str = "ffmpeg",
        preset: str = "veryfast",
        memory_bytes: int = MEMORY_BYTES,
        on_failed: Callable[[str], None] | None = None,
    ) -> None:
        self.output = output
        self.meter = meter
        self.rungs = rungs
        self.ffmpeg = ffmpeg
        self.preset = preset
        self.memory_bytes = memory_bytes
        self.on_failed = on_failed
        self.failed: str | None = None
        self._queue: queue.Queue[bytes] = queue.Queue(QUEUE_FRAMES)
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._stderr: deque[bytes] = deque(maxlen=STDERR_LINES)
        self._offset: int | None = None  # source media time of the first frame fed
        self._ending = False
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._proc is not None and self.failed is None

    def start(self, init: InitSegment) -> None:
        """Start ffmpeg for the source track of ``init`` (from the packager's pipe thread)."""
        track = init.tracks[0]
        pipes = [os.pipe() for _ in self.rungs]
        argv = live_ladder_argv(
            self.ffmpeg,
            [(rung, w) for rung, (_, w) in zip(self.rungs, pipes, strict=True)],
            timescale=track.timescale,
            preset=self.preset,
        )
        log.debug("process.start", name="ffmpeg-live-ladder", argv=argv)
        try:
            kwargs: dict[str, Any] = ChildOptions(self.memory_bytes).popen_kwargs()
            self._proc = subprocess.Popen(  # noqa: S603 - our own argv
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=[w for _, w in pipes],
                **kwargs,
            )
        except OSError as exc:
            for r, _ in pipes:
                os.close(r)
            self._fail(f"the ladder encoder could not start: {exc.strerror}")
            return
        finally:
            for _, w in pipes:
                os.close(w)
        self._spawn(self._write, "live-ladder-in")
        self._spawn(self._read_stderr, "live-ladder-err")
        for rung, (r, _) in zip(self.rungs, pipes, strict=True):
            self._spawn(self._pump, f"live-{rung.name}", rung.name, r)
        self._queue.put_nowait(init.data)

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def feed(self, frag: Fragment) -> None:
        """A fragment of the source's video (from its first keyframe on); never blocks."""
        if not self.running or self._ending:
            return
        if self._offset is None:
            if not frag.sync:
                return  # the rungs start where the passthrough one does: at a keyframe
            self._offset = frag.decode_time
        try:
            self._queue.put_nowait(frag.data)
        except queue.Full:
            self.meter.dropped(self._queue.qsize())
            self._fail(
                f"the ladder encoder fell more than {QUEUE_FRAMES} frames behind real time"
                " (the host is too busy): only the source rendition plays"
            )

    def end(self) -> None:
        """The source ended: ffmpeg finishes what it was given (a dead one is not waited
        for)."""
        self._ending = True
        waited = 0.0
        while self._proc is not None and waited < CLOSE_TIMEOUT:
            try:
                self._queue.put(_END, timeout=0.5)
                return
            except queue.Full:
                waited += 0.5
                if self.failed is not None or self._proc.poll() is not None:
                    return

    def join(self) -> None:
        """Wait for ffmpeg and the threads (after :meth:`end`); kill ffmpeg past the
        timeout."""
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(CLOSE_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                proc.wait()
        for t in self._threads:
            t.join(CLOSE_TIMEOUT)
        if proc is not None and proc.returncode not in (0, None) and self.failed is None:
            tail = b"".join(self._stderr).decode("utf-8", "replace").strip()[-300:]
            self._fail(f"the ladder encoder exited with status {proc.returncode}: {tail}")

    def kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def _fail(self, message: str) -> None:
        with self._lock:
            if self.failed is not None:
                return
            self.failed = message
        log.warning("live.ladder_failed", error=message)
        self.kill()
        self.meter.warning = message
        self.meter.ladder = []
        for rung in self.rungs:
            with contextlib.suppress(Exception):
                self.output.end_rendition(rung.name)
        if self.on_failed is not None:
            self.on_failed(message)

    # -- threads ----------------------------------------------------------------------------

    def _write(self) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        try:
            while True:
                data = self._queue.get()
                if not data or self.failed is not None:  # _END, or given up
                    break
                proc.stdin.write(data)
                proc.stdin.flush()
        except OSError:
            pass  # ffmpeg died: its exit status says why (join)
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stderr is not None
        for line in proc.stderr:
            self._stderr.append(line)

    def _pump(self, name: str, fd: int) -> None:
        reader = Fmp4Reader()
        scale = 1
        try:
            with os.fdopen(fd, "rb", buffering=0) as pipe:
                while data := pipe.read(READ_BYTES):
                    if self.failed is not None:
                        continue  # drain to EOF
                    for item in reader.feed(data):
                        if isinstance(item, Fragment):
                            frag = shift_decode_time(item, self._offset or 0)
                            self.meter.fragment(
                                name,
                                frag.decode_time / scale,
                                frag.duration / scale,
                                sync=frag.sync,
                                source=False,
                            )
                            self.output.add_fragment(name, frag)
                        else:
                            scale = item.tracks[0].timescale or 1
                            self.output.add_init(name, item)
            if reader.init is not None and self.failed is None and not self._ending:
                reader.end()
        except (Fmp4Error, MediaError, OSError) as exc:
            self._fail(f"the ladder's {name} rendition failed: {exc}")


__all__ = ["LadderEncoder", "shift_decode_time"]
