"""The slate: what a live session shows while its publisher is away.

When a publisher drops within its reconnect window, the session's playlists would otherwise
stop growing and players stall (or, with a server that drops the playlist, get a 404). A
:class:`Slate` keeps them fed: one ffmpeg per gap draws a still picture ("The stream will be
back shortly") and silent audio, at real time, at the stream's resolution and frame rate
with a keyframe every segment target, as FLV into a :class:`LivePackager` that feeds the
session's output as a publish of its own (so a discontinuity and a new init segment come
before and after it, and segment numbering goes on). It stops when the publisher comes
back or the window ends; it lasts at most the window plus :data:`SLATE_MARGIN_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from mediaplane.clips import Clip
from mediaplane.media import ChildOptions, MediaError

if TYPE_CHECKING:
    from ._packager import LivePackager

log = structlog.get_logger("mediaplane.live")

SLATE_TEXT = "The stream will be back shortly"
#: The slate's ffmpeg ends on its own this long after the reconnect window would have.
SLATE_MARGIN_SECONDS = 30
#: RLIMIT_AS of the slate's ffmpeg (an encoder of a still picture).
SLATE_MEMORY_BYTES = 1024**3
READ_BYTES = 64 * 1024
#: Fonts the text is drawn with, the first one present (without any: a plain picture).
FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)
MAX_WIDTH, MAX_HEIGHT = 3840, 2160


def _font() -> str | None:
    return next((f for f in FONTS if Path(f).is_file()), None)


def slate_argv(
    ffmpeg: str,
    *,
    seconds: float,
    gop_seconds: float,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    video: bool = True,
    audio: bool = True,
    sample_rate: int = 48000,
) -> list[str]:
    """ffmpeg drawing the slate for ``seconds`` at real time, H.264 (a keyframe every
    ``gop_seconds``) and silent AAC at ``sample_rate``, as FLV on stdout. A missing or
    impossible size is 1280x720, a missing frame rate 30."""
    w, h = width or 1280, height or 720
    if not (16 <= w <= MAX_WIDTH and 16 <= h <= MAX_HEIGHT):
        w, h = 1280, 720
    w, h = w - w % 2, h - h % 2
    rate = round(fps, 3) if fps and 1 <= fps <= 120 else 30.0
    graph = None
    codecs: list[str] = []
    if video:
        graph = f"color=c=0x1c1f26:s={w}x{h}:r={rate:g}"
        font = _font()
        if font is not None:
            size = max(8, h // 16)
            graph += (
                f",drawtext=fontfile={font}:text='{SLATE_TEXT}':fontcolor=white"
                f":fontsize={size}:x=(w-text_w)/2:y=(h-text_h)/2"
            )
        gop = max(1, round(rate * gop_seconds))
        codecs += [
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage",
            "-pix_fmt", "yuv420p", "-g", str(gop), "-keyint_min", str(gop),
            "-sc_threshold", "0", "-bf", "0", "-b:v", "300k",
        ]  # fmt: skip
    if audio:
        codecs += ["-c:a", "aac", "-b:a", "64k"]
    clip = Clip(
        seconds=round(seconds, 3),
        video=graph,
        audio=(f"anullsrc=r={sample_rate}:cl=stereo",) if audio else (),
        codecs=tuple(codecs),
        extra=("-f", "flv"),
    )
    return clip.argv("pipe:1", ffmpeg=ffmpeg, realtime=True)


class Slate:
    """One gap's slate: its ffmpeg's FLV fed into ``packager`` until :meth:`stop`."""

    def __init__(self, argv: list[str], packager: LivePackager) -> None:
        self.argv = argv
        self.packager = packager
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        log.debug("process.start", name="ffmpeg-slate", argv=self.argv)
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            **ChildOptions(SLATE_MEMORY_BYTES, nice=5).popen_kwargs(),  # type: ignore[arg-type]
        )
        self._task = asyncio.get_running_loop().create_task(self._feed())

    async def _feed(self) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        try:
            while data := await proc.stdout.read(READ_BYTES):
                await self.packager.write(data)
        except MediaError as exc:
            log.warning("live.slate_failed", error=str(exc))
        finally:
            self._kill()
            with contextlib.suppress(Exception):
                await proc.wait()
            try:
                await self.packager.close()  # its publish ends (the session's playlists go on)
            except MediaError as exc:
                log.warning("live.slate_failed", error=str(exc))

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    async def stop(self) -> None:
        """The slate ends: its ffmpeg is killed, what it drew is completed and published."""
        self._kill()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


__all__ = ["SLATE_TEXT", "Slate", "slate_argv"]
