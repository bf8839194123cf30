"""Live to VOD: a real LivePackager run with ``keep_segments`` (a short FLV through real
ffmpeg), then the ``live.finish_recording`` job on a real database and store: the
recording asset turns ready with the live segments stored as they were written, a
presentation read from them, and its events; a retry changes nothing; a session with no
media errors the asset."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mediaplane.catalog import Asset, AssetStatus, FinishRecording, create_recording_asset
from mediaplane.clips import Clip, picture, sine
from mediaplane.events import OutboxRow
from mediaplane.jobs import JobState, create_job, run_job
from mediaplane.live import LivePackager, session_dir
from mediaplane.media import MasterPlaylist, MediaPlaylist, Presentation, render_hls_master
from mediaplane.runtime import Runtime
from tests.support import MEDIA_CACHE, ffprobe_json, make_clip, migrated_runtime, probe_decodes

SECONDS = 6
WRITE = 4096


def _flv() -> Path:
    """6 s of 320x180 H.264 (a keyframe every 0.5 s) and AAC, in FLV."""
    return make_clip(
        "live-6s.flv",
        seconds=SECONDS,
        size="320x180",
        rate=30,
        extra=["-g", "15", "-keyint_min", "15", "-sc_threshold", "0", "-f", "flv"],
    )


def _record(out: Path, *, keep: bool) -> None:
    """Package the clip into ``out`` with 1 s segments and no DVR window to speak of."""
    data = _flv().read_bytes()

    async def go() -> None:
        packager = LivePackager(
            out,
            latency_mode="low",
            part_target=0.5,
            segment_target=1.0,
            dvr_window_seconds=0,
            keep_segments=keep,
        )
        for i in range(0, len(data), WRITE):
            await packager.write(data[i : i + WRITE])
        await packager.close()

    asyncio.run(go())


def _segments(rung: Path) -> list[int]:
    return sorted(int(p.stem) for p in rung.glob("*.m4s") if p.stem.isdigit())


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with migrated_runtime("sqlite", tmp_path_factory.mktemp("rec")) as runtime:
        yield runtime


def _asset(rt: Runtime) -> str:
    with rt.db.session() as s:
        return create_recording_asset(s, rt.settings, title="Live", channel_id=None).id


def _run(rt: Runtime, asset_id: str, stream: str, session: str) -> JobState | None:
    payload = FinishRecording(asset_id=asset_id, live_stream_id=stream, session_id=session)
    with rt.db.session() as s:
        job_id = create_job(s, payload, subject_id=asset_id).id
    return run_job(rt, job_id, "test")


def _events(rt: Runtime, asset_id: str) -> list[str]:
    with rt.db.session() as s:
        rows = s.scalars(
            select(OutboxRow.type).where(OutboxRow.object_id == asset_id).order_by(OutboxRow.id)
        )
        return list(rows)


def test_keep_segments_keeps_what_leaves_the_window(tmp_path: Path) -> None:
    _record(tmp_path, keep=True)
    for rung in ("video", "audio"):
        kept = _segments(tmp_path / rung)
        listed = MediaPlaylist.parse((tmp_path / rung / "index.m3u8").read_text())
        # The playlist keeps only its window (without keep_segments, the files of the
        # segments before it are deleted: test_live_packager), the disk every segment.
        assert listed.media_sequence > 1
        assert kept == list(range(listed.media_sequence + len(listed.segments)))
        assert not list((tmp_path / rung).glob("0.*.m4s"))  # old parts still go


def test_recording_becomes_vod(rt: Runtime) -> None:
    asset_id = _asset(rt)
    out = session_dir(rt.settings, "stream1", "session1")
    _record(out, keep=True)
    live = {r: _segments(out / r) for r in ("video", "audio")}  # the dir goes once stored
    firsts = {r: (out / r / f"{live[r][0]}.m4s").read_bytes() for r in live}
    assert _run(rt, asset_id, "stream1", "session1") is JobState.SUCCEEDED
    assert not out.exists()  # stored as the asset's own objects: the live segments go

    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        assert asset is not None
        assert asset.status is AssetStatus.READY, asset.errors
        assert (asset.width, asset.height, asset.frame_rate) == (320, 180, "30")
        assert asset.duration == pytest.approx(SECONDS, abs=0.5)
        assert [t["type"] for t in asset.tracks] == ["video", "audio"]
        assert asset.presentation is not None
        p = Presentation.from_dict(asset.presentation)
    assert p.complete and p.settled
    video, audio = p.video[0], p.audio[0]
    assert video.codecs.startswith("avc1.") and audio.codecs.startswith("mp4a.40.")
    assert (audio.sample_rate, audio.channels) == (44100, 1)
    assert len(video.segments) == len(live["video"])  # every one, none re-encoded
    assert [s.number for s in video.segments] == list(range(1, len(video.segments) + 1))
    assert video.duration == pytest.approx(SECONDS, abs=0.5)
    assert video.peak_bandwidth > 0
    master = MasterPlaylist.parse(render_hls_master(p))
    assert master.variants[0].resolution == (320, 180)

    # The stored segments are the live packager's bytes, and they decode as one stream.
    prefix = f"assets/{asset_id}/cmaf/"
    for r in (video, audio):
        assert rt.store.get_bytes(f"{prefix}{r.segment_path(1)}") == firsts[r.id]
    data = rt.store.get_bytes(f"{prefix}video/init.mp4") + b"".join(
        rt.store.get_bytes(f"{prefix}{video.segment_path(s.number)}") for s in video.segments
    )
    info: dict[str, Any] = probe_decodes(data)
    frames = int(info["streams"][0]["nb_read_frames"])
    assert frames == pytest.approx(SECONDS * 30, abs=15)

    events = _events(rt, asset_id)
    assert events == [
        "video.asset.created",
        "video.asset.live_stream_completed",
        "video.asset.ready",
        "video.asset.track.ready",
        "video.asset.track.ready",
    ]

    # A retry (the job again) changes nothing and announces nothing.
    assert _run(rt, asset_id, "stream1", "session1") is JobState.SUCCEEDED
    assert _events(rt, asset_id) == events


def test_recording_without_media_errors(rt: Runtime) -> None:
    asset_id = _asset(rt)
    out = session_dir(rt.settings, "stream2", "never-published")
    (out / "video").mkdir(parents=True)
    (out / "video" / "init.mp4").write_bytes(b"a publisher that left before a segment")
    assert _run(rt, asset_id, "stream2", "never-published") is JobState.FAILED
    assert (out / "video" / "init.mp4").is_file()  # a failed recording keeps its files
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        assert asset is not None and asset.status is AssetStatus.ERRORED
        assert asset.errors is not None
        assert "recorded no media" in asset.errors["messages"][0]
    assert _events(rt, asset_id)[-1] == "video.asset.errored"


def _record_publishes(out: Path, clips: list[Path]) -> None:
    """Each clip one publish of one session (a reconnect each time), as the ingest joins
    them: the first publish makes the session's output, the later ones continue it."""
    from mediaplane.live import LiveOutput
    from mediaplane.live._output import PublishFeed

    session: list[LiveOutput] = []

    def output_for(names: list[str], started_at: Any) -> PublishFeed:
        if not session:
            session.append(
                LiveOutput(
                    out,
                    renditions=names,
                    low_latency=True,
                    part_target=0.5,
                    segment_target=1.0,
                    dvr_window_seconds=0,
                    keep_segments=True,
                    started_at=started_at,
                )  # fmt: skip
            )
            return PublishFeed(session[0], session[0].current_publish)
        return session[0].begin_publish(names, started_at=started_at)

    async def go() -> None:
        for clip in clips:
            data = clip.read_bytes()
            packager = LivePackager(
                out, latency_mode="low", part_target=0.5, segment_target=1.0,
                dvr_window_seconds=0, output_for=output_for,
            )  # fmt: skip
            for i in range(0, len(data), WRITE):
                await packager.write(data[i : i + WRITE])
            await packager.close()
        session[0].finish()

    asyncio.run(go())


def test_a_recording_covers_every_publish_of_its_session(rt: Runtime, tmp_path: Path) -> None:
    """Two publishes of the same encoder settings (a reconnect), then one at another
    picture size, then one with audio at another sample rate: the recording has the first
    three one after the other on one timeline under one init segment (``avc3``: the third
    one's SPS/PPS in band, nothing re-encoded); the fourth, whose AAC configuration no
    init segment of the first can describe, is left out."""
    gop = ["-g", "15", "-keyint_min", "15", "-sc_threshold", "0", "-f", "flv"]
    other = make_clip("live-6s-480.flv", seconds=SECONDS, size="480x270", rate=30, extra=gop)
    audio_48k = Clip(
        seconds=SECONDS, video=picture("320x180", 30), audio=(sine(440, 48000),),
        extra=tuple(gop),
    ).make(MEDIA_CACHE / "live-6s-48k.flv", timeout=120)  # fmt: skip
    asset_id = _asset(rt)
    out = session_dir(rt.settings, "stream3", "session3")
    _record_publishes(out, [_flv(), _flv(), other, audio_48k])
    assert (out / "video" / "init-3.mp4").is_file()
    assert _run(rt, asset_id, "stream3", "session3") is JobState.SUCCEEDED
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        assert asset is not None and asset.status is AssetStatus.READY, asset
        assert asset.duration == pytest.approx(3 * SECONDS, abs=0.6)
        assert asset.presentation is not None
        p = Presentation.from_dict(asset.presentation)
    for r in (p.video[0], p.audio[0]):
        starts = [s.start for s in r.segments]
        ends = [s.start + s.duration for s in r.segments]
        assert all(b >= a for a, b in zip(ends, starts[1:], strict=False))  # no overlap
        gap = max(b - a for a, b in zip(ends, starts[1:], strict=False)) / r.timescale
        assert gap < 0.1  # each publish follows the one before
    video = p.video[0]
    assert video.codecs.startswith("avc3.") and (video.width, video.height) == (480, 270)
    prefix = f"assets/{asset_id}/cmaf/"
    init = rt.store.get_bytes(f"{prefix}video/init.mp4")
    assert b"avc3" in init and b"avc1" not in init
    segments = [
        rt.store.get_bytes(f"{prefix}{video.segment_path(s.number)}") for s in video.segments
    ]
    whole = tmp_path / "recording.mp4"  # a file: the pipe's duration is its first fragment's
    whole.write_bytes(init + b"".join(segments))
    decode = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "info", "-i", str(whole)]
        + ["-vf", "showinfo", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert decode.returncode == 0, decode.stderr[-2000:]
    assert "error" not in decode.stderr.lower()
    sizes = re.findall(r" s:(\d+x\d+) ", decode.stderr)
    assert len(sizes) == pytest.approx(3 * SECONDS * 30, abs=20)  # every frame decodes
    assert sizes[0] == "320x180" and sizes[-1] == "480x270"
    assert float(ffprobe_json(whole)["format"]["duration"]) == pytest.approx(3 * SECONDS, abs=0.6)
    # Seeking into the third publish: its segment decodes alone, from its own SPS/PPS.
    third = next(i for i, s in enumerate(video.segments) if s.start / video.timescale > 13)
    info = probe_decodes(init + segments[third])
    assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (480, 270)
