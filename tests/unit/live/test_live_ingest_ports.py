"""LiveIngest's listeners: RTMP (TCP) and SRT (UDP) on one host; an SRT port that cannot be
had is one error line and RTMP serves on."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from mediaplane.live import LiveIngest
from mediaplane.live._libsrt import load as load_libsrt
from mediaplane.runtime import Runtime
from tests.support import migrated_runtime, port_open, skip_or_fail


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with migrated_runtime("sqlite", tmp_path) as rt:
        yield rt


async def test_both_listen_and_close(runtime: Runtime) -> None:
    try:
        load_libsrt()
    except RuntimeError as exc:  # pragma: no cover - libsrt ships with ffmpeg here
        skip_or_fail(str(exc))
    ingest = LiveIngest(runtime)
    await ingest.start("127.0.0.1", 0, 0)
    try:
        assert ingest.srt_started
        assert await asyncio.to_thread(port_open, "127.0.0.1", ingest.server.port)
        assert ingest.srt.port > 0
    finally:
        await ingest.close()
    assert not ingest.srt_started


async def test_srt_port_taken_keeps_rtmp(runtime: Runtime) -> None:
    """Also what happens without libsrt (the same error line, its message says so)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        ingest = LiveIngest(runtime)
        with structlog.testing.capture_logs() as logs:
            await ingest.start("127.0.0.1", 0, taken.getsockname()[1])
        try:
            assert not ingest.srt_started
            assert [e["event"] for e in logs if e["log_level"] == "error"] == [
                "live.srt_unavailable"
            ]
            assert await asyncio.to_thread(port_open, "127.0.0.1", ingest.server.port)
        finally:
            await ingest.close()
