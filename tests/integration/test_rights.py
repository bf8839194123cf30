"""Source types, the moderation hold and licensed-content rights, enforced at playback.

The shared ``server`` (both backends) has no territory source configured: every viewer's
territory is unknown there. Two dedicated embedded servers trust a header and read a CIDR
table. Rights changes reach playback within the origin's lookup-cache time, so checks after a
PATCH poll (bounded) for the expected answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from tests.support import Server, embedded_backend, make_clip, start_server

SETTLE = 20.0  # seconds; the test servers cache a playback lookup for 1


def _clip() -> Path:
    return make_clip("rights-1s.mp4", seconds=1, size="320x180")


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _create(server: Server, **fields: Any) -> httpx.Response:
    data = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in fields.items()}
    with server.client() as c, _clip().open("rb") as f:
        return c.post("/api/v1/assets", files={"file": ("rights.mp4", f)}, data=data)


def _ready(server: Server, **fields: Any) -> dict[str, Any]:
    r = _create(server, title="rights test", **fields)
    assert r.status_code == 201, r.text
    done = server.wait(r.json()["data"]["id"])
    assert done["status"] == "ready", done
    return done


def _patch(server: Server, asset_id: str, body: dict[str, Any]) -> dict[str, Any]:
    with server.client() as c:
        r = c.patch(f"/api/v1/assets/{asset_id}", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def _code(r: httpx.Response) -> str | None:
    if r.status_code == 200:
        return None
    code: str = r.json()["error"]["code"]
    return code


def _expect(url: str, code: str | None, headers: dict[str, str] | None = None) -> httpx.Response:
    """GET ``url`` until it answers 200 (code None) or 403 with ``code``, within SETTLE."""
    deadline = time.monotonic() + SETTLE
    while True:
        r = httpx.get(url, headers=headers, timeout=30)
        if (r.status_code == 200 and code is None) or (r.status_code == 403 and _code(r) == code):
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}: wanted {code or 200}, got {r.status_code} {r.text}")
        time.sleep(0.25)


def _urls(
    server: Server, asset: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, str]:
    """Every kind of playback URL of a playable asset: manifests, a playlist, segments, a
    thumbnail (found while it plays for a viewer sending ``headers``)."""
    base = f"{server.url}/play/{asset['playback_ids'][0]['id']}"
    with httpx.Client(headers=headers, timeout=30) as c:
        master = m3u8.loads(c.get(base + "/master.m3u8").text, uri=base + "/master.m3u8")
        media = master.playlists[0].absolute_uri
        pl = m3u8.loads(c.get(media).text, uri=media)
    return {
        "master": base + "/master.m3u8",
        "mpd": base + "/manifest.mpd",
        "media": media,
        "init": media.rsplit("/", 1)[0] + "/init.mp4",
        "segment": pl.segments[0].absolute_uri,
        "thumbnail": base + "/thumbnail.jpg?time=0.5&width=160",
    }


# --- the shared server, both backends -----------------------------------------------------


@pytest.fixture(scope="module")
def licensed(server: Server) -> dict[str, Any]:
    """A licensed asset created with rights whose window opens tomorrow."""
    rights = {
        "licensor": "Studio A",
        "contract_id": "C-1",
        "territories": {"allow": ["us", "CA"], "deny": []},
        "available_from": _iso(_now() + timedelta(days=1)),
        "ads_allowed": True,
    }
    r = _create(server, title="licensed", source_type="licensed", rights=rights, passthrough="p-1")
    assert r.status_code == 201, r.text
    created = r.json()["data"]
    assert created["source_type"] == "licensed"
    assert created["moderation"] == "not_required"
    assert created["passthrough"] == "p-1"
    assert created["rights"]["territories"] == {"allow": ["CA", "US"], "deny": []}
    assert created["rights"]["ads_allowed"] is True
    assert created["rights"]["download_allowed"] is False
    done = server.wait(created["id"])
    assert done["status"] == "ready", done
    return done


def test_default_source_type(server: Server) -> None:
    with server.client() as c, _clip().open("rb") as f:
        r = c.post("/api/v1/assets", files={"file": ("plain.mp4", f)})
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert (data["source_type"], data["moderation"], data["rights"]) == (
        "creator_upload",
        "not_required",
        None,
    )
    with server.client() as c:
        assert c.delete(f"/api/v1/assets/{data['id']}").status_code == 204


def test_outside_window_is_refused_everywhere(server: Server, licensed: dict[str, Any]) -> None:
    base = f"{server.url}/play/{licensed['playback_ids'][0]['id']}"
    for path in ("/master.m3u8", "/manifest.mpd", "/thumbnail.jpg"):
        r = httpx.get(base + path)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "outside_availability_window"
        assert "becomes available at" in r.json()["error"]["message"]
        assert r.headers["cache-control"] == "no-store"


def test_rights_changes_apply_to_every_playback_request(
    server: Server, licensed: dict[str, Any]
) -> None:
    aid = licensed["id"]
    base = f"{server.url}/play/{licensed['playback_ids'][0]['id']}"
    now = _now()
    open_window = {
        "available_from": _iso(now - timedelta(days=1)),
        "available_until": _iso(now + timedelta(days=1)),
    }
    # Open window, deny-list only: an unknown territory may play.
    data = _patch(
        server,
        aid,
        {"title": "renamed", "rights": {**open_window, "territories": {"deny": ["FR"]}}},
    )
    assert data["title"] == "renamed"
    assert data["rights"]["territories"] == {"deny": ["FR"]}
    _expect(base + "/master.m3u8", None)
    urls = _urls(server, licensed)
    for url in urls.values():
        r = httpx.get(url)
        assert r.status_code == 200, url
        # Shared caches must not serve media under rights to other territories or late.
        assert r.headers["cache-control"].startswith("private"), url

    # An allow-list: this server has no territory source, so the viewer's territory is
    # unknown and refused; a country header is not trusted when none is configured.
    _patch(server, aid, {"rights": {**open_window, "territories": {"allow": ["US"]}}})
    _expect(urls["master"], "not_available_in_territory")
    for url in urls.values():
        r = httpx.get(url, headers={"X-Test-Country": "US", "CF-IPCountry": "US"})
        assert r.status_code == 403 and _code(r) == "not_available_in_territory", url

    # A window that has ended.
    _patch(server, aid, {"rights": {"available_until": _iso(now - timedelta(hours=1))}})
    r = _expect(urls["segment"], "outside_availability_window")
    assert "no longer available" in r.json()["error"]["message"]
    for url in urls.values():
        assert _code(httpx.get(url)) == "outside_availability_window", url

    # Rights removed: plays again; the title is kept.
    data = _patch(server, aid, {"rights": None})
    assert data["rights"] is None and data["title"] == "renamed"
    _expect(urls["init"], None)
    assert httpx.get(urls["mpd"]).status_code == 200
    assert httpx.get(urls["segment"]).headers["cache-control"].startswith("public")


def test_ugc_is_held_until_approved(server: Server) -> None:
    r = _create(server, title="ugc", source_type="ugc")
    assert r.status_code == 201, r.text
    assert r.json()["data"]["moderation"] == "pending"
    asset = server.wait(r.json()["data"]["id"])
    assert asset["status"] == "ready", asset  # held assets still process
    assert asset["moderation"] == "pending"
    master = f"{server.url}/play/{asset['playback_ids'][0]['id']}/master.m3u8"
    r = httpx.get(master)
    assert r.status_code == 403 and _code(r) == "pending_moderation", r.text
    watch = f"{server.url}/watch/{asset['playback_ids'][0]['id']}"
    page = httpx.get(watch)
    assert page.status_code == 403 and 'id="refusal"' in page.text
    assert "shaka-player" not in page.text  # no player for a held video

    with server.client() as c:
        r = c.post(f"/api/v1/assets/{asset['id']}/moderation", json={"decision": "approve"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["moderation"] == "approved"
    _expect(master, None)
    for url in _urls(server, asset).values():
        assert httpx.get(url).status_code == 200, url
    assert httpx.get(watch).status_code == 200

    with server.client() as c:
        r = c.post(f"/api/v1/assets/{asset['id']}/moderation", json={"decision": "reject"})
    assert r.status_code == 200 and r.json()["data"]["moderation"] == "rejected", r.text
    _expect(master, "moderation_rejected")


def _total(server: Server) -> int:
    with server.client() as c:
        total: int = c.get("/api/v1/assets").json()["pagination"]["total"]
    return total


@pytest.mark.parametrize(
    ("fields", "code", "fragment"),
    [
        ({"source_type": "podcast"}, "invalid_source_type", "podcast"),
        ({"rights": {"territories": {"allow": ["ZZ"]}}}, "invalid_rights", "'ZZ'"),
        ({"rights": "{not json"}, "invalid_rights", "not valid JSON"),
        (
            {
                "rights": {
                    "available_from": "2030-02-01T00:00:00Z",
                    "available_until": "2030-01-01T00:00:00Z",
                }
            },
            "invalid_rights",
            "must be after",
        ),
        ({"rights": {"available_from": "2030-01-01T00:00:00"}}, "invalid_rights", "time zone"),
        ({"rights": {"download": True}}, "invalid_rights", "unknown field(s) download"),
        ({"passthrough": "x" * 256}, "invalid_passthrough", "255"),
    ],
)
def test_multipart_validation(
    server: Server, fields: dict[str, Any], code: str, fragment: str
) -> None:
    before = _total(server)
    r = _create(server, **fields)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code
    assert fragment in r.json()["error"]["message"]
    assert _total(server) == before  # refused before anything was stored


def test_json_validation(server: Server) -> None:
    body = {"input": {"url": "http://127.0.0.1:9/never-fetched.mp4"}}
    with server.client() as c:
        r = c.post("/api/v1/assets", json={**body, "rights": {"territories": {"deny": ["XY"]}}})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_rights", r.text
        r = c.post("/api/v1/assets", json={**body, "source_type": "live"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_source_type"
        r = c.post("/api/v1/assets", json={**body, "rights": ["US"]})
        assert r.status_code == 400 and "must be a JSON object" in r.text


def test_patch_and_moderation_validation(server: Server, licensed: dict[str, Any]) -> None:
    aid = licensed["id"]
    with server.client() as c:
        r = c.patch(f"/api/v1/assets/{aid}", json={"rights": {"territories": {"allow": []}}})
        assert r.status_code == 400 and "allow is empty" in r.json()["error"]["message"]
        r = c.patch(f"/api/v1/assets/{aid}", json={"source_type": "ugc"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
        r = c.patch("/api/v1/assets/nope", json={"title": "x"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = c.post(f"/api/v1/assets/{aid}/moderation", json={"decision": "maybe"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
        assert "decision" in r.json()["error"]["message"]
        r = c.post("/api/v1/assets/nope/moderation", json={"decision": "approve"})
        assert r.status_code == 404
        # Admin only.
        r = httpx.patch(f"{server.url}/api/v1/assets/{aid}", json={"title": "x"})
        assert r.status_code == 401


# --- dedicated embedded servers with a territory source -----------------------------------


@pytest.fixture(scope="module")
def header_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("rights-header"),
        embedded_backend(),
        territory_header="X-Test-Country",
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def cidr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("rights-cidr")
    table = root / "territories.csv"
    # The peer is 127.0.0.1: the /16 is the longest match and wins over the /8.
    table.write_text("cidr,country\n127.0.0.0/8,NZ\n127.0.0.0/16,AU\n10.0.0.0/8,US\n")
    s = start_server(root / "data", embedded_backend(), territory_cidr_file=str(table))
    yield s
    s.stop()


def test_territory_from_trusted_header(header_server: Server) -> None:
    asset = _ready(header_server, rights={"territories": {"allow": ["US", "CA"]}})
    master = f"{header_server.url}/play/{asset['playback_ids'][0]['id']}/master.m3u8"
    for country in ("US", "ca", "us"):
        assert httpx.get(master, headers={"X-Test-Country": country}).status_code == 200
    urls = _urls(header_server, asset, {"X-Test-Country": "US"})
    for country in ("FR", "XX", "T1", None):
        headers = {"X-Test-Country": country} if country else {}
        for url in urls.values():
            r = httpx.get(url, headers=headers)
            assert r.status_code == 403, (country, url, r.text)
            assert _code(r) == "not_available_in_territory"
    r = httpx.get(master, headers={"X-Test-Country": "FR"})
    assert "(FR)" in r.json()["error"]["message"]

    _patch(header_server, asset["id"], {"rights": {"territories": {"deny": ["FR"]}}})
    _expect(master, None, {"X-Test-Country": "DE"})
    assert (
        _code(httpx.get(master, headers={"X-Test-Country": "FR"})) == "not_available_in_territory"
    )
    assert httpx.get(master).status_code == 200  # unknown with only a deny-list: allowed


def test_territory_from_cidr_table(cidr_server: Server) -> None:
    asset = _ready(cidr_server, rights={"territories": {"allow": ["AU"]}})
    master = f"{cidr_server.url}/play/{asset['playback_ids'][0]['id']}/master.m3u8"
    urls = _urls(cidr_server, asset)  # 127.0.0.1 → AU
    for url in urls.values():
        assert httpx.get(url).status_code == 200, url

    _patch(cidr_server, asset["id"], {"rights": {"territories": {"allow": ["NZ", "US"]}}})
    r = _expect(master, "not_available_in_territory")
    assert "(AU)" in r.json()["error"]["message"]
    # No header is configured here: a client claiming a country changes nothing.
    r = httpx.get(master, headers={"X-Test-Country": "NZ", "CF-IPCountry": "NZ"})
    assert r.status_code == 403
