"""Generated audio sources for the audio tests (integration and browser): made once with
ffmpeg lavfi and cached beside the other test media."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from tests.support import MEDIA_CACHE

if TYPE_CHECKING:
    from pathlib import Path

SECONDS = 2
H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
#: Amplitudes of the tones (sine peaks); an RMS level is 20·log10(peak / √2) dBFS.
CENTRE = 0.5
#: The languages clip: one tone level per stream, so each rendition can be told apart.
TRACKS = [  # (language, title, disposition, peak)
    ("eng", "English", "default", 0.5),
    ("fre", "Français", "0", 0.25),
    ("eng", "Director's commentary", "comment", 0.125),
    ("eng", None, "visual_impaired", 0.0625),
]


def _source(name: str, inputs: list[str], output: list[str]) -> Path:
    """A generated source, made once and cached beside the other test media."""
    MEDIA_CACHE.mkdir(parents=True, exist_ok=True)
    path = MEDIA_CACHE / name
    if not path.exists():
        tmp = path.with_name(path.stem + ".tmp" + path.suffix)
        base = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
        subprocess.run([*base, *inputs, *output, str(tmp)], check=True, timeout=120)
        tmp.replace(path)
    return path


def _video(seconds: int) -> list[str]:
    return ["-f", "lavfi", "-t", str(seconds), "-i", "testsrc2=size=320x180:rate=30"]


def _tone(peak: float, freq: int, seconds: int) -> list[str]:
    expr = f"{peak}*sin(2*PI*{freq}*t)"
    return ["-f", "lavfi", "-t", str(seconds), "-i", f"aevalsrc={expr}:c=mono:s=48000"]


def surround_clip() -> Path:
    """5.1 (side): a 2 kHz tone in the centre channel only, a 60 Hz tone in the LFE only."""
    exprs = f"0|0|{CENTRE}*sin(2*PI*2000*t)|0.5*sin(2*PI*60*t)|0|0"
    audio = ["-f", "lavfi", "-t", str(SECONDS), "-i", f"aevalsrc={exprs}:c=5.1(side):s=48000"]
    return _source("audio-5.1-2s.mp4", [*_video(SECONDS), *audio], [*H264, "-c:a", "aac"])


def languages_clip(seconds: int = SECONDS) -> Path:
    """Matroska with four audio streams: English (default), French, an English director's
    commentary and an English audio description (the broadcast/streaming release shape)."""
    inputs, output = _video(seconds), [*H264, "-map", "0:v"]
    for i, (lang, title, disposition, peak) in enumerate(TRACKS):
        inputs += _tone(peak, 440, seconds)
        output += ["-map", f"{i + 1}:a", f"-metadata:s:a:{i}", f"language={lang}"]
        if title:
            output += [f"-metadata:s:a:{i}", f"title={title}"]
        output += [f"-disposition:a:{i}", disposition]
    return _source(f"audio-languages-{seconds}s.mkv", inputs, [*output, "-c:a", "aac"])


def audio_only_clip(suffix: str, seconds: int = SECONDS) -> Path:
    """A podcast or music file: one mono 330 Hz tone (peak 0.5), no picture."""
    codec = {"m4a": ["-c:a", "aac"], "mp3": ["-c:a", "libmp3lame"], "wav": ["-c:a", "pcm_s16le"]}
    return _source(f"audio-only-{seconds}s.{suffix}", _tone(0.5, 330, seconds), codec[suffix])
