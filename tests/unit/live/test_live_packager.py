"""LivePackager end to end: a real ffmpeg-made FLV fed in RTMP-sized writes, real ffmpeg
repackaging it, and the LL-HLS output read back with our parser, ffprobe and ffmpeg."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mediaplane.clips import Clip, picture, sine
from mediaplane.live import LivePackager
from mediaplane.media import (
    AAC_LC,
    Fmp4Reader,
    Fragment,
    HostFailure,
    InvalidMedia,
    MasterPlaylist,
    MediaPlaylist,
    avc_codec_string,
)
from tests.support import MEDIA_CACHE, make_clip

SECONDS = 6
PART = 0.5
SEGMENT = 2.0
WRITE = 4096  # bytes per write, like an RTMP server's chunks


def flv_clip() -> Path:
    """6 s of 320x180 H.264 (a keyframe every 0.5 s at 30 fps) and AAC, in FLV."""
    return make_clip(
        "live-6s.flv",
        seconds=SECONDS,
        size="320x180",
        rate=30,
        extra=["-g", "15", "-keyint_min", "15", "-sc_threshold", "0", "-f", "flv"],
    )


async def feed(packager: LivePackager, data: bytes, *, pace: float = 0.0) -> None:
    """Write ``data`` in :data:`WRITE`-byte pieces, spread over ``pace`` seconds."""
    started = time.monotonic()
    for i in range(0, len(data), WRITE):
        await packager.write(data[i : i + WRITE])
        if pace:
            due = started + pace * (i + WRITE) / len(data)
            await asyncio.sleep(max(0.0, due - time.monotonic()))


@dataclass
class Run:
    out: Path
    live_video: str  # video/index.m3u8 while the stream was still live (before close)
    live_audio: str


def _package(out: Path, mode: str, *, segment: float = SEGMENT, dvr: int = 60) -> Run:
    data = flv_clip().read_bytes()

    async def go() -> Run:
        packager = LivePackager(
            out,
            latency_mode=mode,
            part_target=PART,
            segment_target=segment,
            dvr_window_seconds=dvr,
        )
        await feed(packager, data)
        # ffmpeg may still hold the last bytes: the playlists are live until close.
        video = (out / "video" / "index.m3u8").read_text()
        audio = (out / "audio" / "index.m3u8").read_text()
        await asyncio.wait_for(packager.close(), 60)
        return Run(out, video, audio)

    return asyncio.run(go())


@pytest.fixture(scope="module")
def low(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _package(tmp_path_factory.mktemp("live-low"), "low")


def _playlist(path: Path) -> MediaPlaylist:
    return MediaPlaylist.parse(path.read_bytes())


def _fragments(data: bytes) -> list[Fragment]:
    reader = Fmp4Reader()
    items = reader.feed(data)
    reader.end()
    return [i for i in items if isinstance(i, Fragment)]


def test_live_playlist_has_parts_hints_and_server_control(low: Run) -> None:
    for rung, text, other in (
        ("video", low.live_video, "audio"),
        ("audio", low.live_audio, "video"),
    ):
        pl = MediaPlaylist.parse(text)
        assert not pl.endlist
        assert pl.part_target == PART
        control = pl.server_control
        assert control is not None
        assert control.can_block_reload
        assert control.part_hold_back is not None
        assert control.part_hold_back >= 3 * PART
        assert control.can_skip_until is not None
        assert control.can_skip_until >= 6 * pl.target_duration
        assert pl.media_sequence == 0
        assert pl.segments[0].map is not None
        assert pl.segments[0].map.uri == "init.mp4"
        assert all(s.program_date_time is not None for s in pl.segments)
        parts = [p for s in pl.segments for p in s.parts]
        assert len(parts) >= 4
        for p in parts:
            assert p.duration <= PART + 0.02  # half a frame over at most (ms FLV clocks)
            assert (low.out / rung / p.uri).is_file()
        # The hint names the part after the newest one listed.
        (hint,) = pl.preload_hints
        assert hint.type == "PART"
        last = pl.segments[-1]
        msn = pl.media_sequence + len(pl.segments) - 1
        nxt = {f"{msn}.{len(last.parts)}.m4s", f"{msn + 1}.0.m4s"}
        if last.uri is not None:  # the newest segment is complete
            nxt = {f"{msn + 1}.0.m4s"}
        assert hint.uri in nxt
        (report,) = pl.rendition_reports
        assert report.uri == f"../{other}/index.m3u8"
        assert report.last_msn is not None
        assert report.last_part is not None
        # Segments of the target length, each ending at a keyframe (every 0.5 s here).
        for seg in pl.complete_segments:
            assert seg.duration is not None
            assert SEGMENT - 0.05 <= seg.duration <= SEGMENT + PART + 0.05


def test_video_parts_are_whole_gops_here(low: Run) -> None:
    """Keyframes every 0.5 s and 0.5 s parts: every video part is independent and 0.5 s."""
    pl = _playlist(low.out / "video" / "index.m3u8")
    parts = [p for s in pl.segments for p in s.parts]
    assert parts
    assert all(p.independent for p in parts)
    assert all(abs(p.duration - PART) < 0.02 for p in parts)


def test_segments_start_with_a_keyframe_and_are_their_parts(low: Run) -> None:
    for rung in ("video", "audio"):
        pl = _playlist(low.out / rung / "index.m3u8")
        msn = pl.media_sequence or 0
        for i, seg in enumerate(pl.segments):
            assert seg.uri == f"{msn + i}.m4s"
            data = (low.out / rung / seg.uri).read_bytes()
            frags = _fragments((low.out / rung / "init.mp4").read_bytes() + data)
            assert frags[0].sync
            if seg.parts:
                joined = b"".join((low.out / rung / p.uri).read_bytes() for p in seg.parts)
                assert joined == data


def test_init_and_segments_play_in_ffprobe_and_ffmpeg(low: Run, tmp_path: Path) -> None:
    for rung in ("video", "audio"):
        pl = _playlist(low.out / rung / "index.m3u8")
        whole = tmp_path / f"{rung}.mp4"
        with whole.open("wb") as f:
            f.write((low.out / rung / "init.mp4").read_bytes())
            for seg in pl.segments:
                assert seg.uri is not None
                f.write((low.out / rung / seg.uri).read_bytes())
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"]
            + [str(whole)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert abs(float(probe.stdout) - SECONDS) <= 0.5
        total = sum(s.duration or 0 for s in pl.segments)
        assert abs(total - SECONDS) <= 0.5
        decode = subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", str(whole)]
            + ["-f", "null", "-"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert decode.returncode == 0
        assert decode.stderr.strip() == ""


def test_master_names_codecs_from_the_init_segments(low: Run) -> None:
    master = MasterPlaylist.parse((low.out / "master.m3u8").read_bytes())
    (variant,) = master.variants
    avc = avc_codec_string((low.out / "video" / "init.mp4").read_bytes())
    assert avc.startswith("avc1.")
    assert variant.codecs == f"{avc},{AAC_LC}"
    assert variant.uri == "video/index.m3u8"
    assert variant.resolution == (320, 180)
    assert variant.bandwidth > 0
    (audio,) = master.media
    assert audio.type == "AUDIO"
    assert variant.audio == audio.group_id
    assert audio.uri == "audio/index.m3u8"


def test_close_ends_the_playlists(low: Run) -> None:
    for rung in ("video", "audio"):
        pl = _playlist(low.out / rung / "index.m3u8")
        assert pl.endlist
        assert not pl.preload_hints
        assert pl.segments[-1].uri is not None  # the last segment was finished
        state = json.loads((low.out / rung / "state.json").read_text())
        assert state["ended"] is True
        assert state["msn"] == (pl.media_sequence or 0) + len(pl.segments) - 1
        assert state["part"] == len(pl.segments[-1].parts) - 1


def test_dvr_window_deletes_old_segments_and_parts(tmp_path: Path) -> None:
    run = _package(tmp_path, "low", segment=1.0, dvr=4)
    d = run.out / "video"
    pl = _playlist(d / "index.m3u8")
    # Six 1 s segments, a window of four: 0 and 1 left the playlist, 0 is deleted (1 is
    # kept one segment longer for players that hold the older playlist).
    assert pl.media_sequence == 2
    assert [s.uri for s in pl.segments] == ["2.m4s", "3.m4s", "4.m4s", "5.m4s"]
    assert not (d / "0.m4s").exists()
    assert not list(d.glob("0.*.m4s"))
    assert (d / "1.m4s").exists()
    for seg in pl.segments:
        assert seg.uri is not None
        assert (d / seg.uri).is_file()
    # Parts are listed only for the newest three segments.
    assert not pl.segments[0].parts
    assert all(s.parts for s in pl.segments[1:])
    audio = _playlist(run.out / "audio" / "index.m3u8")
    assert (audio.media_sequence or 0) >= 1
    assert sum(s.duration or 0 for s in audio.segments) < SECONDS - 1


def test_standard_latency_has_segments_only(tmp_path: Path) -> None:
    run = _package(tmp_path, "standard", segment=2.0)
    for rung in ("video", "audio"):
        d = run.out / rung
        pl = _playlist(d / "index.m3u8")
        assert pl.endlist
        assert pl.part_target is None
        assert pl.server_control is None
        assert not any(s.parts for s in pl.segments)
        assert not list(d.glob("*.*.m4s"))
        assert abs(sum(s.duration or 0 for s in pl.segments) - SECONDS) <= 0.5
        live = MediaPlaylist.parse(run.live_video if rung == "video" else run.live_audio)
        assert not live.preload_hints
        assert all(s.uri is not None for s in live.segments)
    assert (run.out / "master.m3u8").is_file()


@pytest.mark.parametrize("kind", ["video", "audio"])
async def test_one_track_streams(tmp_path: Path, kind: str) -> None:
    clip = Clip(
        seconds=2,
        video=picture("160x90", 30) if kind == "video" else None,
        audio=(sine(440, 44100),) if kind == "audio" else (),
        extra=("-g", "15", "-f", "flv"),
    ).make(MEDIA_CACHE / f"live-{kind}-only.flv", timeout=120)
    packager = LivePackager(
        tmp_path, latency_mode="low", part_target=PART, segment_target=1.0,
        dvr_window_seconds=60,
    )  # fmt: skip
    await feed(packager, clip.read_bytes())
    await asyncio.wait_for(packager.close(), 60)
    assert packager.renditions == (kind,)
    master = MasterPlaylist.parse((tmp_path / "master.m3u8").read_bytes())
    (variant,) = master.variants
    assert variant.uri == f"{kind}/index.m3u8"
    assert not master.media
    assert variant.codecs is not None
    assert variant.codecs.startswith("avc1." if kind == "video" else AAC_LC)
    assert "," not in variant.codecs
    pl = _playlist(tmp_path / kind / "index.m3u8")
    assert pl.endlist
    assert not pl.rendition_reports
    assert abs(sum(s.duration or 0 for s in pl.segments) - 2) <= 0.1


async def test_garbage_input_fails_at_once(tmp_path: Path) -> None:
    packager = LivePackager(
        tmp_path, latency_mode="low", part_target=PART, segment_target=SEGMENT,
        dvr_window_seconds=60,
    )  # fmt: skip
    with pytest.raises(InvalidMedia, match="not FLV"):
        await packager.write(os.urandom(WRITE))
    with pytest.raises(InvalidMedia):
        await packager.write(b"more")
    await packager.close()  # already reported: close is quiet


async def test_corrupt_tag_after_a_good_start_fails(tmp_path: Path) -> None:
    data = flv_clip().read_bytes()
    packager = LivePackager(
        tmp_path, latency_mode="low", part_target=PART, segment_target=SEGMENT,
        dvr_window_seconds=60,
    )  # fmt: skip
    cut = 200_000
    with pytest.raises(InvalidMedia, match="corrupt"):
        async with asyncio.timeout(30):
            await feed(packager, data[:cut] + os.urandom(WRITE) + data[cut:])
    await packager.close()  # the error was raised by write already
    # What was written before the garbage stays playable, and the playlist is ended.
    pl = _playlist(tmp_path / "video" / "index.m3u8")
    assert pl.endlist
    assert pl.segments


async def test_killed_ffmpeg_is_a_clean_host_failure(tmp_path: Path) -> None:
    data = flv_clip().read_bytes()
    packager = LivePackager(
        tmp_path, latency_mode="low", part_target=PART, segment_target=SEGMENT,
        dvr_window_seconds=60,
    )  # fmt: skip
    await feed(packager, data[: len(data) // 2])
    proc = packager._proc  # noqa: SLF001 - the process this test kills
    assert proc is not None
    os.killpg(proc.pid, signal.SIGKILL)

    async def rest() -> None:
        await feed(packager, data[len(data) // 2 :])
        await packager.close()

    with pytest.raises(HostFailure):
        await asyncio.wait_for(rest(), 30)
    assert _playlist(tmp_path / "video" / "index.m3u8").endlist


async def test_missing_ffmpeg_is_a_host_failure(tmp_path: Path) -> None:
    packager = LivePackager(
        tmp_path, latency_mode="low", part_target=PART, segment_target=SEGMENT,
        dvr_window_seconds=60, ffmpeg=str(tmp_path / "no-ffmpeg"),
    )  # fmt: skip
    with pytest.raises(HostFailure, match="could not start"):
        await feed(packager, flv_clip().read_bytes()[:65536])
    await packager.close()


async def test_video_that_is_not_h264_is_transcoded(tmp_path: Path) -> None:
    clip = make_clip(
        "live-flv1.flv", seconds=1, size="160x90", audio=False, extra=["-c:v", "flv", "-f", "flv"]
    )
    packager = LivePackager(
        tmp_path, latency_mode="low", part_target=PART, segment_target=SEGMENT,
        dvr_window_seconds=60,
    )  # fmt: skip
    await feed(packager, clip.read_bytes())
    await packager.close()
    assert packager.health()["mode"] == "transcode"
    assert packager.health()["source_codecs"]["video"] == "Sorenson H.263"
    init = (tmp_path / "video" / "init.mp4").read_bytes()
    assert b"avc1" in init and b"avcC" in init


async def test_video_that_cannot_be_decoded_is_refused(tmp_path: Path) -> None:
    clip = make_clip(
        "live-flv1-noise.flv", seconds=2, size="160x90", audio=False,
        extra=["-c:v", "flv", "-bsf:v", "noise=amount=1", "-f", "flv"],
    )  # fmt: skip
    packager = LivePackager(
        tmp_path, latency_mode="low", part_target=PART, segment_target=SEGMENT,
        dvr_window_seconds=60,
    )  # fmt: skip

    async def publish() -> None:
        await feed(packager, clip.read_bytes())
        await packager.close()

    with pytest.raises(InvalidMedia, match="could not be decoded .Sorenson H.263 video"):
        await publish()
    await packager.close()
    assert packager.health()["status"] == "failed"


async def test_state_advances_part_by_part_at_real_time(tmp_path: Path) -> None:
    """Fed at the pace of a live encoder, the state file moves on part by part while the
    stream runs (what an origin's blocking reload waits on)."""
    data = flv_clip().read_bytes()
    packager = LivePackager(
        tmp_path, latency_mode="low", part_target=PART, segment_target=SEGMENT,
        dvr_window_seconds=60,
    )  # fmt: skip
    seen: list[tuple[int, int]] = []

    async def watch() -> None:
        state = tmp_path / "video" / "state.json"
        while True:
            if state.exists():
                s = json.loads(state.read_text())
                if not seen or seen[-1] != (s["msn"], s["part"]):
                    seen.append((s["msn"], s["part"]))
            await asyncio.sleep(0.05)

    async with asyncio.TaskGroup() as tg:
        watcher = tg.create_task(watch())
        await feed(packager, data, pace=SECONDS)
        live = list(seen)
        await packager.close()
        watcher.cancel()
    assert live == sorted(live)
    # Twelve 0.5 s parts; ffmpeg holds the newest frame, so most (not all) appear live.
    assert len(live) >= 8
    assert live[0][0] == 0
