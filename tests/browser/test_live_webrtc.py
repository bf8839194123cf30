"""WebRTC in the system Chromium against a real `mediaplane up`: Chromium publishes its fake
camera and microphone over WHIP and the stream goes live (LL-HLS segments from the
re-encoded media); Chromium plays over WHEP a stream ffmpeg publishes over RTMP (the H.264
forwarded as published) and decodes frames of it.

The pages are served from the server's own origin (a Playwright route), as a player on the
same site would be.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import ICE_PAIRS, LOOPBACK_ONLY
from tests.integration.test_live_ingest import _publisher, _until
from tests.support import Server

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser

WAIT_MS = 30_000

#: Publish the fake camera and microphone over WHIP; window.whip says how it went.
WHIP_PAGE = (
    """<!doctype html><meta charset=utf-8><title>whip</title><script>
"""
    + LOOPBACK_ONLY
    + """
window.whip = {state: "starting"};
(async () => {
  try {
    const key = new URLSearchParams(location.search).get("key");
    const media = await navigator.mediaDevices.getUserMedia(
      {video: {width: 640, height: 360, frameRate: 30}, audio: true});
    const pc = window.pc = new RTCPeerConnection();
    for (const t of media.getTracks()) pc.addTransceiver(t, {direction: "sendonly"});
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise(ok => {
      if (pc.iceGatheringState === "complete") return ok();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok();
      setTimeout(ok, 2000);
    });
    const r = await fetch("/whip/" + key, {method: "POST", body: loopbackOnly(pc.localDescription.sdp),
      headers: {"Content-Type": "application/sdp", "Authorization": "Bearer " + key}});
    window.whip = {state: "answered", status: r.status, location: r.headers.get("Location")};
    if (r.status !== 201) { window.whip.body = await r.text(); return; }
    await pc.setRemoteDescription({type: "answer", sdp: await r.text()});
    pc.onconnectionstatechange = () => { window.whip.pc = pc.connectionState; };
  } catch (e) { window.whip = {state: "error", error: String(e)}; }
})();
</script>"""
)

#: Play a playback id over WHEP (video and audio, receive only); window.whep says how it went.
WHEP_PAGE = (
    """<!doctype html><meta charset=utf-8><title>whep</title>
<video muted autoplay playsinline></video><script>
"""
    + LOOPBACK_ONLY
    + """
window.whep = {state: "starting", frames: 0};
(async () => {
  try {
    const id = new URLSearchParams(location.search).get("id");
    const video = document.querySelector("video");
    const pc = window.pc = new RTCPeerConnection();
    pc.addTransceiver("video", {direction: "recvonly"});
    pc.addTransceiver("audio", {direction: "recvonly"});
    const media = new MediaStream();
    pc.ontrack = (ev) => { media.addTrack(ev.track); video.srcObject = media; };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise(ok => {
      if (pc.iceGatheringState === "complete") return ok();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok();
      setTimeout(ok, 2000);
    });
    const r = await fetch("/whep/" + id, {method: "POST", body: loopbackOnly(pc.localDescription.sdp),
      headers: {"Content-Type": "application/sdp"}});
    window.whep = {...window.whep, state: "answered", status: r.status,
                   location: r.headers.get("Location")};
    if (r.status !== 201) { window.whep.body = await r.text(); return; }
    await pc.setRemoteDescription({type: "answer", sdp: await r.text()});
    const count = (now, meta) => {
      window.whep.frames += 1;
      window.whep.width = meta.width; window.whep.height = meta.height;
      video.requestVideoFrameCallback(count);
    };
    video.requestVideoFrameCallback(count);
  } catch (e) { window.whep = {state: "error", error: String(e)}; }
})();
</script>"""
)


#: Opus audio of the WHEP session was received and decoded.
AUDIO_DECODED = """async () => {
  const stats = await window.pc.getStats();
  let ok = false;
  stats.forEach(s => {
    if (s.type === "inbound-rtp" && s.kind === "audio" && s.packetsReceived > 10
        && s.totalSamplesReceived > 0) {
      const codec = stats.get(s.codecId);
      ok = ok || (codec && codec.mimeType === "audio/opus");
    }
  });
  return ok;
}"""


def _assert_loopback_ice(page: Page) -> None:
    """The connected peer's selected candidate pair is 127.0.0.1 on both sides; Chromium
    checks no remote address but 127.0.0.1, and the server answers no check but from it (a
    pair from Chromium's LAN socket to our 127.0.0.1 never succeeds)."""
    page.wait_for_function("() => window.pc.connectionState === 'connected'", timeout=WAIT_MS)
    pairs = page.evaluate(ICE_PAIRS)
    selected = pairs["selected"]
    assert selected is not None, json.dumps(pairs)
    assert selected["local"]["address"] == selected["remote"]["address"] == "127.0.0.1", json.dumps(
        pairs
    )
    assert {p["remote"]["address"] for p in pairs["all"]} == {"127.0.0.1"}, json.dumps(pairs)
    succeeded = {p["local"]["address"] for p in pairs["all"] if p["state"] == "succeeded"}
    assert succeeded == {"127.0.0.1"}, json.dumps(pairs)


def _serve_page(page: Page, server: Server, name: str, html: str) -> str:
    url = f"{server.url}/_test/{name}"
    page.route(
        re.compile(re.escape(url) + r"(\?.*)?$"),
        lambda route: route.fulfill(status=200, content_type="text/html", body=html),
    )
    return url


def _stream(server: Server, **body: Any) -> Iterator[dict[str, Any]]:
    with server.client() as c:
        r = c.post("/api/v1/live-streams", json={"latency_mode": "low", **body})
        assert r.status_code == 201, r.text
        live: dict[str, Any] = r.json()["data"]
    yield live
    with server.client() as c:
        c.delete(f"/api/v1/live-streams/{live['id']}")


@pytest.fixture
def whip_stream(sqlite_server: Server) -> Iterator[dict[str, Any]]:
    yield from _stream(sqlite_server, reconnect_window_seconds=0)


@pytest.fixture(scope="module")
def rtmp_on_air(sqlite_server: Server) -> Iterator[dict[str, Any]]:
    """A low-latency stream ffmpeg publishes over RTMP (320x180, keyframe every 0.5 s)."""
    gen = _stream(sqlite_server)
    live = next(gen)
    pub = _publisher(f"{sqlite_server.rtmp_url}/{live['stream_key']}", 60)
    base = f"{sqlite_server.url}/play/{live['playback_ids'][0]['id']}"
    try:
        _until(
            "the live playlist", lambda: httpx.get(f"{base}/master.m3u8").status_code == 200 or None
        )
        yield live
    finally:
        pub.kill()
        pub.wait(timeout=10)
        next(gen, None)


def test_chromium_publishes_whip(
    page: Page, console: Console, sqlite_server: Server, whip_stream: dict[str, Any]
) -> None:
    """Chromium's fake camera over WHIP: 201 with a Location, the stream goes active, its
    LL-HLS playlist gets segments of the re-encoded picture; DELETE ends the session."""
    page.goto(
        _serve_page(page, sqlite_server, "whip.html", WHIP_PAGE)
        + "?key="
        + whip_stream["stream_key"]
    )
    page.wait_for_function("() => window.whip.state !== 'starting'", timeout=WAIT_MS)
    state = page.evaluate("() => window.whip")
    assert state["status"] == 201, f"{json.dumps(state)}\n{console}\n{sqlite_server.log()}"
    assert state["location"].startswith("/whip/session/"), json.dumps(state)
    _assert_loopback_ice(page)
    stream_id, pid = whip_stream["id"], whip_stream["playback_ids"][0]["id"]

    def active() -> dict[str, Any] | None:
        with sqlite_server.client() as c:
            data: dict[str, Any] = c.get(f"/api/v1/live-streams/{stream_id}").json()["data"]
        return data if data["status"] == "active" else None

    _until("the WHIP stream to go active", active, timeout=20)
    base = f"{sqlite_server.url}/play/{pid}"

    def segments() -> str | None:
        master = httpx.get(f"{base}/master.m3u8")
        if master.status_code != 200:
            return None
        uri = next(line for line in master.text.splitlines() if line and line[0] != "#")
        media = httpx.get(f"{base}/{uri}")
        return media.text if media.status_code == 200 and "#EXTINF" in media.text else None

    playlist = _until("segments of the WHIP stream", segments, timeout=30)
    assert "#EXT-X-PART:" in playlist, playlist
    with httpx.Client(base_url=sqlite_server.url) as c:
        assert c.delete(state["location"]).status_code == 200
        assert c.delete(state["location"]).status_code == 404  # gone

    def idle() -> bool | None:
        with sqlite_server.client() as c:
            data = c.get(f"/api/v1/live-streams/{stream_id}").json()["data"]
        return True if data["status"] == "idle" else None

    _until("the WHIP stream to end", idle, timeout=30)


def test_chromium_plays_whep(
    page: Page, console: Console, sqlite_server: Server, rtmp_on_air: dict[str, Any]
) -> None:
    """An RTMP stream played over WHEP: frames of the published 320x180 picture decoded."""
    pid = rtmp_on_air["playback_ids"][0]["id"]
    page.goto(_serve_page(page, sqlite_server, "whep.html", WHEP_PAGE) + "?id=" + pid)
    try:
        page.wait_for_function(
            "() => window.whep.frames >= 15 || window.whep.state === 'error'"
            " || (window.whep.status && window.whep.status !== 201)",
            timeout=WAIT_MS,
        )
    except Exception:
        pytest.fail(
            f"no WHEP frames: {json.dumps(page.evaluate('() => window.whep'))}\n{console}\n"
            f"{sqlite_server.log()[-6000:]}"
        )
    state = page.evaluate("() => window.whep")
    assert state["status"] == 201, json.dumps(state)
    assert (state["width"], state["height"]) == (320, 180), json.dumps(state)
    _assert_loopback_ice(page)
    # The tone, as Opus (transcoded once for the stream): packets come and are decoded.
    page.wait_for_function(AUDIO_DECODED, timeout=WAIT_MS)
    with httpx.Client(base_url=sqlite_server.url) as c:
        assert c.delete(state["location"]).status_code == 200
