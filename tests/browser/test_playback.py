"""Real playback in the system Chromium: hls.js and shaka-player from another origin, the
/watch page, and the home page's htmx polling. Every request stays on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import duckdb
import pytest

from tests.support import ROOT, Server, make_clip, until

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser

NODE_MODULES = ROOT / "node_modules"
PLAYER_JS = {
    "/hls.min.js": NODE_MODULES / "hls.js" / "dist" / "hls.min.js",
    "/shaka-player.compiled.js": NODE_MODULES / "shaka-player/dist/shaka-player.compiled.js",
    "/dash.all.min.js": NODE_MODULES / "dashjs/dist/modern/umd/dash.all.min.js",
}
WAIT_MS = 30_000
PLAYED_SECONDS = 1.5


# --- a second origin: a tiny static site on another loopback port ---------------------------


class OtherOrigin:
    """A static site on its own free 127.0.0.1 port (a different origin than Mediaplane)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        for path, src in PLAYER_JS.items():
            if src.is_file():
                self.files[path] = (src.read_bytes(), "text/javascript")
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, ctype = files.get(self.path.split("?", 1)[0], (b"not found", "text/plain"))
                self.send_response(200 if ctype != "text/plain" else 404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def page(self, name: str, html: str) -> str:
        self.files[f"/{name}"] = (html.encode(), "text/html; charset=utf-8")
        return f"{self.url}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def other_origin() -> Iterator[OtherOrigin]:
    missing = [str(p) for p in PLAYER_JS.values() if not p.is_file()]
    if missing:
        pytest.fail(f"player JS missing (run `npm ci`): {missing}")
    site = OtherOrigin()
    yield site
    site.close()


@pytest.fixture(scope="module")
def ready_asset(sqlite_server: Server) -> dict[str, Any]:
    clip = make_clip("browser-720p-4s.mp4", seconds=4, size="1280x720")
    asset = sqlite_server.upload(clip, title="Browser playback")
    done = sqlite_server.wait(asset["id"])
    assert done["status"] == "ready", done
    return done


def _pid(asset: dict[str, Any]) -> str:
    return str(asset["playback_ids"][0]["id"])


# --- playback criteria, shared by every player -----------------------------------------------

PAGE_HEAD = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>
<body><video id="video" muted autoplay playsinline width="640" height="360"></video>
<script>window.result = {{ errors: [], fatal: [], loaded: false }};</script>
"""

HLSJS_PAGE = (
    PAGE_HEAD
    + """<script src="/hls.min.js"></script>
<script>
  const video = document.getElementById("video");
  const src = {src};
  if (!Hls.isSupported()) {{ window.result.fatal.push("Hls.isSupported() is false"); }}
  else {{
    const hls = new Hls();
    window.hls = hls;
    hls.on(Hls.Events.ERROR, (event, data) => {{
      const entry = {{ type: data.type, details: data.details, fatal: data.fatal,
                      url: data.url || (data.frag && data.frag.url) || null }};
      window.result.errors.push(entry);
      if (data.fatal) window.result.fatal.push(entry);
    }});
    hls.on(Hls.Events.MANIFEST_PARSED, () => {{
      window.result.loaded = true;
      video.play().catch((e) => window.result.playError = String(e));
    }});
    hls.loadSource(src);
    hls.attachMedia(video);
  }}
</script></body></html>
"""
)

SHAKA_PAGE = (
    PAGE_HEAD
    + """<script src="/shaka-player.compiled.js"></script>
<script>
  (async () => {{
    const video = document.getElementById("video");
    const src = {src};
    shaka.polyfill.installAll();
    if (!shaka.Player.isBrowserSupported()) {{
      window.result.fatal.push("shaka.Player.isBrowserSupported() is false"); return;
    }}
    const player = new shaka.Player();
    window.player = player;
    player.addEventListener("error", (e) => {{
      const entry = {{ code: e.detail.code, category: e.detail.category,
                      severity: e.detail.severity, data: String(e.detail.data) }};
      window.result.errors.push(entry);
      window.result.fatal.push(entry);
    }});
    try {{
      await player.attach(video);
      await player.load(src);
      window.result.loaded = true;
      await video.play().catch((e) => window.result.playError = String(e));
    }} catch (e) {{
      window.result.fatal.push({{ load: String(e), code: e && e.code }});
    }}
  }})();
</script></body></html>
"""
)

# Stop waiting as soon as playback went far enough OR something failed, whichever comes first.
PLAYED_OR_FAILED = f"""() => {{
  const v = document.querySelector("video");
  const r = window.result;
  return (v && v.currentTime > {PLAYED_SECONDS}) || (v && v.error !== null)
      || (r && r.fatal.length > 0);
}}"""

STATE = """() => {
  const v = document.querySelector("video");
  const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
  return {
    currentTime: v ? v.currentTime : null,
    paused: v ? v.paused : null,
    readyState: v ? v.readyState : null,
    videoWidth: v ? v.videoWidth : null,
    videoHeight: v ? v.videoHeight : null,
    error: v && v.error ? { code: v.error.code, message: v.error.message } : null,
    totalVideoFrames: q ? q.totalVideoFrames : null,
    droppedVideoFrames: q ? q.droppedVideoFrames : null,
    result: window.result || null,
  };
}"""


def _wait_for_playback(page: Page, console: Console) -> dict[str, Any]:
    """Bounded wait until the <video> played past PLAYED_SECONDS, then check the criteria."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(PLAYED_OR_FAILED, timeout=WAIT_MS)
    except PlaywrightTimeout:
        state = page.evaluate(STATE)
        pytest.fail(
            f"no playback within {WAIT_MS / 1000:.0f} s: {json.dumps(state)}\nconsole:\n{console}"
        )
    state: dict[str, Any] = page.evaluate(STATE)
    detail = f"{json.dumps(state, indent=1)}\nconsole:\n{console}"
    assert state["error"] is None, f"video.error is set\n{detail}"
    result = state["result"]
    if result is not None:
        assert result["fatal"] == [], f"player reported fatal errors\n{detail}"
    assert state["currentTime"] > PLAYED_SECONDS, detail
    assert state["totalVideoFrames"] > 0, f"no video frames were decoded\n{detail}"
    assert (state["videoWidth"], state["videoHeight"]) != (0, 0), detail
    return state


def _other_origin_page(
    other_origin: OtherOrigin, server: Server, name: str, template: str, src: str
) -> str:
    assert other_origin.url != server.url  # same host, different port: a different origin
    return other_origin.page(name, template.format(title=name, src=json.dumps(src)))


# --- tests -----------------------------------------------------------------------------------


def test_hlsjs_plays_hls_from_another_origin(
    page: Page,
    console: Console,
    sqlite_server: Server,
    other_origin: OtherOrigin,
    ready_asset: dict[str, Any],
) -> None:
    src = f"{sqlite_server.url}/play/{_pid(ready_asset)}/master.m3u8"
    url = _other_origin_page(other_origin, sqlite_server, "hlsjs.html", HLSJS_PAGE, src)
    page.goto(url)
    _wait_for_playback(page, console)


@pytest.mark.parametrize(("manifest", "kind"), [("manifest.mpd", "DASH"), ("master.m3u8", "HLS")])
def test_shaka_plays_from_another_origin(
    page: Page,
    console: Console,
    sqlite_server: Server,
    other_origin: OtherOrigin,
    ready_asset: dict[str, Any],
    manifest: str,
    kind: str,
) -> None:
    src = f"{sqlite_server.url}/play/{_pid(ready_asset)}/{manifest}"
    name = f"shaka-{kind.lower()}.html"
    url = _other_origin_page(other_origin, sqlite_server, name, SHAKA_PAGE, src)
    page.goto(url)
    state = _wait_for_playback(page, console)
    assert state["result"]["errors"] == [], f"shaka error events: {state}\nconsole:\n{console}"
    assert page.evaluate("window.player.getManifestType()") == kind


def test_watch_page_plays(
    page: Page, console: Console, sqlite_server: Server, ready_asset: dict[str, Any]
) -> None:
    response = page.goto(f"{sqlite_server.url}/watch/{_pid(ready_asset)}")
    assert response is not None
    assert response.status == 200
    _wait_for_playback(page, console)
    loaded = page.evaluate("window.mediaplane && window.mediaplane.loaded")
    assert isinstance(loaded, str), f"window.mediaplane.loaded is {loaded!r}\n{console}"
    assert loaded.endswith("manifest.mpd"), (
        f"watch page loaded {loaded!r}, not the DASH manifest\nconsole:\n{console}"
    )
    # the QoE snippet follows the watch page's shaka-player: its beacons and shaka's CMCD
    page.evaluate("window.mediaplane.qoe.end()")
    view = _landed_view(
        sqlite_server, ready_asset, page.evaluate("window.mediaplane.qoe.viewId"), console
    )
    assert view["player"] == "shaka-player" and view["startup_time_ms"] is not None, view
    assert view["renditions"] and view["cmcd_average_bitrate_kbps"] > 0, view
    error_box = page.locator("#player-error")
    assert error_box.count() == 1
    assert error_box.is_hidden(), f"#player-error shown: {error_box.text_content()!r}\n{console}"
    page.screenshot(path="/tmp/watch.png")


def test_home_page_lists_asset_and_polls_until_ready(
    page: Page, console: Console, sqlite_server: Server
) -> None:
    # Long enough at 720p that the page is open while the asset is still preparing.
    clip = make_clip("browser-720p-20s.mp4", seconds=20, size="1280x720")
    asset = sqlite_server.upload(clip, title="Browser polling")
    assert asset["status"] == "preparing"
    started = time.monotonic()
    page.goto(f"{sqlite_server.url}/")
    card = page.locator(f'article[data-asset-id="{asset["id"]}"]')
    assert card.count() == 1, f"no card for {asset['id']}\n{page.content()[:4000]}\n{console}"
    initial = card.get_attribute("data-progress")
    assert initial is not None and float(initial) < 100, (
        f"the asset was fully processed ({initial!r}) when / first rendered "
        f"({time.monotonic() - started:.1f} s after upload): too fast to exercise polling"
    )
    assert page.locator("#assets[hx-get]").count() == 1, "no htmx polling while processing"
    page.evaluate("window.__noReload = true")  # gone if the page navigates or reloads

    selector = f'article[data-asset-id="{asset["id"]}"][data-status="ready"][data-progress="100"]'
    try:
        page.wait_for_selector(selector, timeout=120_000)
    except Exception as exc:
        status = card.get_attribute("data-status") if card.count() else None
        pytest.fail(
            f"card never became ready (last data-status {status!r}): {exc}\n"
            f"server log tail:\n{sqlite_server.log()[-3000:]}\nconsole:\n{console}"
        )
    assert page.locator("#assets[hx-get]").count() == 0, "still polling when all is done"
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"
    # The API agrees, and the swapped-in card links to the watch page.
    with sqlite_server.client() as c:
        assert c.get(f"/api/v1/assets/{asset['id']}").json()["data"]["status"] == "ready"
    ready_card = page.locator(selector)
    assert ready_card.locator('a[href^="/watch/"]').count() >= 1


QOE_PAGE = (
    PAGE_HEAD
    + """<script src="/hls.min.js"></script>
<script src="{server}/static/mediaplane-qoe.js"></script>
<script>
  const video = document.getElementById("video");
  const qoe = MediaplaneQoE.view({{ playbackId: {pid}, flushSeconds: 1, heartbeatSeconds: 1 }});
  const hls = new Hls(qoe.hlsConfig());
  window.qoe = qoe;
  hls.on(Hls.Events.ERROR, (event, data) => {{
    if (data.fatal) window.result.fatal.push({{ details: data.details }});
  }});
  hls.on(Hls.Events.MANIFEST_PARSED, () => {{ video.play().catch(() => {{}}); }});
  qoe.attach(video, hls);
  hls.loadSource({src});
  hls.attachMedia(video);
</script></body></html>
"""
)


def _landed_view(
    server: Server, asset: dict[str, Any], view_id: str, console: Console
) -> dict[str, Any]:
    """The view once the views API shows it ended and with CMCD requests."""
    with server.client() as c:

        def landed() -> dict[str, Any] | None:
            r = c.get("/api/v1/data/views", params={"asset_id": asset["id"]})
            assert r.status_code == 200, r.text
            found = [v for v in r.json()["data"] if v["view_id"] == view_id]
            return found[0] if found and found[0]["ended"] and found[0]["cmcd_requests"] else None

        view: dict[str, Any] = until(f"view {view_id} in the views API\n{console}", landed, 30)
    return view


def test_qoe_snippet_sends_beacons_and_cmcd_from_another_origin(
    page: Page,
    console: Console,
    sqlite_server: Server,
    other_origin: OtherOrigin,
    ready_asset: dict[str, Any],
) -> None:
    """The documented snippet on another site's hls.js page: its beacons (CORS) and the
    player's CMCD reach the server, and the views API shows the session."""
    pid = _pid(ready_asset)
    cmcd_urls: list[str] = []
    page.on("request", lambda r: cmcd_urls.append(r.url) if "CMCD=" in r.url else None)
    html = QOE_PAGE.format(
        title="qoe",
        server=sqlite_server.url,
        pid=json.dumps(pid),
        src=json.dumps(f"{sqlite_server.url}/play/{pid}/master.m3u8"),
    )
    page.goto(other_origin.page("qoe.html", html))
    _wait_for_playback(page, console)
    page.evaluate("window.qoe.end()")  # the view ends: what is queued is sent now
    view_id = page.evaluate("window.qoe.viewId")
    assert any(f"sid%3D%22{view_id}%22" in u for u in cmcd_urls), cmcd_urls[:3]

    v = _landed_view(sqlite_server, ready_asset, view_id, console)
    assert v["player"] == "hls.js" and v["player_version"], v
    assert v["startup_time_ms"] is not None and 0 < v["startup_time_ms"] < 30_000, v
    assert v["watch_time_s"] > 1.0 and v["errors"] == 0, v
    assert v["renditions"] and v["average_bitrate"] > 0, v
    assert v["cmcd_requests"] >= 2 and v["cmcd_average_bitrate_kbps"] > 0, v
    # the player's size (device pixels) beside the rendition's, for up/downscale percentages
    files = str(sqlite_server.data_dir / "objects" / "analytics" / "events" / "**" / "*.parquet")
    sizes = duckdb.sql(
        "SELECT type, player_height, height FROM read_parquet(?, union_by_name = true) "
        "WHERE view_id = ? AND type IN ('view_start', 'heartbeat')",
        params=[files, view_id],
    ).fetchall()
    assert sizes and all(p is not None and p > 0 for _, p, _ in sizes), sizes
    assert any(t == "heartbeat" and h for t, _, h in sizes), sizes  # the rendition's height
