"""The lean playback path answers exactly as the FastAPI routes do.

A playback id's first request after the origin's lookup cache expires goes through the routes
(database lookup in a thread); the next one, with the lookup cached, through PlayOrigin. Each
pair below is sent back to back after the cache expired, and the two answers must agree in
status, body and headers (bar the date and the request id).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import m3u8
import pytest

from tests.support import Server, make_clip

LOOKUP_TTL = 5.0  # delivery._service.LOOKUP_TTL
VOLATILE = {"date", "x-request-id"}


@pytest.fixture(scope="module")
def played(sqlite_server: Server) -> dict[str, Any]:
    clip = make_clip("origin-paths-360p-4s.mp4", seconds=4, size="640x360")
    done = sqlite_server.wait(sqlite_server.upload(clip, title="origin paths")["id"])
    assert done["status"] == "ready", done
    base = f"{sqlite_server.url}/play/{done['playback_ids'][0]['id']}"
    master = m3u8.loads(httpx.get(base + "/master.m3u8").text, uri=base + "/master.m3u8")
    media = master.playlists[0].absolute_uri
    segment = m3u8.loads(httpx.get(media).text, uri=media).segments[0].absolute_uri
    return {"base": base, "media": media, "segment": segment}


def _answer(r: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in r.headers.items() if k not in VOLATILE}
    return r.status_code, r.content, headers


@pytest.mark.parametrize(
    ("url", "method", "headers"),
    [
        ("master", "GET", {}),
        ("master", "GET", {"Origin": "http://127.0.0.2:9999"}),
        ("mpd", "HEAD", {}),
        ("media", "GET", {"If-None-Match": "ETAG"}),
        ("segment", "GET", {"Origin": "http://127.0.0.2:9999"}),
        ("segment", "GET", {"Range": "bytes=100-199"}),
        ("segment", "HEAD", {}),
        ("init", "GET", {}),
        ("missing", "GET", {}),
    ],
)
def test_lean_path_matches_routes(
    played: dict[str, Any], url: str, method: str, headers: dict[str, str]
) -> None:
    base = played["base"]
    urls = {
        "master": base + "/master.m3u8",
        "mpd": base + "/manifest.mpd",
        "media": played["media"],
        "segment": played["segment"],
        "init": played["media"].rsplit("/", 1)[0] + "/init.mp4",
        "missing": played["media"].rsplit("/", 1)[0] + "/9999.m4s",
    }
    target = urls[url]
    if headers.get("If-None-Match") == "ETAG":
        headers = {"If-None-Match": httpx.get(target).headers["etag"]}
    time.sleep(LOOKUP_TTL + 0.5)  # let the lookup expire: the next request takes the route
    with httpx.Client(timeout=30) as c:
        by_route = c.request(method, target, headers=headers)
        lean = c.request(method, target, headers=headers)
    assert _answer(lean) == _answer(by_route)
    expected = {"missing": 404}.get(url, 304 if "If-None-Match" in headers else 200)
    if "Range" in headers:
        expected = 206
    assert lean.status_code == expected


def test_lean_path_keeps_route_metrics(sqlite_server: Server, played: dict[str, Any]) -> None:
    for _ in range(3):
        assert httpx.get(played["base"] + "/master.m3u8").status_code == 200
        assert httpx.get(played["segment"]).status_code == 200
    text = httpx.get(sqlite_server.url + "/metrics").text
    assert 'route="/play/{playback_id}/master.m3u8"' in text
    assert 'route="/play/{playback_id}/{rendition}/{name}"' in text
