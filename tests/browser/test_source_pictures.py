"""Chromium plays an anamorphic PAL source and an HLG HDR source through hls.js at the shape
they are meant to be seen: square-pixel renditions at the display aspect."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from mediaplane.clips import H264, Clip, picture
from tests.browser.test_playback import (
    HLSJS_PAGE,
    PLAYER_JS,
    OtherOrigin,
    _other_origin_page,
    _wait_for_playback,
)
from tests.support import MEDIA_CACHE, Server

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser

#: kind → (the clip, a file name, the display aspect): 3 s, silent.
SOURCES = {
    # 720×576 with 64:45 pixels: PAL 16:9, as DVDs and SD broadcast carry it.
    "pal-anamorphic": (
        Clip(
            seconds=3,
            video=picture("720x576", 25),
            audio=(),
            codecs=("-vf", "setsar=64/45", *H264),
        ),
        "browser-pal-16x9-3s.mp4",
        16 / 9,
    ),
    # An iPhone's default: HLG HEVC 10-bit, BT.2020.
    "hlg": (
        Clip(
            seconds=3,
            video=picture("480x270", 30),
            audio=(),
            codecs=(
                *("-c:v", "libx265", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p10le"),
                *("-color_primaries", "bt2020", "-color_trc", "arib-std-b67"),
                *("-colorspace", "bt2020nc", "-tag:v", "hvc1"),
            ),
        ),
        "browser-hlg-hevc10-3s.mp4",
        16 / 9,
    ),
}


@pytest.fixture(scope="module")
def other_origin() -> Iterator[OtherOrigin]:
    missing = [str(p) for p in PLAYER_JS.values() if not p.is_file()]
    if missing:
        pytest.fail(f"player JS missing (run `npm ci`): {missing}")
    site = OtherOrigin()
    yield site
    site.close()


@pytest.fixture(scope="module")
def assets(sqlite_server: Server) -> dict[str, dict[str, Any]]:
    uploaded = {}
    for kind, (clip, name, _) in SOURCES.items():
        path = clip.make(MEDIA_CACHE / name, timeout=300)
        uploaded[kind] = sqlite_server.upload(path, title=kind)
    done = {k: sqlite_server.wait(a["id"]) for k, a in uploaded.items()}
    for kind, asset in done.items():
        assert asset["status"] == "ready", (kind, asset)
    return done


@pytest.mark.parametrize("kind", list(SOURCES))
def test_hlsjs_plays_the_display_shape(
    kind: str,
    sqlite_server: Server,
    assets: dict[str, dict[str, Any]],
    other_origin: OtherOrigin,
    page: Page,
    console: Console,
) -> None:
    asset = assets[kind]
    src = f"{sqlite_server.url}/play/{asset['playback_ids'][0]['id']}/master.m3u8"
    url = _other_origin_page(other_origin, sqlite_server, f"pictures-{kind}.html", HLSJS_PAGE, src)
    page.goto(url)
    state = _wait_for_playback(page, console)
    width, height, aspect = state["videoWidth"], state["videoHeight"], SOURCES[kind][2]
    # The decoded picture is the display shape (within the rounding to even sizes).
    assert abs(width / height - aspect) < 0.01, (kind, width, height)
    if kind == "hlg":
        assert asset["source"]["video"]["hdr"] == "hlg"
