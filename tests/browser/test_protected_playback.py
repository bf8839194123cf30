"""Protected playback in the system Chromium, through EME ``org.w3.clearkey`` and our own
licence server: shaka-player plays the cenc DASH and the cbcs DASH with no DRM
configuration (the licence URL is in the MPD), hls.js plays the AES-128 HLS (its key URI is
in the playlist); a viewer whose licence request carries no valid token is refused and
shaka-player reports a DRM error with no frame decoded. Every request stays on 127.0.0.1."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.test_playback import (
    HLSJS_PAGE,
    SHAKA_PAGE,
    WAIT_MS,
    OtherOrigin,
    _other_origin_page,
    _wait_for_playback,
    other_origin,  # noqa: F401 - the fixture, shared with the playback tests
)
from tests.support import Server, make_clip

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser

SCHEMES = ("cenc", "cbcs", "aes-128")


@pytest.fixture(scope="module")
def protected_pids(sqlite_server: Server) -> dict[str, str]:
    """Playback id of a 2 s clip uploaded under each protection scheme."""
    clip = make_clip("protected-browser-2s.mp4", seconds=2, size="640x360")
    assets = {}
    for scheme in SCHEMES:
        with sqlite_server.client() as c, clip.open("rb") as f:
            r = c.post(
                "/api/v1/assets",
                files={"file": ("clip.mp4", f)},
                data={"title": scheme, "protection": scheme},
            )
        assert r.status_code == 201, r.text
        assets[scheme] = r.json()["data"]["id"]
    pids = {}
    for scheme, asset_id in assets.items():
        done = sqlite_server.wait(asset_id)
        assert done["status"] == "ready", done
        assert done["protection"] == scheme
        pids[scheme] = done["playback_ids"][0]["id"]
    return pids


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_shaka_plays_encrypted_dash_through_clearkey(
    page: Page,
    console: Console,
    sqlite_server: Server,
    other_origin: OtherOrigin,  # noqa: F811
    protected_pids: dict[str, str],
    scheme: str,
) -> None:
    licences: list[int] = []
    page.on(
        "response",
        lambda r: licences.append(r.status) if "/drm/clearkey" in r.url else None,
    )
    src = f"{sqlite_server.url}/play/{protected_pids[scheme]}/manifest.mpd"
    url = _other_origin_page(other_origin, sqlite_server, f"shaka-{scheme}.html", SHAKA_PAGE, src)
    page.goto(url)
    state = _wait_for_playback(page, console)
    assert state["result"]["errors"] == [], f"{state}\n{console}"
    # The frames decoded came through the ClearKey CDM with keys from our licence server.
    assert licences and set(licences) == {200}, f"licence answers {licences}\n{console}"


def test_hlsjs_plays_aes128_hls(
    page: Page,
    console: Console,
    sqlite_server: Server,
    other_origin: OtherOrigin,  # noqa: F811
    protected_pids: dict[str, str],
) -> None:
    keys: list[int] = []
    page.on("response", lambda r: keys.append(r.status) if "/keys/" in r.url else None)
    src = f"{sqlite_server.url}/play/{protected_pids['aes-128']}/master.m3u8"
    url = _other_origin_page(other_origin, sqlite_server, "hlsjs-aes.html", HLSJS_PAGE, src)
    page.goto(url)
    _wait_for_playback(page, console)
    assert keys and set(keys) == {200}, f"key answers {keys}\n{console}"


def test_shaka_reports_a_drm_error_when_the_licence_is_refused(
    page: Page,
    console: Console,
    sqlite_server: Server,
    other_origin: OtherOrigin,  # noqa: F811
    protected_pids: dict[str, str],
) -> None:
    """A viewer whose licence request carries a forged token: refused (403), and the player
    fails with a DRM error having decoded nothing."""
    refusals: list[dict[str, Any]] = []

    def forge(route: Route) -> None:
        url = route.request.url
        start = url.index("st=") + 3
        end = url.index("&", start)
        forged = url[:start] + url[start:end][:-4] + "AAAA" + url[end:]
        route.continue_(url=forged)

    def seen(r: Any) -> None:
        if "/drm/clearkey" in r.url:
            refusals.append({"status": r.status, "body": r.text()})

    page.route("**/drm/clearkey*", forge)
    page.on("response", seen)
    src = f"{sqlite_server.url}/play/{protected_pids['cenc']}/manifest.mpd"
    url = _other_origin_page(other_origin, sqlite_server, "shaka-refused.html", SHAKA_PAGE, src)
    page.goto(url)
    page.wait_for_function("() => window.result && window.result.fatal.length > 0", timeout=WAIT_MS)
    state: dict[str, Any] = page.evaluate(
        """() => ({fatal: window.result.fatal, t: document.querySelector("video").currentTime,
                   frames: document.querySelector("video").getVideoPlaybackQuality()
                       .totalVideoFrames})"""
    )
    detail = f"{json.dumps(state)}\n{refusals}\n{console}"
    # shaka.util.Error.Category.DRM is 6; LICENSE_REQUEST_FAILED is 6007.
    assert state["fatal"][0].get("category") == 6, detail
    assert state["fatal"][0].get("code") == 6007, detail
    assert state["frames"] == 0, detail
    assert refusals, detail
    assert refusals[0]["status"] == 403, detail
    assert json.loads(refusals[0]["body"])["error"]["code"] == "token_signature", detail


@pytest.mark.parametrize("scheme", ["cbcs", "aes-128"])
def test_the_watch_page_plays_protected_assets(
    page: Page, console: Console, sqlite_server: Server, protected_pids: dict[str, str], scheme: str
) -> None:
    """The watch page's shaka-player: the cbcs DASH through ClearKey, and for aes-128
    (no DASH) the HLS it falls back to, decrypted with the key from /keys/."""
    response = page.goto(f"{sqlite_server.url}/watch/{protected_pids[scheme]}")
    assert response is not None
    assert response.status == 200
    _wait_for_playback(page, console)
