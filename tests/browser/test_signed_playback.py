"""Signed playback in the system Chromium: hls.js plays a signed playback id with a valid
playback token (the carry token in the rendered URLs opens the playlists and segments), and
fails without one. Every request stays on 127.0.0.1."""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from tests.browser.test_playback import (
    HLSJS_PAGE,
    WAIT_MS,
    OtherOrigin,
    _other_origin_page,
    _wait_for_playback,
    other_origin,  # noqa: F401 - the fixture, shared with the playback tests
)
from tests.support import Server, make_clip

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def signed_source(sqlite_server: Server) -> tuple[str, str]:
    """(master playlist URL of a signed playback id, a playback token for it)."""
    asset = sqlite_server.upload(make_clip("signed-browser-3s.mp4", seconds=3), "signed")
    done = sqlite_server.wait(asset["id"])
    assert done["status"] == "ready", done
    with sqlite_server.client() as c:
        key = c.post("/api/v1/signing-keys").json()["data"]
        r = c.post(f"/api/v1/assets/{asset['id']}/playback-ids", json={"policy": "signed"})
    assert r.status_code == 201, r.text
    pid = r.json()["data"]["id"]
    claims = {"sub": pid, "aud": "v", "exp": int(time.time()) + 3600}
    pem = base64.b64decode(key["private_key"])
    token = jwt.encode(claims, pem, algorithm="RS256", headers={"kid": key["id"]})
    return f"{sqlite_server.url}/play/{pid}/master.m3u8", token


def test_hlsjs_plays_a_signed_playback_id_with_a_token(
    page: Page,
    console: Console,
    sqlite_server: Server,
    other_origin: OtherOrigin,  # noqa: F811
    signed_source: tuple[str, str],
) -> None:
    master, token = signed_source
    src = f"{master}?token={token}"
    url = _other_origin_page(other_origin, sqlite_server, "signed.html", HLSJS_PAGE, src)
    page.goto(url)
    _wait_for_playback(page, console)


def test_hlsjs_fails_without_a_token(
    page: Page,
    console: Console,
    sqlite_server: Server,
    other_origin: OtherOrigin,  # noqa: F811
    signed_source: tuple[str, str],
) -> None:
    master, _ = signed_source
    url = _other_origin_page(other_origin, sqlite_server, "unsigned.html", HLSJS_PAGE, master)
    page.goto(url)
    page.wait_for_function("() => window.result && window.result.fatal.length > 0", timeout=WAIT_MS)
    state: dict[str, Any] = page.evaluate(
        """() => ({fatal: window.result.fatal, t: document.querySelector("video").currentTime,
                   frames: document.querySelector("video").getVideoPlaybackQuality()
                       .totalVideoFrames})"""
    )
    assert state["fatal"][0]["details"] == "manifestLoadError", f"{state}\n{console}"
    assert (state["t"], state["frames"]) == (0, 0), f"{state}\n{console}"
