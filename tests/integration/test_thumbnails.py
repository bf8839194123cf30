"""Thumbnails stay bounded under a burst: snapped keys, a stored storyboard, capped ffmpeg.

One embedded server for the module, with two extraction slots and no queue, so the cap is
what a burst meets. The ffmpeg extractions are counted from /proc (children of the server
running the thumbnail argv) while the burst runs, not from the server's own word alone.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.media import MAX_FRAMES, THUMBNAIL_WIDTHS, snap_thumbnail
from tests.support import Server, embedded_backend, ffprobe_json, make_clip, start_server

CAP = 2
SECONDS = 12
SEGMENT = 2  # the default segment length


@pytest.fixture(scope="module")
def thumbs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("server-thumbs"),
        embedded_backend(),
        thumbnail_concurrency=str(CAP),
        thumbnail_queue_seconds="0",
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def asset(thumbs_server: Server) -> dict[str, Any]:
    clip = make_clip("thumbs-360p-12s.mp4", seconds=SECONDS, size="640x360")
    done = thumbs_server.wait(thumbs_server.upload(clip, title="thumbs")["id"])
    assert done["status"] == "ready", done
    return done


def _thumb_keys(server: Server, asset: dict[str, Any]) -> set[str]:
    prefix = f"assets/{asset['id']}/thumbs/"
    return {o.key for o in server.store().list(prefix)}


def _metric(server: Server, name: str) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def _children(root: int) -> list[tuple[int, str]]:
    """(pid, argv) of every descendant of ``root``, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        parents[int(text.split(" ", 1)[0])] = int(text.rsplit(")", 1)[1].split()[1])
    found, todo = [], [root]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent:
                todo.append(pid)
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                found.append((pid, argv.decode(errors="replace")))
    return found


class ExtractionWatch:
    """Samples the server's ffmpeg thumbnail processes until stopped; keeps the peak."""

    def __init__(self, server: Server) -> None:
        self.root = server.proc.pid
        self.peak = 0
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            running = [
                pid
                for pid, argv in _children(self.root)
                if "ffmpeg" in argv and "image2pipe" in argv
            ]
            self.seen.update(running)
            self.peak = max(self.peak, len(running))

    def __enter__(self) -> ExtractionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _width(data: bytes, tmp_path: Path, name: str) -> int:
    path = tmp_path / name
    path.write_bytes(data)
    stream = ffprobe_json(path)["streams"][0]
    assert stream["codec_name"] == "mjpeg"
    return int(stream["width"])


def test_storyboard_made_with_the_ladder(
    thumbs_server: Server, asset: dict[str, Any], tmp_path: Path
) -> None:
    """The asset job stored the grid at the small widths; those requests start no ffmpeg."""
    points = [t for t in range(0, SECONDS, SEGMENT)]  # 12 s at 2 s segments: every 2 s
    keys = _thumb_keys(thumbs_server, asset)
    assert keys == {
        f"assets/{asset['id']}/thumbs/{t * 1000}_{w}.jpg" for t in points for w in (160, 320)
    }
    base = f"{thumbs_server.url}/play/{asset['playback_ids'][0]['id']}"
    with ExtractionWatch(thumbs_server) as watch:
        for i, t in enumerate((0.0, 0.9, 3.3, 7.0, 11.9)):
            r = httpx.get(base + "/thumbnail.jpg", params={"time": t, "width": 150 + i * 40})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "image/jpeg"
            assert r.headers["cache-control"] == "public, max-age=86400"
            expected = 160 if 150 + i * 40 <= 160 else 320
            assert _width(r.content, tmp_path, f"s{i}.jpg") == expected
    assert watch.seen == set()
    assert _metric(thumbs_server, "mediaplane_thumbnail_extractions_total") == 0
    assert _thumb_keys(thumbs_server, asset) == keys  # nothing new stored


def test_storyboard_vtt_points_at_stored_frames(
    thumbs_server: Server, asset: dict[str, Any], tmp_path: Path
) -> None:
    """storyboard.vtt: one cue per grid point, each image served from the storyboard."""
    base = f"{thumbs_server.url}/play/{asset['playback_ids'][0]['id']}"
    r = httpx.get(base + "/storyboard.vtt")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/vtt; charset=utf-8"
    lines = r.text.splitlines()
    assert lines[0] == "WEBVTT"
    cues = [(line, lines[i + 1]) for i, line in enumerate(lines) if " --> " in line]
    assert [c[0] for c in cues[:-1]] == [
        f"00:00:{t:02d}.000 --> 00:00:{t + 2:02d}.000" for t in range(0, 10, 2)
    ]
    assert cues[-1][0].startswith("00:00:10.000 --> 00:00:12")
    assert [c[1] for c in cues] == [f"thumbnail.jpg?time={t}&width=160" for t in range(0, 12, 2)]
    assert httpx.get(base + "/storyboard.vtt", params={"width": 300}).text.count("width=320") == 6
    before = _metric(thumbs_server, "mediaplane_thumbnail_extractions_total")
    for i, (_, image) in enumerate(cues):
        got = httpx.get(f"{base}/{image}")
        assert got.status_code == 200
        assert _width(got.content, tmp_path, f"v{i}.jpg") == 160
    assert _metric(thumbs_server, "mediaplane_thumbnail_extractions_total") == before
    etag = r.headers["etag"]
    assert httpx.get(base + "/storyboard.vtt", headers={"If-None-Match": etag}).status_code == 304


def test_burst_is_bounded(thumbs_server: Server, asset: dict[str, Any], tmp_path: Path) -> None:
    """40 requests at distinct times and widths: at most CAP ffmpeg at once, only snapped
    keys stored, 503 + Retry-After beyond the cap, and every retried answer a JPEG of the
    snapped width."""
    base = f"{thumbs_server.url}/play/{asset['playback_ids'][0]['id']}"
    duration = float(asset["duration"])
    requests = [(round(i * SECONDS / 40 + 0.013, 3), 500 if i % 2 else 1000) for i in range(40)]
    storyboard = _thumb_keys(thumbs_server, asset)

    def get(params: tuple[float, int]) -> httpx.Response:
        return httpx.get(
            base + "/thumbnail.jpg", params={"time": params[0], "width": params[1]}, timeout=60
        )

    snapped = {snap_thumbnail(t, w, duration, SEGMENT) for t, w in requests}
    assert {w for _, w in snapped} == {640, 1280}
    busy = 0
    with ExtractionWatch(thumbs_server) as watch:
        with ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(get, requests))
        for i, (params, r) in enumerate(zip(requests, answers, strict=True)):
            for _ in range(100):  # a slot frees as soon as an extraction ends
                assert r.status_code in (200, 503), r.text
                if r.status_code == 200:
                    break
                busy += 1
                assert r.headers["retry-after"] == "1"
                assert r.json()["error"]["code"] == "thumbnails_busy"
                time.sleep(0.1)
                r = get(params)
            answers[i] = r
    assert 0 < watch.peak <= CAP, watch.peak  # measured from /proc while it ran
    assert _metric(thumbs_server, "mediaplane_thumbnail_extractions_in_flight_peak") <= CAP
    assert _metric(thumbs_server, "mediaplane_thumbnail_extractions_in_flight") == 0
    for i, ((t, w), r) in enumerate(zip(requests, answers, strict=True)):
        assert r.status_code == 200, r.text
        expected = snap_thumbnail(t, w, duration, SEGMENT)[1]
        assert _width(r.content, tmp_path, f"b{i}.jpg") == expected
    # Requests waiting on a refused extraction share its 503: refusals <= 503 answers.
    assert 0 < _metric(thumbs_server, "mediaplane_thumbnail_busy_total") <= busy or busy == 0

    stored = _thumb_keys(thumbs_server, asset) - storyboard
    assert stored == {
        f"assets/{asset['id']}/thumbs/{t * 1000}_{w}.jpg" for t, w in snapped
    }  # one object per snapped (time, width), not per request
    assert len(stored) + len(storyboard) <= MAX_FRAMES * len(THUMBNAIL_WIDTHS)
    # At most one extraction per snapped key: the later answers came from the store.
    assert _metric(thumbs_server, "mediaplane_thumbnail_extractions_total") <= len(snapped)
    assert len(watch.seen) <= len(snapped)


def test_thumbnail_requests_validated(thumbs_server: Server, asset: dict[str, Any]) -> None:
    base = f"{thumbs_server.url}/play/{asset['playback_ids'][0]['id']}"
    for params in ({"width": 99999}, {"time": -1}, {"width": 8}):
        r = httpx.get(base + "/thumbnail.jpg", params=params)
        assert r.status_code == 400, params
        assert json.loads(r.text)["error"]["code"] == "invalid_request"
