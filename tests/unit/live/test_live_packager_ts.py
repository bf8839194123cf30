"""LivePackager on MPEG-TS (what the SRT server hands it): a real ffmpeg-made TS fed in
SRT-sized writes (1316 bytes, seven packets), the LL-HLS output read back and decoded; HEVC
with MP2 audio, and H.264 with a 10 s GOP, are transcoded (H.264 with 1 s GOPs, AAC); bytes
that are not MPEG-TS are refused with a message for the publisher."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from mediaplane.clips import AAC, H264, Clip, picture, sine
from mediaplane.live import LivePackager
from mediaplane.media import AAC_LC, InvalidMedia, MasterPlaylist, MediaPlaylist
from tests.support import MEDIA_CACHE

SECONDS = 4
PART = 0.5
SEGMENT = 2.0
WRITE = 1316  # one SRT payload


def ts_clip(name: str, codecs: tuple[str, ...], *, seconds: float = SECONDS) -> Path:
    return Clip(
        seconds=seconds,
        video=picture("320x180", 30),
        audio=(sine(440, 44100),),
        codecs=codecs,
        extra=("-f", "mpegts"),
    ).make(MEDIA_CACHE / name, timeout=120)


def packager(out: Path) -> LivePackager:
    return LivePackager(
        out, latency_mode="low", part_target=PART, segment_target=SEGMENT,
        dvr_window_seconds=60, input_format="mpegts",
    )  # fmt: skip


async def feed(p: LivePackager, data: bytes) -> None:
    for i in range(0, len(data), WRITE):
        await p.write(data[i : i + WRITE])


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = ts_clip(
        "live-4s.ts", (*H264, "-g", "15", "-keyint_min", "15", "-sc_threshold", "0", *AAC)
    ).read_bytes()
    d = tmp_path_factory.mktemp("live-ts")

    async def go() -> None:
        p = packager(d)
        await feed(p, data)
        await asyncio.wait_for(p.close(), 60)
        assert p.renditions == ("video", "audio")

    asyncio.run(go())
    return d


def test_playlists_have_parts_and_end(out: Path) -> None:
    master = MasterPlaylist.parse((out / "master.m3u8").read_bytes())
    (variant,) = master.variants
    assert variant.codecs is not None
    assert variant.codecs.startswith("avc1.") and variant.codecs.endswith(AAC_LC)
    assert variant.resolution == (320, 180)
    for rung in ("video", "audio"):
        pl = MediaPlaylist.parse((out / rung / "index.m3u8").read_bytes())
        assert pl.endlist
        assert pl.part_target == PART
        parts = [p for s in pl.segments for p in s.parts]
        assert len(parts) >= 6
        assert all(p.duration <= PART + 0.02 for p in parts)
        assert abs(sum(s.duration or 0 for s in pl.segments) - SECONDS) <= 0.5


def test_segments_decode_and_audio_is_raw_aac(out: Path, tmp_path: Path) -> None:
    for rung in ("video", "audio"):
        pl = MediaPlaylist.parse((out / rung / "index.m3u8").read_bytes())
        whole = tmp_path / f"{rung}.mp4"
        with whole.open("wb") as f:
            f.write((out / rung / "init.mp4").read_bytes())
            for seg in pl.segments:
                assert seg.uri is not None
                f.write((out / rung / seg.uri).read_bytes())
        decode = subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", str(whole)]
            + ["-f", "null", "-"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert decode.returncode == 0
        assert decode.stderr.strip() == ""
    # ADTS became MP4 AAC: the init segment carries the AudioSpecificConfig (esds), and the
    # samples have no ADTS headers left (0xFFF sync) to confuse a player's decoder.
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,profile,sample_rate"]
        + ["-of", "csv=p=0", str(tmp_path / "audio.mp4")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "aac,LC,44100"
    assert b"esds" in (out / "audio" / "init.mp4").read_bytes()
    packets = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a", "-show_packets", "-show_data"]
        + ["-read_intervals", "%+#3", "-of", "json", str(tmp_path / "audio.mp4")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert '"data": "\\n00000000: fff' not in packets.stdout


async def test_hevc_and_mp2_are_transcoded(tmp_path: Path) -> None:
    data = ts_clip(
        "live-hevc-mp2.ts",
        ("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error")
        + ("-c:a", "mp2"),
        seconds=3,
    )
    p = packager(tmp_path)
    await feed(p, data.read_bytes())
    await asyncio.wait_for(p.close(), 60)
    health = p.health()
    assert health["mode"] == "transcode"
    assert health["source_codecs"] == {"video": "HEVC", "audio": "MPEG-1 audio"}
    assert "HEVC, not H.264" in health["mode_reason"]
    assert "MPEG-1 audio, not AAC" in health["mode_reason"]
    master = MasterPlaylist.parse((tmp_path / "master.m3u8").read_bytes())
    (variant,) = master.variants
    assert variant.codecs is not None and variant.codecs.startswith("avc1.")
    assert variant.codecs.endswith(AAC_LC) and variant.resolution == (320, 180)
    video = MediaPlaylist.parse((tmp_path / "video" / "index.m3u8").read_bytes())
    assert video.endlist and [round(s.duration or 0, 1) for s in video.segments][:1] == [2.0]


async def test_h264_with_a_10s_gop_is_transcoded_with_short_gops(tmp_path: Path) -> None:
    data = ts_clip(
        "live-gop10.ts",
        (*H264, "-g", "300", "-keyint_min", "300", "-sc_threshold", "0", *AAC),
        seconds=6,
    )
    p = packager(tmp_path)
    await feed(p, data.read_bytes())
    await asyncio.wait_for(p.close(), 60)
    health = p.health()
    assert health["mode"] == "transcode" and "keyframes are more than 4 s" in health["mode_reason"]
    assert health["keyframe_interval"] == pytest.approx(1.0, abs=0.05)
    assert "audio" not in health["mode_reason"]  # the AAC is copied
    video = MediaPlaylist.parse((tmp_path / "video" / "index.m3u8").read_bytes())
    assert [round(s.duration or 0, 1) for s in video.segments] == [2.0, 2.0, 2.0]


async def test_garbage_is_refused_at_once(tmp_path: Path) -> None:
    p = packager(tmp_path)
    noise = bytes(b for b in os.urandom(4 * WRITE) if b != 0x47)
    with pytest.raises(InvalidMedia, match="not MPEG-TS"):
        await p.write(noise[:WRITE])
    with pytest.raises(InvalidMedia):
        await p.write(b"more")
    await p.close()


async def test_lost_sync_after_a_good_start_is_refused(tmp_path: Path) -> None:
    data = ts_clip(
        "live-4s.ts", (*H264, "-g", "15", "-keyint_min", "15", "-sc_threshold", "0", *AAC)
    ).read_bytes()
    p = packager(tmp_path)
    cut = 188 * 700
    with pytest.raises(InvalidMedia, match="lost packet sync"):
        async with asyncio.timeout(30):
            await feed(p, data[:cut] + b"\x00" * 100 + data[cut:])
    await p.close()
    index = tmp_path / "video" / "index.m3u8"
    assert not index.exists() or MediaPlaylist.parse(index.read_bytes()).endlist
