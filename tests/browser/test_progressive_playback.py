"""A viewer presses play while the ladder is still encoding: playback starts at the
beginning of the growing HLS playlist and plays through without a stall."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.test_playback import HLSJS_PAGE, OtherOrigin, other_origin  # noqa: F401
from tests.support import Server, embedded_backend, make_clip, start_server

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser

WATCH = """() => {
  const v = document.querySelector("video");
  if (!v || window.__watch) return;
  window.__watch = { waiting: 0, playing: false, first: null, ended: false };
  v.addEventListener("playing", () => {
    window.__watch.playing = true;
    if (window.__watch.first === null) window.__watch.first = v.currentTime;
  });
  v.addEventListener("waiting", () => {
    if (window.__watch.playing) { window.__watch.waiting++; window.__watch.at = v.currentTime; }
  });
  v.addEventListener("ended", () => { window.__watch.ended = true; });
}"""

STATE = """() => {
  const v = document.querySelector("video");
  const q = v.getVideoPlaybackQuality();
  return { t: v.currentTime, error: v.error && v.error.code, frames: q.totalVideoFrames,
           watch: window.__watch, fatal: (window.result || {fatal: []}).fatal,
           duration: v.duration };
}"""


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("progressive-browser"), embedded_backend(), x264_preset="veryfast"
    )
    yield s
    s.stop()


def _play_through(page: Page, console: Console, until: float) -> dict[str, Any]:
    page.wait_for_function("() => document.querySelector('video') !== null", timeout=30_000)
    page.evaluate(WATCH)
    page.wait_for_function(
        f"""() => {{ const v = document.querySelector("video");
            return v.currentTime > {until} || v.error !== null || (window.__watch && window.__watch.ended)
                || (window.result && window.result.fatal.length > 0); }}""",
        timeout=90_000,
    )
    state: dict[str, Any] = page.evaluate(STATE)
    detail = f"{json.dumps(state)}\nconsole:\n{console}"
    assert state["error"] is None, detail
    assert state["fatal"] == [], detail
    assert state["frames"] > 0, detail
    assert state["watch"]["first"] is not None and state["watch"]["first"] < 1.0, (
        f"did not start from the beginning\n{detail}"
    )
    assert state["watch"]["waiting"] == 0, f"playback stalled\n{detail}"
    return state


def test_hlsjs_plays_while_encoding(
    page: Page,
    console: Console,
    slow_server: Server,
    other_origin: OtherOrigin,  # noqa: F811
    tmp_path: Path,
) -> None:
    clip = make_clip("progressive-1080p-20s.mp4", seconds=20, size="1920x1080")
    asset = slow_server.wait(slow_server.upload(clip, title="press play now")["id"], playable=True)
    assert asset["progress"] < 100
    src = f"{slow_server.url}/play/{asset['playback_ids'][0]['id']}/master.m3u8"
    page.goto(
        other_origin.page(
            "progressive.html", HLSJS_PAGE.format(title="progressive", src=json.dumps(src))
        )
    )
    _play_through(page, console, until=10.0)
    with slow_server.client() as c:
        now = c.get(f"/api/v1/assets/{asset['id']}").json()["data"]
    assert now["status"] == "ready"


def test_watch_page_plays_while_encoding(
    page: Page, console: Console, slow_server: Server, tmp_path: Path
) -> None:
    clip = make_clip("progressive-1080p-20s.mp4", seconds=20, size="1920x1080")
    asset = slow_server.wait(slow_server.upload(clip, title="watch now")["id"], playable=True)
    assert asset["progress"] < 100
    page.goto(f"{slow_server.url}/watch/{asset['playback_ids'][0]['id']}")
    _play_through(page, console, until=8.0)
    assert page.evaluate("window.mediaplane.loaded").endswith("master.m3u8")
