"""Audio tracks in the system Chromium: the watch page offers the languages of a
four-audio-stream asset and switches to French (shaka-player, DASH), hls.js switches audio
tracks of the HLS master, and an audio-only asset plays with its waveform poster."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.audio_media import audio_only_clip, languages_clip
from tests.browser.test_playback import STATE, _wait_for_playback

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console
    from tests.support import Server

pytestmark = pytest.mark.browser

WAIT_MS = 30_000


@pytest.fixture(scope="module")
def assets(sqlite_server: Server) -> dict[str, dict[str, Any]]:
    ids = {
        "languages": sqlite_server.upload(languages_clip(4), title="Languages")["id"],
        "podcast": sqlite_server.upload(audio_only_clip("m4a", 4), title="Podcast")["id"],
    }
    done = {kind: sqlite_server.wait(asset_id) for kind, asset_id in ids.items()}
    for asset in done.values():
        assert asset["status"] == "ready", asset
    return done


def _pid(asset: dict[str, Any]) -> str:
    return str(asset["playback_ids"][0]["id"])


def _audio_requests(page: Page) -> list[str]:
    """URLs of audio segments the page fetches, by rendition folder."""
    seen: list[str] = []
    page.on("request", lambda req: seen.append(req.url) if ".m4s" in req.url else None)
    return seen


def _played_past(page: Page, seconds: float, console: Console) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            f"() => document.querySelector('video').currentTime > {seconds}", timeout=WAIT_MS
        )
    except PlaywrightTimeout:
        pytest.fail(f"playback stalled: {json.dumps(page.evaluate(STATE))}\n{console}")


def test_watch_page_switches_audio_language(
    page: Page, console: Console, sqlite_server: Server, assets: dict[str, dict[str, Any]]
) -> None:
    requests = _audio_requests(page)
    page.goto(f"{sqlite_server.url}/watch/{_pid(assets['languages'])}")
    _wait_for_playback(page, console)
    menu = page.locator("#audio-track")
    assert page.locator("#audio-choice").is_visible(), console
    labels = menu.locator("option").all_text_contents()
    assert labels == [
        "English",
        "Français",
        "Director's commentary",
        "English (audio description)",
    ], console
    active = "() => window.mediaplane.player.getAudioTracks().find((t) => t.active)"
    assert page.evaluate(active)["language"] == "en"  # the default stream plays first
    assert not any("/audio2/" in url for url in requests)
    switched_at = page.evaluate("document.querySelector('video').currentTime")
    menu.select_option(label="Français")
    page.wait_for_function(f"() => ({active})().language === 'fr'", timeout=WAIT_MS)
    _played_past(page, switched_at + 1.0, console)
    assert any("/audio2/" in url for url in requests), requests  # French segments fetched
    state = page.evaluate(STATE)
    assert state["error"] is None and state["result"] is None, state
    assert state["totalVideoFrames"] > 0, state
    assert page.locator("#player-error").is_hidden(), console


HLSJS = """async (src) => {
  const video = document.createElement("video");
  video.muted = true;
  document.body.append(video);
  window.result = { errors: [], fatal: [] };
  const hls = new Hls();
  window.hls = hls;
  hls.on(Hls.Events.ERROR, (e, d) => {
    window.result.errors.push(d.details);
    if (d.fatal) window.result.fatal.push(d.details);
  });
  const parsed = new Promise((ok) => hls.on(Hls.Events.MANIFEST_PARSED, ok));
  hls.loadSource(src);
  hls.attachMedia(video);
  await parsed;
  video.play().catch((e) => window.result.playError = String(e));
  return hls.audioTracks.map((t) => ({ name: t.name, lang: t.lang, default: t.default,
                                       characteristics: t.characteristics || null }));
}"""


def test_hlsjs_switches_audio_track(
    page: Page, console: Console, sqlite_server: Server, assets: dict[str, dict[str, Any]]
) -> None:
    requests = _audio_requests(page)
    page.goto(f"{sqlite_server.url}/healthz")  # an empty page on the same origin
    page.add_script_tag(url=f"{sqlite_server.url}/static/vendor/hls.min.js")
    tracks = page.evaluate(
        HLSJS, f"{sqlite_server.url}/play/{_pid(assets['languages'])}/master.m3u8"
    )
    assert [(t["lang"], t["default"]) for t in tracks] == [
        ("en", True),
        ("fr", False),
        ("en", False),
        ("en", False),
    ], console
    assert tracks[3]["characteristics"] == "public.accessibility.describes-video"
    _played_past(page, 0.5, console)
    switched = page.evaluate(
        """() => new Promise((ok) => {
             window.hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, (e, d) => ok(d.id));
             window.hls.audioTrack = 1;
           })"""
    )
    assert switched == 1
    at = page.evaluate("document.querySelector('video').currentTime")
    _played_past(page, at + 1.0, console)
    assert any("/audio2/" in url for url in requests), requests
    state = page.evaluate(STATE)
    assert state["error"] is None and state["result"]["fatal"] == [], state
    assert state["totalVideoFrames"] > 0, state


def test_watch_page_plays_audio_only(
    page: Page, console: Console, sqlite_server: Server, assets: dict[str, dict[str, Any]]
) -> None:
    pid = _pid(assets["podcast"])
    poster = page.request.get(f"{sqlite_server.url}/play/{pid}/thumbnail.jpg?width=1280")
    assert poster.status == 200 and poster.headers["content-type"] == "image/jpeg"
    page.goto(f"{sqlite_server.url}/watch/{pid}")
    assert page.locator("video[data-audio-only]").count() == 1
    assert "audio only" in (page.locator(".meta").text_content() or "")
    _played_past(page, 1.5, console)
    state = page.evaluate(STATE)
    assert state["error"] is None, f"{state}\n{console}"
    assert (state["videoWidth"], state["videoHeight"]) == (0, 0)  # sound only: the poster shows
    assert page.evaluate("window.mediaplane.loaded").endswith("manifest.mpd")
    assert page.locator("#player-error").is_hidden(), console
    assert page.locator("#audio-choice").is_hidden()  # one track: no menu


def test_hlsjs_plays_audio_only_hls(
    page: Page, console: Console, sqlite_server: Server, assets: dict[str, dict[str, Any]]
) -> None:
    """The audio-only master (one STREAM-INF, CODECS="mp4a.40.2", no RESOLUTION) in hls.js."""
    page.goto(f"{sqlite_server.url}/healthz")
    page.add_script_tag(url=f"{sqlite_server.url}/static/vendor/hls.min.js")
    src = f"{sqlite_server.url}/play/{_pid(assets['podcast'])}/master.m3u8"
    assert page.evaluate(HLSJS, src) == []  # one audio track: no alternatives
    _played_past(page, 1.5, console)
    state = page.evaluate(STATE)
    assert state["error"] is None and state["result"]["fatal"] == [], f"{state}\n{console}"
