"""The analytics dashboard in Chromium at a laptop's size (1366x768): a view session posted
as beacons shows in the totals, the uPlot charts (drawn on their canvas) and the player,
browser and OS tables, the per-asset page and its CSV export; a failed data-quality check
shows on the page; a creator of no channel sees none of it. Screenshots land in the test's
tmp dir."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from mediaplane.accounts import create_user
from mediaplane.config import Settings
from mediaplane.db import Database
from mediaplane.events import EventType, emit
from tests.support import make_clip, until

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console
    from tests.support import Server

EMAIL = "analytics-admin@example.org"
CREATOR = "analytics-creator@example.org"  # of no channel: none of the asset's views
PASSWORD = "counting the views"
UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15"
)
#: The canvas pixels uPlot drew (not transparent) in a chart's figure.
DRAWN_PIXELS = """(el) => {
  const c = el.querySelector("canvas");
  if (!c) return 0;
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}"""


def _session(server: Server, playback_id: str) -> str:
    """One view (shaka-player on Safari): start, first frame at 1.2 s, a stall, heartbeats."""
    now = int(time.time() * 1000)
    view = "dash-" + uuid.uuid4().hex[:12]
    t = now - 60_000
    events = [
        {"type": "view_start", "ts": t},
        {"type": "first_frame", "ts": t + 1200, "startup_ms": 1200},
        {"type": "rendition_switch", "ts": t + 1200, "rendition": "720p", "bitrate": 2_800_000},
        {"type": "heartbeat", "ts": t + 11_200, "rendition": "720p", "bitrate": 2_800_000,
         "watched_ms": 10_000},
        {"type": "rebuffer_start", "ts": t + 12_000},
        {"type": "rebuffer_end", "ts": t + 13_000, "duration_ms": 1000},
        {"type": "heartbeat", "ts": t + 23_000, "rendition": "720p", "bitrate": 2_800_000,
         "watched_ms": 20_000, "cdn": "edge.cdn.example"},
        {"type": "end", "ts": t + 23_100, "watched_ms": 20_000},
    ]  # fmt: skip
    body = {
        "view_id": view,
        "playback_id": playback_id,
        "player": {"name": "shaka-player", "version": "4.12.0"},
        "viewer_id": "browser-viewer",
        "sent_at": now,
        "events": [{"id": str(n)} | e for n, e in enumerate(events)],
    }
    r = httpx.post(
        server.url + "/api/v1/beacons",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "text/plain", "User-Agent": UA},
    )
    assert r.status_code == 202, r.text
    return view


def _admin_and_a_failed_check(server: Server) -> None:
    db = Database(Settings(data_dir=server.data_dir).effective_database_url)
    try:
        with db.session() as s:
            create_user(s, EMAIL, PASSWORD, "admin", email_verified=True)
            create_user(s, CREATOR, PASSWORD, "creator", email_verified=True)
            failed = {
                "node": "test.mediaplane_analytics.not_null_fct_views_view_id",
                "status": "fail",
            }
            summary = {
                "ok": False,
                "empty_lake": False,
                "error": None,
                "steps": 9,
                "failed": [failed],
            }
            emit(s, EventType.ANALYTICS_QUALITY_FAILED, "analytics_build", "job-browser", summary)
    finally:
        db.dispose()


def test_the_dashboard_shows_a_session(
    sqlite_server: Server, page: Page, console: Console, tmp_path: Path
) -> None:
    server = sqlite_server
    asset = server.upload(make_clip("dash-1s.mp4", seconds=1, size="320x180"), title="Dash clip")
    _session(server, asset["playback_ids"][0]["id"])
    _admin_and_a_failed_check(server)
    with server.client() as c:

        def landed() -> bool | None:
            r = c.get("/api/v1/data/metrics/views", params={"asset_id": asset["id"]})
            return True if r.json()["data"]["rows"][0]["value"] == 1 else None

        until("the session in the lake", landed, timeout=30)

    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{server.url}/signin?next=/analytics")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/analytics")
    assert page.locator("#admin-nav a[href='/analytics']").count() == 1
    page.locator("#chart-views[data-drawn='1'] canvas").wait_for()
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

    # the overview lists the asset; its page is the session's alone
    row = page.locator("#by-asset tr", has_text="Dash clip")
    assert row.count() == 1, console
    row.locator("a").click()
    page.wait_for_url(f"**/analytics?asset_id={asset['id']}*")
    for cid in ("chart-views", "chart-startup", "chart-quality"):
        fig = page.locator(f"#{cid}[data-drawn='1']")
        fig.wait_for()
        assert fig.locator(".uplot").count() == 1, console
        assert fig.evaluate(DRAWN_PIXELS) > 500, (cid, console)  # axes, grid, the line
    # the session's numbers in the totals and the breakdowns
    assert page.locator("#totals [data-metric=views] strong").inner_text() == "1"
    assert page.locator("#totals [data-metric=startup_time_p50] strong").inner_text() == "1,200 ms"
    rebuffering = page.locator("#totals [data-metric=rebuffer_ratio] strong").inner_text()
    assert rebuffering == "4.8 %"  # 1 s stalled of 21 s
    assert "shaka-player" in page.locator("#by-player tbody").inner_text()
    assert "Safari" in page.locator("#by-browser tbody").inner_text()
    assert "macOS" in page.locator("#by-os tbody").inner_text()
    assert "720p" in page.locator("#by-rendition tbody").inner_text()
    assert "edge.cdn.example" in page.locator("#by-cdn tbody").inner_text()
    assert page.locator("#by-country tbody tr").count() == 1  # unknown: no trusted header
    assert page.locator("#by-asset").count() == 0  # one asset: no per-asset table
    failed = page.locator("#quality-failed")
    assert "not_null_fct_views_view_id" in failed.inner_text(), console
    # readable on a laptop: nothing wider than the window
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1366, width
    page.screenshot(path=str(tmp_path / "asset.png"), full_page=True)
    assert (tmp_path / "asset.png").stat().st_size > 10_000

    # each table exports as CSV (with the session's cookie)
    href = page.locator("#by-player h2 a").get_attribute("href")
    assert href is not None
    r = page.request.get(server.url + href)
    assert r.status == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(r.text())))
    assert table[0][:3] == ["player", "views", "unique_viewers"]
    assert table[1][:2] == ["shaka-player", "1"]
    assert [line for line in console.lines if "[pageerror]" in line] == []

    # a creator sees their own channels' views only (none here), and no admin menu
    page.context.clear_cookies()
    page.goto(f"{server.url}/signin?next=/analytics")
    page.fill("input[name=email]", CREATOR)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/analytics")
    assert page.locator("#totals [data-metric=views] strong").inner_text() == "0"
    assert "No views in this range." in page.locator("#by-player tbody").inner_text()
    assert page.locator("#admin-nav").count() == 0
    r = page.request.get(f"{server.url}/analytics?asset_id={asset['id']}")
    assert r.status == 404  # another channel's asset does not exist for them
