"""Browser fixtures: the SYSTEM Chromium driven by Playwright (never `playwright install`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import skip_or_fail

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Muted autoplay is allowed anyway; this keeps headless playback from waiting on a gesture.
    "--autoplay-policy=no-user-gesture-required",
    # WebRTC (test_live_webrtc.py): a fake camera and microphone, granted without a prompt,
    # and host ICE candidates as addresses (not mDNS names, which need multicast to resolve),
    # loopback (127.0.0.1) among them: the pages offer only those (see LOOPBACK_ONLY).
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
]


#: JS ``loopbackOnly(sdp)``: the SDP with only its 127.0.0.1 ICE candidates. WebRTC pages
#: offer that (Chromium runs with --allow-loopback-in-peer-connection, the test server with
#: webrtc_ice_addresses=127.0.0.1), so no connectivity check goes anywhere but 127.0.0.1.
LOOPBACK_ONLY = """const loopbackOnly = (sdp) => sdp.split("\\r\\n").filter(
  (l) => !l.startsWith("a=candidate:") || l.split(" ")[4] === "127.0.0.1").join("\\r\\n");"""

#: The ICE candidate pairs of window.pc (Chromium's getStats): the selected one and all.
ICE_PAIRS = """async () => {
  const stats = await window.pc.getStats();
  const cand = (id) => { const c = stats.get(id);
    return c ? {address: c.address, type: c.candidateType} : null; };
  const pair = (p) => ({local: cand(p.localCandidateId), remote: cand(p.remoteCandidateId),
                        state: p.state});
  let selected = null; const all = [];
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId)
      selected = pair(stats.get(s.selectedCandidatePairId));
    if (s.type === "candidate-pair") all.push(pair(s));
  });
  return {selected, all};
}"""


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    # Package scope: Playwright's sync API runs an event loop in this thread, which must be
    # closed before asyncio tests elsewhere in the session run.
    executable = shutil.which("chromium")
    if executable is None:
        skip_or_fail("the system Chromium (`chromium`) is not on PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - it is a dev dependency
        skip_or_fail("the `playwright` Python package is not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Console:
    """Every console message, page error and failed request of a page, for failure messages."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.lines.append(f"[pageerror] {exc}"))
        page.on(
            "requestfailed",
            lambda req: self.lines.append(f"[requestfailed] {req.url} {req.failure}"),
        )

    def _console(self, msg: ConsoleMessage) -> None:
        self.lines.append(f"[{msg.type}] {msg.text}")

    def __str__(self) -> str:
        return "\n".join(self.lines[-200:]) or "(no console output)"


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    # Everything stays on the loopback: refuse any request that would leave 127.0.0.1.
    ctx.route("**/*", _loopback_only)
    try:
        yield ctx
    finally:
        ctx.close()


def _loopback_only(route: Any) -> None:
    url: str = route.request.url
    if url.startswith(("http://127.0.0.1:", "http://127.0.0.1/", "data:", "blob:")):
        route.continue_()
    else:
        route.abort("blockedbyclient")


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(context: BrowserContext, console: Console) -> Page:
    p = context.new_page()
    console.attach(p)
    return p
