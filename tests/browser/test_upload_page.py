"""The upload page: tus-js-client uploads with progress, and after a broken connection and a
page reload it resumes where the server left off instead of starting again; signed in, it
uploads with the session into the creator's channel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from mediaplane.accounts import create_user
from mediaplane.config import Settings
from mediaplane.db import Database
from tests.support import Server, make_clip

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser

CHUNK = 256 * 1024


def test_upload_resumes_after_reload(page: Page, console: Console, sqlite_server: Server) -> None:
    clip = make_clip("upload-page-720p-6s.mp4", seconds=6, size="1280x720")
    size = clip.stat().st_size
    assert size > 4 * CHUNK
    patches: list[str] = []

    def flaky_network(route: Route) -> None:
        # Two chunks get through, then the connection "drops" for every later PATCH.
        if route.request.method == "PATCH":
            patches.append(route.request.url)
            if len(patches) > 2:
                route.abort()
                return
        route.continue_()

    page.route("**/api/v1/uploads**", flaky_network)
    page.goto(f"{sqlite_server.url}/upload")
    page.evaluate(f"document.body.dataset.chunkSize = '{CHUNK}'")
    page.fill("#token", sqlite_server.token)
    page.fill("#title", "From the browser")
    page.set_input_files("#file", str(clip))
    page.click("#start")
    page.wait_for_function(
        f"() => Number(document.body.dataset.uploaded || 0) >= {2 * CHUNK}", timeout=30_000
    )
    page.wait_for_function("() => document.body.dataset.uploadState === 'error'", timeout=30_000)

    upload_url = patches[0]
    with sqlite_server.client() as c:
        before: dict[str, Any] = c.get(upload_url, headers={"Accept": "application/json"}).json()[
            "data"
        ]
    assert before["status"] == "waiting" and 0 < before["offset"] < size, before

    page.unroute("**/api/v1/uploads**")
    page.reload()
    page.evaluate(f"document.body.dataset.chunkSize = '{CHUNK}'")
    assert page.input_value("#token") == sqlite_server.token  # remembered
    page.set_input_files("#file", str(clip))
    page.click("#start")
    page.wait_for_function("() => document.body.dataset.resumed === 'true'", timeout=10_000)
    page.wait_for_function(
        "() => ['ready', 'errored'].includes(document.body.dataset.uploadState)", timeout=120_000
    )
    assert page.evaluate("document.body.dataset.uploadState") == "ready", str(console)
    asset_id = page.evaluate("document.body.dataset.assetId")
    with sqlite_server.client() as c:
        up = c.get(upload_url, headers={"Accept": "application/json"}).json()["data"]
        asset = c.get(f"/api/v1/assets/{asset_id}").json()["data"]
    assert up["status"] == "asset_created" and up["asset_id"] == asset_id
    assert asset["title"] == "From the browser"
    assert sqlite_server.store().get_bytes(f"assets/{asset_id}/source") == clip.read_bytes()
    assert page.locator("#result a[href^='/watch/']").count() == 1


def test_a_signed_in_creator_uploads_into_their_channel_with_the_session(
    page: Page, console: Console, sqlite_server: Server
) -> None:
    email, password = "browser-maker@example.org", "correct horse battery"
    db = Database(Settings(data_dir=sqlite_server.data_dir).effective_database_url)
    try:
        with db.session() as s:
            create_user(s, email, password, "creator", email_verified=True)
    finally:
        db.dispose()
    page.goto(f"{sqlite_server.url}/signin?next=/studio")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url("**/studio")
    page.fill("#new-channel input[name=name]", "Browser channel")
    page.click("#new-channel button[type=submit]")
    page.wait_for_selector("#channels li[data-channel-id]")
    channel_id = page.get_attribute("#channels li[data-channel-id]", "data-channel-id")

    page.goto(f"{sqlite_server.url}/upload")
    assert page.locator("#token").count() == 0  # the session, not a pasted token
    assert page.input_value("#channel") == channel_id
    clip = make_clip("upload-session-2s.mp4", seconds=2, size="320x180")
    page.fill("#title", "Uploaded with the session")
    page.set_input_files("#file", str(clip))
    page.click("#start")
    page.wait_for_function(
        "() => ['ready', 'errored', 'error'].includes(document.body.dataset.uploadState)",
        timeout=120_000,
    )
    assert page.evaluate("document.body.dataset.uploadState") == "ready", str(console)
    asset_id = page.evaluate("document.body.dataset.assetId")
    with sqlite_server.client() as c:
        asset = c.get(f"/api/v1/assets/{asset_id}").json()["data"]
    assert asset["title"] == "Uploaded with the session" and asset["channel_id"] == channel_id
    page.goto(f"{sqlite_server.url}/studio")
    assert page.locator(f'#studio-assets tr[data-asset-id="{asset_id}"]').count() == 1
