"""WHIP and WHEP signaling against the real ingest-side host (aiortc) on a migrated SQLite
database, through the HTTP routes: the refusals (a missing, mismatched or unknown key is
401 and opens no session; junk SDP is 400; a wrong content type 415; an oversized offer
413; an unknown or idle playback id 404) and a real offer answered with a session that
DELETE ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from mediaplane import live
from mediaplane.accounts import INSTALL
from mediaplane.http import install_error_handlers
from mediaplane.live._ice import ice_host_addresses
from mediaplane.live._webrtc import MAX_SDP_BYTES, check_sdp
from mediaplane.runtime import Runtime
from tests.support import migrated_runtime

SDP = "application/sdp"
#: Shaped like an offer (passes the route's check) but with no codec aiortc has.
NO_CODEC_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n"
    "a=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
    "a=rtpmap:96 NOPE/90000\r\n"
)


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    # The host offers ICE candidates on loopback only (tests send traffic nowhere else).
    with migrated_runtime(
        "sqlite", tmp_path_factory.mktemp("webrtc"), webrtc_ice_addresses=["127.0.0.1"]
    ) as runtime:
        yield runtime


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    ingest = live.LiveIngest(rt)  # its RTMP/SRT servers are not started: WebRTC only
    await ingest.webrtc.start()
    app = FastAPI()
    app.state.runtime = rt
    install_error_handlers(app)
    app.include_router(live.webrtc_router)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c
    finally:
        await ingest.close()


@pytest.fixture
def stream(rt: Runtime) -> dict[str, Any]:
    return live.create_live_stream(rt, INSTALL, reconnect_window_seconds=0)


def _status(rt: Runtime, stream: dict[str, Any]) -> str:
    return str(live.live_stream_view(rt, INSTALL, stream["id"])["status"])


def _candidate_hosts(sdp: str) -> set[str]:
    """The addresses of the ICE candidates (``a=candidate:`` lines) in ``sdp``."""
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


async def _offer() -> tuple[Any, str]:
    """A real WebRTC offer (aiortc's, sending a video track) and its peer connection, with
    host candidates on 127.0.0.1 only."""
    from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    with ice_host_addresses(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    assert _candidate_hosts(pc.localDescription.sdp) == {"127.0.0.1"}, pc.localDescription.sdp
    return pc, pc.localDescription.sdp


def test_check_sdp_refuses_junk() -> None:
    assert check_sdp("hello") is not None
    assert check_sdp("v=0\r\ns=-\r\n") is not None  # no media
    assert check_sdp("v=0\r\nm=video 9 RTP/AVP 96\r\n") is not None  # no ICE, no DTLS
    assert check_sdp("v=0\r\n\x00=x\r\n") is not None
    assert check_sdp("v=0\n" + "a=x\n" * MAX_SDP_BYTES) is not None
    assert check_sdp(NO_CODEC_OFFER) is None


async def test_whip_refuses_missing_wrong_and_unknown_keys(
    client: httpx.AsyncClient, rt: Runtime, stream: dict[str, Any]
) -> None:
    key = stream["stream_key"]
    pc, offer = await _offer()
    try:
        r = await client.post(f"/whip/{key}", content=offer, headers={"Content-Type": SDP})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
        r = await client.post(
            f"/whip/{key}",
            content=offer,
            headers={"Content-Type": SDP, "Authorization": f"Bearer {key}x"},
        )
        assert r.status_code == 401, r.text
        r = await client.post(  # the token matches the path, but no stream has that key
            "/whip/nosuchkey",
            content=offer,
            headers={"Content-Type": SDP, "Authorization": "Bearer nosuchkey"},
        )
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "unauthorized"
    finally:
        await pc.close()
    assert _status(rt, stream) == "idle"  # no session was opened


async def test_whip_refuses_junk_sdp(
    client: httpx.AsyncClient, rt: Runtime, stream: dict[str, Any]
) -> None:
    key = stream["stream_key"]
    auth = {"Authorization": f"Bearer {key}"}
    r = await client.post(f"/whip/{key}", content=b"hello", headers={"Content-Type": SDP, **auth})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_sdp", r.text
    r = await client.post(
        f"/whip/{key}", content=b"\xff\xfe", headers={"Content-Type": SDP, **auth}
    )
    assert r.status_code == 400, r.text
    r = await client.post(
        f"/whip/{key}", content=NO_CODEC_OFFER, headers={"Content-Type": "text/plain", **auth}
    )
    assert r.status_code == 415, r.text
    r = await client.post(
        f"/whip/{key}", content=b"v=0\r\n" * MAX_SDP_BYTES, headers={"Content-Type": SDP, **auth}
    )
    assert r.status_code == 413, r.text
    r = await client.post(  # past the route's check, refused by aiortc: no codec in common
        f"/whip/{key}", content=NO_CODEC_OFFER, headers={"Content-Type": SDP, **auth}
    )
    assert r.status_code == 400, r.text
    assert _status(rt, stream) == "idle"


async def test_whip_answers_and_delete_ends(
    client: httpx.AsyncClient, rt: Runtime, stream: dict[str, Any]
) -> None:
    key = stream["stream_key"]
    pc, offer = await _offer()
    try:
        r = await client.post(
            f"/whip/{key}",
            content=offer,
            headers={"Content-Type": SDP, "Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201, r.text
        assert r.headers["content-type"].startswith(SDP)
        assert r.text.startswith("v=0") and "a=recvonly" in r.text, r.text
        # webrtc_ice_addresses: the answer's candidates are on loopback only
        assert _candidate_hosts(r.text) == {"127.0.0.1"}, r.text
        location = r.headers["location"]
        assert location.startswith("/whip/session/")
        assert _status(rt, stream) == "active"
        r2 = await client.post(  # a second publisher on the same stream
            f"/whip/{key}",
            content=offer,
            headers={"Content-Type": SDP, "Authorization": f"Bearer {key}"},
        )
        assert r2.status_code == 409, r2.text
        assert (await client.delete(location)).status_code == 200
        assert (await client.delete(location)).status_code == 404
        assert (await client.delete("/whep/session/nosuchsession")).status_code == 404
    finally:
        await pc.close()


async def test_whep_unknown_or_idle_is_404(
    client: httpx.AsyncClient, stream: dict[str, Any]
) -> None:
    pc, offer = await _offer()
    try:
        for pid in ("nosuchplaybackid", stream["playback_ids"][0]["id"]):
            r = await client.post(f"/whep/{pid}", content=offer, headers={"Content-Type": SDP})
            assert r.status_code == 404, r.text
        r = await client.post("/whep/x", content=b"junk", headers={"Content-Type": SDP})
        assert r.status_code == 400, r.text
    finally:
        await pc.close()


async def test_without_an_ingest_webrtc_is_503(rt: Runtime, tmp_path: Path) -> None:
    from mediaplane.config import Settings

    other = Runtime(Settings(data_dir=tmp_path, database_url=rt.settings.database_url))
    app = FastAPI()
    app.state.runtime = other
    install_error_handlers(app)
    app.include_router(live.webrtc_router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        r = await c.post("/whep/x", content=NO_CODEC_OFFER, headers={"Content-Type": SDP})
    assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
