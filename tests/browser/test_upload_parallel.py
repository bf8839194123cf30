"""The upload page with ``?parallel=2``: tus-js-client sends the file as two partial
uploads at once and joins them with a final upload (tus concatenation); the final one,
and only it, becomes a playable asset whose source is the file, byte for byte."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.support import Server, make_clip

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser

CHUNK = 256 * 1024


def test_parallel_upload_from_the_browser(
    page: Page, console: Console, sqlite_server: Server
) -> None:
    clip = make_clip("upload-page-720p-6s.mp4", seconds=6, size="1280x720")
    assert clip.stat().st_size > 4 * CHUNK  # each partial takes several PATCHes
    creations: list[str] = []

    def on_request(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/api/v1/uploads"):
            creations.append(request.headers.get("upload-concat", ""))

    page.on("request", on_request)
    page.goto(f"{sqlite_server.url}/upload?parallel=2")
    page.evaluate(f"document.body.dataset.chunkSize = '{CHUNK}'")
    page.fill("#token", sqlite_server.token)
    page.fill("#title", "Two at once")
    page.set_input_files("#file", str(clip))
    page.click("#start")
    page.wait_for_function(
        "() => ['ready', 'errored', 'error'].includes(document.body.dataset.uploadState)",
        timeout=120_000,
    )
    assert page.evaluate("document.body.dataset.uploadState") == "ready", str(console)
    assert creations[:2] == ["partial", "partial"], creations
    assert len(creations) == 3 and creations[2].startswith("final;"), creations
    partial_urls = creations[2].removeprefix("final;").split()
    assert len(partial_urls) == 2
    asset_id = page.evaluate("document.body.dataset.assetId")
    with sqlite_server.client() as c:
        asset: dict[str, Any] = c.get(f"/api/v1/assets/{asset_id}").json()["data"]
        parts = [c.get(u).json()["data"] for u in partial_urls]
    assert asset["title"] == "Two at once"
    assert [p["status"] for p in parts] == ["concatenated", "concatenated"]
    assert {p["asset_id"] for p in parts} == {asset_id}
    assert sum(p["length"] for p in parts) == clip.stat().st_size
    assert sqlite_server.store().get_bytes(f"assets/{asset_id}/source") == clip.read_bytes()
    assert page.locator("#result a[href^='/watch/']").count() == 1
