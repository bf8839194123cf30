"""hls.js in the system Chromium plays a live LL-HLS stream (low-latency mode, blocking
reloads) that ffmpeg publishes over RTMP to a real `mediaplane up`, from another origin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.test_playback import HLSJS_PAGE, STATE, OtherOrigin, _other_origin_page
from tests.integration.test_live_ingest import _publisher, _until
from tests.support import Server

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser

WAIT_MS = 40_000
#: A live player starts at the live edge (currentTime jumps there before a frame is shown):
#: it plays when currentTime has moved on 1.5 s from where it started, with frames decoded.
ADVANCED_OR_FAILED = """() => {
  const v = document.querySelector("video");
  const r = window.result;
  if (v && window.startedAt === undefined && v.currentTime > 0) window.startedAt = v.currentTime;
  const moved = window.startedAt !== undefined && v.currentTime - window.startedAt > 1.5;
  const frames = v && v.getVideoPlaybackQuality().totalVideoFrames > 0;
  return (moved && frames) || (v && v.error !== null) || (r && r.fatal.length > 0);
}"""


def _wait_for_live_playback(page: Page, console: Console) -> dict[str, Any]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(ADVANCED_OR_FAILED, timeout=WAIT_MS)
    except PlaywrightTimeout:
        pytest.fail(f"no live playback: {json.dumps(page.evaluate(STATE))}\nconsole:\n{console}")
    state: dict[str, Any] = page.evaluate(STATE)
    detail = f"{json.dumps(state, indent=1)}\nconsole:\n{console}"
    assert state["error"] is None and state["result"]["fatal"] == [], detail
    assert state["totalVideoFrames"] > 0, detail
    assert (state["videoWidth"], state["videoHeight"]) == (320, 180), detail
    return state


@pytest.fixture(scope="module")
def live_origin() -> Iterator[OtherOrigin]:
    site = OtherOrigin()
    yield site
    site.close()


def test_hlsjs_plays_low_latency_live(
    page: Page, console: Console, sqlite_server: Server, live_origin: OtherOrigin
) -> None:
    with sqlite_server.client() as c:
        r = c.post("/api/v1/live-streams", json={"latency_mode": "low"})
        assert r.status_code == 201, r.text
        live: dict[str, Any] = r.json()["data"]
    src = f"{sqlite_server.url}/play/{live['playback_ids'][0]['id']}/master.m3u8"
    pub = _publisher(f"{sqlite_server.rtmp_url}/{live['stream_key']}", 30)
    try:
        _until("the live playlist", lambda: httpx.get(src).status_code == 200 or None)
        url = _other_origin_page(live_origin, sqlite_server, "live.html", HLSJS_PAGE, src)
        page.goto(url)
        state = _wait_for_live_playback(page, console)
        low = page.evaluate("() => window.hls.lowLatencyMode")
        assert low, json.dumps(state)
        # hls.js loaded parts, not only whole segments: the LL-HLS path was taken.
        parts = page.evaluate(
            "() => performance.getEntriesByType('resource')"
            ".filter(e => /\\/\\d+\\.\\d+\\.m4s/.test(e.name)).length"
        )
        assert parts > 0, json.dumps(state)
    finally:
        pub.kill()
        pub.wait(timeout=10)
        with sqlite_server.client() as c:
            c.delete(f"/api/v1/live-streams/{live['id']}")
