"""Generated clips (ffmpeg lavfi test patterns and tones): the one generator behind the
`mediaplane up --demo` clip, the test media and the benchmark sources.

A :class:`Clip` names its lavfi inputs (one picture, any number of audio streams, each
``seconds`` long) and the output options; :meth:`Clip.argv` is its ffmpeg command line and
:meth:`Clip.make` writes it once (an existing file is taken as it is: the tests and benches
keep their clips in caches outside git)::

    Clip(seconds=2, video=picture("640x360", 30), audio=(sine(sample_rate=44100),)).make(path)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mediaplane.media import ManagedProcess

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["AAC", "H264", "Clip", "picture", "sine", "tone"]

#: Fast H.264 in the pixel format every player decodes.
H264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
AAC = ("-c:a", "aac")
#: RLIMIT_AS for the ffmpeg that makes a clip (a 1080p x264 encode maps about 1.5 GiB).
MEMORY_BYTES = 6 << 30


def picture(size: str, rate: int | str, pattern: str = "testsrc2") -> str:
    """A lavfi picture source: ``pattern`` (``testsrc2``, ``testsrc``, ``color=c=red``, …)
    at ``size`` (``"WxH"``) and ``rate`` frames per second (``30`` or ``"30000/1001"``)."""
    sep = ":" if "=" in pattern else "="
    return f"{pattern}{sep}size={size}:rate={rate}"


def sine(frequency: int = 440, sample_rate: int = 48000) -> str:
    """A lavfi sine tone at full scale (mono)."""
    return f"sine=frequency={frequency}:sample_rate={sample_rate}"


def tone(peak: float, frequency: int, *, sample_rate: int = 48000) -> str:
    """A mono sine of amplitude ``peak`` (0–1) by expression: its RMS level is
    20·log10(peak / √2) dBFS."""
    return f"aevalsrc={peak}*sin(2*PI*{frequency}*t):c=mono:s={sample_rate}"


@dataclass(frozen=True)
class Clip:
    """A clip made from lavfi sources.

    :param seconds: length of every input.
    :param video: a lavfi picture graph (see :func:`picture`); None: an audio-only file.
    :param audio: lavfi audio graphs, one input (stream) each; empty: a silent file.
    :param codecs: output options for the encoders; None: :data:`H264`, plus :data:`AAC`
        when there is audio.
    :param extra: further output options (maps, metadata, ``-shortest``, ``-movflags``…).
    """

    seconds: float = 2
    video: str | None = "testsrc2=size=640x360:rate=30"
    audio: tuple[str, ...] = ("sine=frequency=440:sample_rate=44100",)
    codecs: tuple[str, ...] | None = None
    extra: tuple[str, ...] = ()

    def inputs(self, *, realtime: bool = False) -> list[str]:
        """The lavfi inputs; ``realtime``: each read at its own pace (``-re``), as a live
        publisher sends it."""
        graphs = [g for g in (self.video, *self.audio) if g is not None]
        out: list[str] = []
        for graph in graphs:
            out += [*(["-re"] if realtime else []), "-f", "lavfi", "-t", str(self.seconds)]
            out += ["-i", graph]
        return out

    def argv(self, out: Path | str, *, ffmpeg: str = "ffmpeg", realtime: bool = False) -> list[str]:
        """The ffmpeg command line that writes this clip to ``out`` (a file, or a URL with
        ``-f`` in :attr:`extra`: ``realtime`` then publishes it live, e.g. to RTMP)."""
        codecs = self.codecs
        if codecs is None:
            codecs = (*(H264 if self.video else ()), *(AAC if self.audio else ()))
        head = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
        return [*head, *self.inputs(realtime=realtime), *codecs, *self.extra, str(out)]

    def make(
        self,
        path: Path,
        *,
        ffmpeg: str = "ffmpeg",
        timeout: float = 600,
        memory_bytes: int = MEMORY_BYTES,
    ) -> Path:
        """Write the clip to ``path`` unless a file is there already; return ``path``. It is
        written beside ``path`` first (a name of this process's: two test workers may make
        the same clip at once) and renamed, so a run cut off leaves no half clip.

        :param timeout: seconds ffmpeg may take.
        """
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")
        ManagedProcess(
            self.argv(tmp, ffmpeg=ffmpeg),
            timeout=timeout,
            memory_bytes=memory_bytes,
            name=f"clip {path.name}",
        ).run()
        tmp.replace(path)
        return path
