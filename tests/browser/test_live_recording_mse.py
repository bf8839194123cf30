"""A recording that joins publishes of different picture sizes (320x180, 480x270, 320x180:
a reconnect from another encoder setting) plays through in Chromium's MSE: the rendition is
``avc3`` with each publish's SPS/PPS in band (mediaplane.live._inband), the samples as the
live packager wrote them. The page appends the init segment and every segment, plays, and
jumps the small gaps (< 0.2 s) between publishes as hls.js and shaka do."""

from __future__ import annotations

import concurrent.futures
import functools
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page

from mediaplane.live import read_recording
from tests.support import make_clip
from tests.unit.live.test_live_recording import SECONDS, _flv, _record_publishes

PAGE = """<!doctype html><video id=v muted></video><script>
const v = document.getElementById('v'), N = %d;
window.sizes = []; window.err = null;
v.addEventListener('resize', () => window.sizes.push(v.videoWidth + 'x' + v.videoHeight));
v.addEventListener('error', () => window.err = String(v.error && v.error.message));
const ms = new MediaSource(); v.src = URL.createObjectURL(ms);
ms.addEventListener('sourceopen', async () => {
  const sb = ms.addSourceBuffer('video/mp4; codecs="%s"');
  const add = b => new Promise(r => { sb.addEventListener('updateend', r, {once: true});
                                      sb.appendBuffer(b); });
  for (const u of ['init.mp4', ...Array.from({length: N}, (_, i) => i + '.m4s')])
    await add(await (await fetch(u)).arrayBuffer());
  ms.endOfStream(); v.playbackRate = 4; v.play();
  setInterval(() => {  // a player's gap jumping
    for (let i = 0; i < v.buffered.length; i++) {
      const s = v.buffered.start(i);
      if (s > v.currentTime && s - v.currentTime < 0.2) v.currentTime = s + 0.001;
    }
  }, 100);
});
</script>"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, str]]:
    """The recording's video served on the loopback: (URL, segments, codecs)."""
    gop = ["-g", "15", "-keyint_min", "15", "-sc_threshold", "0", "-f", "flv"]
    other = make_clip("live-6s-480.flv", seconds=SECONDS, size="480x270", rate=30, extra=gop)
    out = tmp_path_factory.mktemp("recording-mse")
    # In a thread: Playwright's sync API runs an event loop in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(_record_publishes, out / "session", [_flv(), other, _flv()]).result()
    video = read_recording(out / "session")[0]
    web = out / "web"
    web.mkdir()
    assert video.init_bytes is not None  # avc3
    (web / "init.mp4").write_bytes(video.init_bytes)
    for i, path in enumerate(video.segments):
        (web / f"{i}.m4s").write_bytes(video.segment_bytes(i) or path.read_bytes())
    codecs = video.rendition.codecs
    (web / "index.html").write_text(PAGE % (len(video.segments), codecs))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(web))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html", len(video.segments), codecs
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_recording_of_two_picture_sizes_plays_through(
    page: Page, recording: tuple[str, int, str], console: Any
) -> None:
    url, _, codecs = recording
    assert codecs.startswith("avc3.")
    page.goto(url)
    page.wait_for_function("document.getElementById('v').ended || window.err", timeout=30_000)
    state = page.evaluate(
        """() => { const v = document.getElementById('v');
                   const q = v.getVideoPlaybackQuality();
                   return {err: window.err, sizes: window.sizes, t: v.currentTime,
                           d: v.duration, frames: q.totalVideoFrames}; }"""
    )
    assert state["err"] is None, (state, str(console))
    assert state["sizes"] == ["320x180", "480x270", "320x180"], state
    assert state["t"] == pytest.approx(state["d"], abs=0.1)
    assert state["frames"] == pytest.approx(3 * SECONDS * 30, abs=20)
