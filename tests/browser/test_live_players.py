"""Players in the system Chromium play a live stream that ffmpeg publishes over RTMP to a
real `mediaplane up`, from another origin: hls.js its LL-HLS (low-latency mode, blocking
reloads, parts), shaka-player its dynamic DASH MPD, dash.js the same MPD as low-latency DASH
(the segment being written read as it is sent); hls.js last, once the playlist is longer than
CAN-SKIP-UNTIL, so its reloads are delta updates. One publisher for the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.test_playback import (
    HLSJS_PAGE,
    PAGE_HEAD,
    SHAKA_PAGE,
    STATE,
    OtherOrigin,
    _other_origin_page,
)
from tests.integration.test_live_ingest import _publisher, _until
from tests.support import Server

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser

WAIT_MS = 40_000
#: Seconds of low-latency DASH decoded (at 30 fps): more than the 2 s segments the first MPD
#: announced.
MPD_REFRESHED = 5
#: dash.js starts playback itself (its manifest refreshes begin on the "play" event it must
#: see), so its page has no autoplay attribute.
DASHJS_PAGE = (
    PAGE_HEAD.replace(" autoplay", "")
    + """<script src="/dash.all.min.js"></script>
<script>
  const video = document.getElementById("video");
  const player = dashjs.MediaPlayer().create();
  window.player = player;
  player.on(dashjs.MediaPlayer.events.ERROR, (e) => {{
    const entry = {{ code: e.error && e.error.code, message: e.error && e.error.message }};
    window.result.errors.push(entry);
    window.result.fatal.push(entry);
  }});
  player.on(dashjs.MediaPlayer.events.MANIFEST_LOADED, () => {{ window.result.loaded = true; }});
  player.initialize(video, {src}, true);
</script></body></html>
"""
)
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


#: Counts the playlists hls.js loaded as delta updates (EXT-X-SKIP) and merged, and those it
#: could not merge (it then reloads the whole playlist); the play position at the first one.
COUNT_DELTAS = """() => {
  window.deltas = 0;
  window.deltaFailed = 0;
  const count = (event, data) => {
    if (!data.details.skippedSegments) return;
    if (data.details.deltaUpdateFailed) { window.deltaFailed += 1; return; }
    if (window.deltas++ === 0) window.deltaAt = document.querySelector("video").currentTime;
  };
  window.hls.on(Hls.Events.LEVEL_LOADED, count);
  window.hls.on(Hls.Events.AUDIO_TRACK_LOADED, count);
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


@pytest.fixture(scope="module")
def on_air(sqlite_server: Server) -> Iterator[str]:
    """The playback base URL (``…/play/{id}``) of a low-latency stream being published."""
    with sqlite_server.client() as c:
        # A DVR window longer than CAN-SKIP-UNTIL (12 s): delta updates have segments to skip.
        r = c.post("/api/v1/live-streams", json={"latency_mode": "low", "dvr_window_seconds": 30})
        assert r.status_code == 201, r.text
        live: dict[str, Any] = r.json()["data"]
    base = f"{sqlite_server.url}/play/{live['playback_ids'][0]['id']}"
    pub = _publisher(f"{sqlite_server.rtmp_url}/{live['stream_key']}", 90)
    try:
        _until(
            "the live playlist", lambda: httpx.get(f"{base}/master.m3u8").status_code == 200 or None
        )
        yield base
    finally:
        pub.kill()
        pub.wait(timeout=10)
        with sqlite_server.client() as c:
            c.delete(f"/api/v1/live-streams/{live['id']}")


def test_shaka_plays_live_dash(
    page: Page, console: Console, sqlite_server: Server, live_origin: OtherOrigin, on_air: str
) -> None:
    src = f"{on_air}/manifest.mpd"
    url = _other_origin_page(live_origin, sqlite_server, "live-dash.html", SHAKA_PAGE, src)
    page.goto(url)
    state = _wait_for_live_playback(page, console)
    assert page.evaluate("() => window.player.isLive()"), json.dumps(state)


def test_dashjs_plays_low_latency_dash(
    page: Page, console: Console, sqlite_server: Server, live_origin: OtherOrigin, on_air: str
) -> None:
    src = f"{on_air}/manifest.mpd"
    url = _other_origin_page(live_origin, sqlite_server, "live-dashjs.html", DASHJS_PAGE, src)
    page.goto(url)
    state = _wait_for_live_playback(page, console)
    assert page.evaluate("() => window.player.isDynamic()"), json.dumps(state)
    # availabilityTimeComplete="false" turned dash.js's low-latency mode on.
    assert page.evaluate("() => window.player.getLowLatencyModeEnabled()"), json.dumps(state)
    # Past the segments the first MPD listed: dash.js refreshed the MPD and kept playing
    # (decoded frames, not only catch-up seeks to the live edge).
    frames = "document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames"
    page.evaluate(f"() => {{ window.framesAt = {frames}; }}")
    page.wait_for_function(
        f"() => {frames} - window.framesAt > {MPD_REFRESHED * 30}", timeout=WAIT_MS
    )
    latency = page.evaluate("() => window.player.getCurrentLiveLatency()")
    print(
        f"dash.js live latency {latency} s, target {page.evaluate('() => window.player.getTargetLiveDelay()')} s"
    )


def test_hlsjs_plays_low_latency_live(
    page: Page, console: Console, sqlite_server: Server, live_origin: OtherOrigin, on_air: str
) -> None:
    src = f"{on_air}/master.m3u8"
    url = _other_origin_page(live_origin, sqlite_server, "live-hls.html", HLSJS_PAGE, src)
    skips: list[tuple[str, int]] = []  # the delta update requests and their answers' status
    page.on("response", lambda r: "_HLS_skip=" in r.url and skips.append((r.url, r.status)))
    page.goto(url)
    state = _wait_for_live_playback(page, console)
    page.evaluate(COUNT_DELTAS)
    assert page.evaluate("() => window.hls.lowLatencyMode"), json.dumps(state)
    # hls.js loaded parts, not only whole segments: the LL-HLS path was taken.
    parts = page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".filter(e => /\\/\\d+\\.\\d+\\.m4s/.test(e.name)).length"
    )
    assert parts > 0, json.dumps(state)
    # Delta updates: hls.js asked for them (CAN-SKIP-UNTIL), merged an EXT-X-SKIP answer
    # into the playlist it had (none it could not), and played on after it.
    page.wait_for_function("() => window.deltas > 0", timeout=WAIT_MS)
    page.wait_for_function(
        "() => document.querySelector('video').currentTime - window.deltaAt > 1", timeout=WAIT_MS
    )
    assert page.evaluate("() => window.deltaFailed") == 0, json.dumps(page.evaluate(STATE))
    assert any("_HLS_skip=YES" in u and status == 200 for u, status in skips), skips
