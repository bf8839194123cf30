"""A chunked ladder: chunks encoded as separate jobs join into the one-pass frames, and the
master playlist gains the rungs one by one, on both backends."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from mediaplane.config import Settings
from mediaplane.media import (
    Rung,
    Toolchain,
    concat_chunks,
    encode_chunk,
    encode_ladder,
    plan_chunks,
    probe,
)
from tests.support import (
    Backend,
    Server,
    ffprobe_json,
    make_clip,
    probe_decodes,
    start_server,
    worst_psnr,
)


def _frames(path: Path) -> int:
    info = ffprobe_json(path, "-count_frames", "-select_streams", "v:0")
    return int(info["streams"][0]["nb_read_frames"])


def test_chunks_join_into_the_frames_of_a_one_pass_encode(tmp_path: Path) -> None:
    # 25 fps source, 29.97 fps output: the fps filter drops and repeats frames, so a chunk
    # that does not see the frames before it would pick different ones at its start.
    clip = make_clip("chunk-exact-25fps-9s.mp4", seconds=9, size="320x180", rate=25)
    settings = Settings(data_dir=tmp_path, x264_preset="ultrafast")
    tools = Toolchain.discover(settings)
    info = probe(tools, clip, settings)
    fps = Fraction(30000, 1001)
    rung = Rung("v180", 320, 180, 300_000, 330_000, 600_000, fps=fps, gop=60)
    one_pass = encode_ladder(tools, settings, clip, info, [rung], tmp_path / "one")[rung.name]
    chunks = plan_chunks(info.duration, fps, rung.gop, 2.0)
    assert len(chunks) == 4
    parts = [
        encode_chunk(tools, settings, clip, info, rung, c, tmp_path / "c" / f"{c.index:05d}.mp4")
        for c in chunks
    ]
    joined = concat_chunks(tools, settings, parts, tmp_path / "joined.mp4", info.duration)
    assert _frames(joined) == _frames(one_pass) == 270
    # The same source frame at every position. Rate control restarts in every chunk, so
    # equal frames differ by coding noise (worst 34–35 dB measured); a frame off by one
    # scores 20–25 dB here.
    assert worst_psnr(joined, one_pass) > 30
    keyframes = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey"]
        + ["-show_entries", "frame=pts_time", "-of", "csv=p=0", str(joined)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert [round(float(t.strip(",")), 3) for t in keyframes] == [0.0, 2.002, 4.004, 6.006, 8.008]


@pytest.fixture
def chunked_server(backend: Backend, tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path / "srv", backend, chunked_encoding="on", encode_chunk_seconds="2")
    yield s
    s.stop()


def _events(server: Server, asset_id: str) -> list[dict[str, Any]]:
    out = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and asset_id in line:
            out.append(json.loads(line))
    return out


def test_chunked_ladder_joins_the_master_rung_by_rung(chunked_server: Server) -> None:
    server = chunked_server
    clip = make_clip("chunked-720p-7s.mp4", seconds=7, size="1280x720")
    asset = server.upload(clip, title="chunked ladder")
    done = server.wait(asset["id"], timeout=240)
    assert done["status"] == "ready" and done["progress"] == 100, done
    # The last job logs its publication, and removes its rung's chunks, just after the asset
    # shows complete: wait for both.
    store, chunks = server.store(), f"assets/{asset['id']}/chunks/"
    deadline = time.monotonic() + 60
    while True:
        events = _events(server, asset["id"])
        steps = [
            (e["published"], e["renditions"])
            for e in events
            if e["event"] in ("asset.base_published", "asset.rung_published", "asset.ready")
        ]
        leftover = list(store.list(chunks))
        if (len(steps) >= 4 and not leftover) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert leftover == []  # no chunk is left behind in storage
    queued = [e for e in events if e["event"] == "asset.chunks_queued"]
    assert [e["jobs"] for e in queued] == [12]  # v360, v480, v720: 4 chunks of ~2 s each
    # Each publication (the base: audio + v240 from the processing job, or one stitched rung)
    # only adds to the master. A rung stitched before the base is in joins with it (until then
    # the master lists the muxed preview); after the base, each rung joins alone.
    # Jobs on different workers log after their commits, so the log may interleave them: the
    # order of the writes is the order of the growing lists (each write adds to the last).
    steps.sort(key=lambda step: len(set(step[1]) - {"preview"}))
    assert sorted(name for name, _ in steps) == ["base", "v360", "v480", "v720"], steps
    assert steps[-1][1] == ["v240", "v360", "v480", "v720"]
    lists = [set(listed) - {"preview"} for _, listed in steps]
    assert all(a <= b for a, b in zip(lists, lists[1:], strict=False)), steps
    base = [name for name, _ in steps].index("base")
    after = lists[base:]
    assert all(len(b) == len(a) + 1 for a, b in zip(after, after[1:], strict=False)), steps

    base = f"{server.url}/play/{asset['playback_ids'][0]['id']}"
    master = m3u8.loads(httpx.get(base + "/master.m3u8").text, uri=base + "/master.m3u8")
    assert [tuple(p.stream_info.resolution) for p in master.playlists] == [
        (426, 240),
        (640, 360),
        (854, 480),
        (1280, 720),
    ]
    timelines, frames = [], []
    for variant in master.playlists:
        pl = m3u8.loads(httpx.get(variant.absolute_uri).text, uri=variant.absolute_uri)
        assert pl.playlist_type == "vod" and pl.is_endlist
        timelines.append([round(s.duration, 3) for s in pl.segments])
        folder = variant.absolute_uri.rsplit("/", 1)[0]
        body = httpx.get(folder + "/init.mp4").content
        body += b"".join(httpx.get(s.absolute_uri).content for s in pl.segments)
        info = probe_decodes(body)
        frames.append(int(info["streams"][0]["nb_read_frames"]))
    # Stitched rungs and the one-pass base rung cut segments at the same times.
    assert all(t == timelines[0] for t in timelines), timelines
    assert frames == [210] * 4
    mpd = MPEGDASHParser.parse(httpx.get(base + "/manifest.mpd").text)
    reps = [
        r.height
        for a in mpd.periods[0].adaptation_sets
        for r in a.representations
        if r.height is not None
    ]
    assert sorted(reps) == [240, 360, 480, 720]
