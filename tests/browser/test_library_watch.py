"""The watch page's library in Chromium for a signed-in viewer: playing then pausing saves
the position through the API (with the session and its CSRF header), a reload offers
"Resume from m:ss" and resumes there, and the favourite button toggles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support import Server, make_clip, session_cookie

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser


def test_watch_page_saves_resumes_and_favourites(
    context: BrowserContext, console: Console, sqlite_server: Server
) -> None:
    asset = sqlite_server.upload(make_clip("browser-720p-4s.mp4", seconds=4, size="1280x720"))
    asset = sqlite_server.wait(asset["id"])
    assert asset["status"] == "ready", asset
    context.add_cookies([session_cookie(sqlite_server, "library-watch@example.org")])  # type: ignore[list-item]
    page = context.new_page()
    console.attach(page)
    url = f"{sqlite_server.url}/watch/{asset['playback_ids'][0]['id']}"
    page.goto(url)
    page.wait_for_function("document.getElementById('video').currentTime > 1.5", timeout=60_000)
    with page.expect_response(lambda r: "/me/history/" in r.url and r.request.method == "PUT") as r:
        page.evaluate("document.getElementById('video').pause()")
    assert r.value.status == 200, f"{r.value.text()}\n{console}"
    saved = r.value.json()["data"]["position_seconds"]
    assert saved > 1.5, saved
    page.click("#favourite:not([hidden])")
    page.wait_for_selector("#favourite[aria-pressed=true]")

    page.goto(url)  # again: resume where it was
    resume = page.locator("#resume")
    resume.wait_for(state="visible")
    assert resume.text_content() == f"Resume from 0:0{int(saved)}", console
    assert page.locator("#favourite").get_attribute("aria-pressed") == "true"
    resume.click()
    page.wait_for_function(
        f"document.getElementById('video').currentTime >= {saved - 0.5}", timeout=30_000
    )
