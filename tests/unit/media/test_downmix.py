"""The downmix argv on real ffmpeg: a tone in one channel of a surround source comes out
where BS.775 puts it, at the level it says. This checks that the ``pan`` channel indexes
match the order ffmpeg's decoders hand channels over in (5.1(side) and 7.1 differ)."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest

from mediaplane.clips import Clip
from mediaplane.config import Settings
from mediaplane.media import Toolchain, probe
from mediaplane.media import ffmpeg as ff

TOOLS = Toolchain(ffmpeg="ffmpeg", ffprobe="ffprobe", packager="/unused", ffmpeg_version="5.1")
PEAK = 0.5
SOURCE_DB = 20 * math.log10(PEAK / math.sqrt(2))


def _source(tmp: Path, layout: str, channels: int, lit: int) -> Path:
    """A 1 s WAV in ``layout`` with a 1 kHz tone in channel ``lit`` only."""
    exprs = "|".join(f"{PEAK}*sin(2*PI*1000*t)" if i == lit else "0" for i in range(channels))
    clip = Clip(seconds=1, video=None, audio=(f"aevalsrc={exprs}:c={layout}:s=48000",), codecs=())
    return clip.make(tmp / f"{layout}-{lit}.wav", timeout=60)


def _levels(tmp: Path, source: Path) -> list[float]:
    """Encode the source's audio as the ladder does, then RMS dBFS of each output channel."""
    info = probe(TOOLS, source, Settings())
    src = ff.Source(source, info.demuxer)  # "wav"
    argv = ff.encode_ladder_argv(TOOLS, src, tmp, [], audio=info.audio, progress=False)
    subprocess.run(argv, check=True, timeout=60)
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(tmp / "audio.mp4"), "-af",
         "astats=measure_overall=none:measure_perchannel=RMS_level", "-f", "null", "-"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stderr  # fmt: skip
    return [float(v) if v != "-inf" else -math.inf for v in re.findall(r"RMS level dB: (\S+)", out)]


# (layout, channels, lit channel, gain into L, gain into R): the BS.775 row divided by the
# row's gain sum (1 + 2·0.707 for 5.1, 1 + 3·0.707 for 7.1).
S51, S71 = 1 + 2 * 0.7071, 1 + 3 * 0.7071
CASES = [
    ("5.1(side)", 6, 2, 0.7071 / S51, 0.7071 / S51),  # FC: both, −3 dB
    ("5.1(side)", 6, 4, 0.7071 / S51, 0.0),  # SL: left only
    ("5.1(side)", 6, 3, 0.0, 0.0),  # LFE: dropped
    ("7.1", 8, 7, 0.0, 0.7071 / S71),  # SR
    ("7.1", 8, 4, 0.7071 / S71, 0.0),  # BL
]


@pytest.mark.parametrize(
    ("layout", "channels", "lit", "left", "right"), CASES, ids=[f"{c[0]}-c{c[2]}" for c in CASES]
)
def test_tone_lands_where_bs775_puts_it(
    tmp_path: Path, layout: str, channels: int, lit: int, left: float, right: float
) -> None:
    levels = _levels(tmp_path, _source(tmp_path, layout, channels, lit))
    assert len(levels) == 2
    for got, gain in zip(levels, (left, right), strict=True):
        if gain == 0:
            assert got < -70, levels
        else:
            assert got == pytest.approx(SOURCE_DB + 20 * math.log10(gain), abs=0.5), levels
