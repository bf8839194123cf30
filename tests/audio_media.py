"""Generated audio sources for the audio tests (integration and browser): made once with
ffmpeg lavfi and cached beside the other test media."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mediaplane.clips import AAC, H264, Clip, picture, tone
from tests.support import MEDIA_CACHE

if TYPE_CHECKING:
    from pathlib import Path

SECONDS = 2
VIDEO = picture("320x180", 30)
#: Amplitudes of the tones (sine peaks); an RMS level is 20·log10(peak / √2) dBFS.
CENTRE = 0.5
#: The languages clip: one tone level per stream, so each rendition can be told apart.
TRACKS = [  # (language, title, disposition, peak)
    ("eng", "English", "default", 0.5),
    ("fre", "Français", "0", 0.25),
    ("eng", "Director's commentary", "comment", 0.125),
    ("eng", None, "visual_impaired", 0.0625),
]


def surround_clip() -> Path:
    """5.1 (side): a 2 kHz tone in the centre channel only, a 60 Hz tone in the LFE only."""
    exprs = f"0|0|{CENTRE}*sin(2*PI*2000*t)|0.5*sin(2*PI*60*t)|0|0"
    clip = Clip(seconds=SECONDS, video=VIDEO, audio=(f"aevalsrc={exprs}:c=5.1(side):s=48000",))
    return clip.make(MEDIA_CACHE / "audio-5.1-2s.mp4", timeout=120)


def languages_clip(seconds: int = SECONDS) -> Path:
    """Matroska with four audio streams: English (default), French, an English director's
    commentary and an English audio description (the broadcast/streaming release shape)."""
    output = ["-map", "0:v"]
    for i, (lang, title, disposition, _) in enumerate(TRACKS):
        output += ["-map", f"{i + 1}:a", f"-metadata:s:a:{i}", f"language={lang}"]
        if title:
            output += [f"-metadata:s:a:{i}", f"title={title}"]
        output += [f"-disposition:a:{i}", disposition]
    clip = Clip(
        seconds=seconds,
        video=VIDEO,
        audio=tuple(tone(peak, 440) for *_, peak in TRACKS),
        codecs=H264,
        extra=(*output, *AAC),
    )
    return clip.make(MEDIA_CACHE / f"audio-languages-{seconds}s.mkv", timeout=120)


def audio_only_clip(suffix: str, seconds: int = SECONDS) -> Path:
    """A podcast or music file: one mono 330 Hz tone (peak 0.5), no picture."""
    codec = {"m4a": ("-c:a", "aac"), "mp3": ("-c:a", "libmp3lame"), "wav": ("-c:a", "pcm_s16le")}
    clip = Clip(seconds=seconds, video=None, audio=(tone(0.5, 330),), codecs=codec[suffix])
    return clip.make(MEDIA_CACHE / f"audio-only-{seconds}s.{suffix}", timeout=120)
