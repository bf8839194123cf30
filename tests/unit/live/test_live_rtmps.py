"""RTMPS on the live ingest: with ``rtmps_cert_file``/``rtmps_key_file`` set, LiveIngest also
listens with TLS on ``rtmps_port`` (one connection pool with RTMP); ffmpeg publishes over
``rtmps://…/live/KEY`` (its TLS client does not verify by default: a self-signed certificate
made here) and the session's playlists appear; a wrong key over TLS is dropped; a certificate
that does not load is one error line, and RTMP serves on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from mediaplane.accounts import INSTALL
from mediaplane.live import LatencyMode, LiveIngest, create_live_stream
from mediaplane.runtime import Runtime
from tests.support import free_port, live_publisher, migrated_runtime, port_open, self_signed_cert


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    folder = tmp_path_factory.mktemp("rtmps")
    cert, key = self_signed_cert(folder)
    with migrated_runtime(
        "sqlite", folder, rtmps_cert_file=cert, rtmps_key_file=key, rtmps_port=free_port()
    ) as rt:
        yield rt


async def _publish(url: str, seconds: int) -> int:
    pub = await asyncio.to_thread(live_publisher, url, seconds)
    try:
        return await asyncio.to_thread(pub.wait, seconds + 30)
    finally:
        if pub.poll() is None:
            pub.kill()


async def test_rtmps_publisher_goes_live(runtime: Runtime) -> None:
    stream = create_live_stream(runtime, INSTALL, latency_mode=LatencyMode.LOW)
    ingest = LiveIngest(runtime)
    with structlog.testing.capture_logs() as logs:
        await ingest.start("127.0.0.1", 0, None)
    try:
        assert ingest.rtmps is not None and ingest.rtmps.limits is ingest.server.limits
        port = runtime.settings.rtmps_port
        listening = next(e for e in logs if e["event"] == "live.listening")
        assert listening["rtmps_port"] == port
        base = f"rtmps://127.0.0.1:{port}/live"
        started = time.monotonic()
        assert await _publish(f"{base}/not-{stream['stream_key']}", 20) != 0
        assert time.monotonic() - started < 15  # dropped at publish, not after the clip
        pub = await asyncio.to_thread(live_publisher, f"{base}/{stream['stream_key']}", 6)
        try:
            folder = runtime.settings.data_path / "live" / stream["id"]
            deadline = time.monotonic() + 30
            while not list(folder.glob("*/master.m3u8")):  # every track has a whole segment
                assert time.monotonic() < deadline and pub.poll() is None, "no playlists"
                await asyncio.sleep(0.2)
            (master,) = folder.glob("*/master.m3u8")
            assert (master.parent / "video" / "init.mp4").is_file()
        finally:
            assert await asyncio.to_thread(pub.wait, 40) == 0
    finally:
        await ingest.close()
    assert not await asyncio.to_thread(port_open, "127.0.0.1", port)


async def test_a_bad_certificate_is_one_error_and_rtmp_serves_on(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    bad = runtime.settings.model_copy(update={"rtmps_cert_file": tmp_path / "bad.pem"})
    monkeypatch.setattr(runtime, "settings", bad)
    ingest = LiveIngest(runtime)
    with structlog.testing.capture_logs() as logs:
        await ingest.start("127.0.0.1", 0, None)
    try:
        errors = [e for e in logs if e["log_level"] == "error"]
        assert [e["event"] for e in errors] == ["live.rtmps_unavailable"]
        assert ingest.rtmps is None
        assert await asyncio.to_thread(port_open, "127.0.0.1", ingest.server.port)
    finally:
        await ingest.close()
