"""The watch page's real-time panel in Chromium: a signed-in admin's own playback (the page's
snippet beacons) shows among the viewers without a reload (htmx polling), and leaves when
the view ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support import Server, make_clip, session_cookie

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser
VIEWERS = "Number(document.getElementById('realtime').dataset.viewers)"


def test_the_watch_page_counts_its_viewer_in_real_time(
    context: BrowserContext, console: Console, sqlite_server: Server
) -> None:
    asset = sqlite_server.upload(make_clip("realtime-2s.mp4", seconds=2, size="320x180"))
    asset = sqlite_server.wait(asset["id"], playable=True)
    assert asset["status"] == "ready", asset
    context.add_cookies([session_cookie(sqlite_server, "realtime-panel@example.org")])  # type: ignore[list-item]
    page = context.new_page()
    console.attach(page)
    page.goto(f"{sqlite_server.url}/watch/{asset['playback_ids'][0]['id']}")
    assert page.locator("#realtime[hx-get]").count() == 1, page.content()[:3000]
    page.evaluate("window.__noReload = true")  # gone if the page reloads
    page.wait_for_function("document.getElementById('video').currentTime > 0", timeout=30_000)
    page.evaluate("document.getElementById('video').pause()")  # counted for the window still
    page.wait_for_function(f"{VIEWERS} >= 1", timeout=30_000)
    watching = page.evaluate(VIEWERS)
    assert page.locator("#rt-bitrate").text_content() != "–", console
    page.evaluate("window.mediaplane.qoe.end()")  # the view ends: it leaves at once
    page.wait_for_function(f"{VIEWERS} < {watching}", timeout=30_000)
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"
    page.screenshot(path="/tmp/realtime-panel.png", full_page=True)
