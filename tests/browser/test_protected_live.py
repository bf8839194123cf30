"""A protected live stream in the system Chromium: ffmpeg publishes over RTMP to a ``cbcs``
live stream whose key rotates every 2 segments, and shaka-player plays its dynamic DASH
from another origin through EME ``org.w3.clearkey``, with no DRM configuration (the
licence URL is in each Period's ContentProtection), across key rotations: frames decode
after more than one KID was licensed, every licence answered by our licence server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.test_playback import SHAKA_PAGE, STATE, OtherOrigin, _other_origin_page
from tests.support import Server, live_publisher, until

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser

WAIT_MS = 40_000
#: Played this far past where it started (1 s segments, a key per 2): across a rotation.
PLAYED_SECONDS = 4.5
#: KIDs licensed: the epoch it started in and at least the next one.
KIDS = 2

PLAYED_OR_FAILED = f"""() => {{
  const v = document.querySelector("video");
  const r = window.result;
  if (v && window.startedAt === undefined && v.currentTime > 0) window.startedAt = v.currentTime;
  const moved = window.startedAt !== undefined && v.currentTime - window.startedAt > {PLAYED_SECONDS};
  return (moved && (window.kids || 0) >= {KIDS}) || (v && v.error !== null)
      || (r && r.fatal.length > 0);
}}"""


@pytest.fixture(scope="module")
def server(rotating_keys_server: Server) -> Server:
    return rotating_keys_server


@pytest.fixture(scope="module")
def origin() -> Iterator[OtherOrigin]:
    site = OtherOrigin()
    yield site
    site.close()


def test_shaka_plays_protected_live_dash_across_key_rotations(
    page: Page, console: Console, server: Server, origin: OtherOrigin
) -> None:
    with server.client() as c:
        r = c.post("/api/v1/live-streams", json={"protection": "cbcs", "dvr_window_seconds": 30})
        assert r.status_code == 201, r.text
        live: dict[str, Any] = r.json()["data"]
    base = f"{server.url}/play/{live['playback_ids'][0]['id']}"
    pub = live_publisher(f"{server.rtmp_url}/{live['stream_key']}", 60)
    licences: list[dict[str, Any]] = []

    def seen(resp: Any) -> None:
        if "/drm/clearkey" in resp.url:
            kids = json.loads(resp.request.post_data or "{}").get("kids", [])
            licences.append({"status": resp.status, "kids": kids})
            page.evaluate(
                "(n) => { window.kids = n; }",
                len({k for entry in licences if entry["status"] == 200 for k in entry["kids"]}),
            )

    try:
        until("the MPD", lambda: httpx.get(f"{base}/manifest.mpd").status_code == 200 or None)
        page.on("response", seen)
        src = f"{base}/manifest.mpd"
        page.goto(_other_origin_page(origin, server, "live-cbcs.html", SHAKA_PAGE, src))
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            page.wait_for_function(PLAYED_OR_FAILED, timeout=WAIT_MS)
        except PlaywrightTimeout:
            pytest.fail(
                f"no protected live playback: {page.evaluate(STATE)}\n{licences}\n{console}"
            )
        state: dict[str, Any] = page.evaluate(STATE)
        detail = f"{json.dumps(state, indent=1)}\n{licences}\nconsole:\n{console}"
        assert state["error"] is None and state["result"]["fatal"] == [], detail
        assert state["totalVideoFrames"] > 0, detail
        assert licences and {e["status"] for e in licences} == {200}, detail
        assert len({k for e in licences for k in e["kids"]}) >= KIDS, detail
        assert page.evaluate("() => window.player.isLive()"), detail
    finally:
        pub.kill()
        pub.wait(timeout=10)
        with server.client() as c:
            c.delete(f"/api/v1/live-streams/{live['id']}")
