"""The watch page's library in Chromium for a signed-in viewer: playing then pausing saves
the position through the API (with the session and its CSRF header), a reload offers
"Resume from m:ss" and resumes there, and the favourite button toggles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from mediaplane.accounts import create_user
from mediaplane.config import Settings
from mediaplane.db import Database
from tests.support import Server, make_clip

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


def _signed_in_cookie(server: Server) -> dict[str, str]:
    """An admin (who sees every asset) signed in through the form; the session cookie."""
    email = "library-watch@example.org"
    db = Database(Settings(data_dir=server.data_dir).effective_database_url)
    try:
        with db.session() as s:
            create_user(s, email, PASSWORD, "admin", email_verified=True)
    finally:
        db.dispose()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        page = c.get("/signin").text
        csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        r = c.post("/signin", data={"csrf_token": csrf, "email": email, "password": PASSWORD})
        assert r.status_code == 303, r.text
        return {"name": "mp_session", "value": c.cookies["mp_session"], "url": server.url}


def test_watch_page_saves_resumes_and_favourites(
    context: BrowserContext, console: Console, sqlite_server: Server
) -> None:
    asset = sqlite_server.upload(make_clip("browser-720p-4s.mp4", seconds=4, size="1280x720"))
    asset = sqlite_server.wait(asset["id"])
    assert asset["status"] == "ready", asset
    context.add_cookies([_signed_in_cookie(sqlite_server)])  # type: ignore[list-item]
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
