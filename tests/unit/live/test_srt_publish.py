"""Real ffmpeg publishers (ffmpeg's own libsrt caller) against the SRT server on loopback: the
plain and access-control stream id forms, a wrong key at handshake and after it, two at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mediaplane.clips import Clip, picture, sine
from mediaplane.live import SrtServer
from mediaplane.live._libsrt import load
from tests.support import REQUIRE_SERVICES

TIMEOUT = 60  # seconds any one subprocess may run

try:
    load()
except RuntimeError as exc:  # pragma: no cover - libsrt ships with ffmpeg here
    if REQUIRE_SERVICES:
        raise
    pytest.skip(str(exc), allow_module_level=True)


class FileSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("wb")
        self.closed = asyncio.Event()

    async def write(self, data: bytes) -> None:
        self.file.write(data)

    async def close(self) -> None:
        self.file.close()
        self.closed.set()


class Ingest:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.sinks: dict[str, FileSink] = {}
        self.authorized: list[tuple[str, str]] = []
        # "slow" keys answer after 0.5 s, past the handshake wait: settled after the accept
        self.server = SrtServer(
            self._authorize, self._open_sink, idle_timeout=5, handshake_authorize_wait=0.25
        )

    async def _authorize(self, app: str, key: str) -> object | None:
        self.authorized.append((app, key))
        if key.startswith("slow"):  # slower than the handshake waits: settled after accept
            await asyncio.sleep(0.5)
        return key if app == "live" and "good" in key else None

    async def _open_sink(self, ticket: object) -> FileSink:
        sink = FileSink(self.out / f"{ticket}.ts")
        self.sinks[str(ticket)] = sink
        return sink

    @property
    def url(self) -> str:
        return f"srt://127.0.0.1:{self.server.port}"

    async def closed(self, key: str) -> Path:
        async with asyncio.timeout(TIMEOUT):
            await self.sinks[key].closed.wait()
        return self.sinks[key].path


@pytest.fixture
async def ingest(tmp_path: Path) -> AsyncIterator[Ingest]:
    i = Ingest(tmp_path)
    await i.server.start("127.0.0.1", 0)
    yield i
    await i.server.close()


def clip(size: str, *extra: str) -> Clip:
    """A 2 s test pattern with a tone, encoded live and sent as MPEG-TS."""
    return Clip(
        seconds=2,
        video=picture(size, 30),
        audio=(sine(440, 44100),),
        extra=("-f", "mpegts", *extra),
    )


async def publish(c: Clip, url: str, *, realtime: bool = True) -> int:
    p = await asyncio.create_subprocess_exec(
        *c.argv(url, realtime=realtime), stderr=subprocess.DEVNULL
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            return await p.wait()
    finally:
        if p.returncode is None:
            p.kill()
            await p.wait()


def probe(path: Path) -> dict[str, object]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=TIMEOUT,
    )
    info = json.loads(out.stdout)
    streams = {s["codec_type"]: s for s in info["streams"]}
    return {
        "video": streams["video"]["codec_name"],
        "audio": streams["audio"]["codec_name"],
        "width": streams["video"]["width"],
        "duration": float(info["format"]["duration"]),
    }


async def test_plain_stream_id_lands_as_mpegts(ingest: Ingest) -> None:
    assert await publish(clip("320x180"), f"{ingest.url}?streamid=good-plain") == 0
    info = probe(await ingest.closed("good-plain"))
    assert info["video"] == "h264" and info["audio"] == "aac" and info["width"] == 320
    assert 1.8 <= info["duration"] <= 2.2  # type: ignore[operator]
    assert ingest.authorized == [("live", "good-plain")]


async def test_access_control_stream_id_with_vendor_keys(ingest: Ingest) -> None:
    """``#!::`` with keys in any order, ``r`` as a path, and a key SRT does not define (as
    some encoders add); given through ffmpeg's option, which no version URL-decodes."""
    sid = "#!::u=encoder1,r=live/good-ac,x-vendor=7,m=publish"
    assert await publish(clip("320x180", "-srt_streamid", sid), ingest.url) == 0
    info = probe(await ingest.closed("good-ac"))
    assert info["video"] == "h264" and info["audio"] == "aac"
    assert 1.8 <= info["duration"] <= 2.2  # type: ignore[operator]


async def test_wrong_key_is_rejected_at_handshake(ingest: Ingest) -> None:
    assert await publish(clip("160x90"), f"{ingest.url}?streamid=wrong-key", realtime=False) != 0
    assert ingest.authorized == [("live", "wrong-key")] and ingest.sinks == {}


async def test_slow_wrong_key_is_dropped_before_any_payload(ingest: Ingest) -> None:
    """``authorize`` slower than the handshake wait: the connection is accepted, the answer
    awaited without reading, and the publisher dropped; no sink is opened."""
    assert await publish(clip("160x90"), f"{ingest.url}?streamid=slow-bad") != 0
    assert ingest.sinks == {}


async def test_player_mode_is_refused_without_asking_authorize(ingest: Ingest) -> None:
    url = f"{ingest.url}?streamid=%23%21%3A%3Ar%3Dgood-player%2Cm%3Drequest"  # ffmpeg 5 sends it encoded
    assert await publish(clip("160x90"), url, realtime=False) != 0
    assert ingest.authorized == [] and ingest.sinks == {}


async def test_two_publishers_at_once_each_get_their_own_stream(ingest: Ingest) -> None:
    codes = await asyncio.gather(
        publish(clip("320x180"), f"{ingest.url}?streamid=good-a"),
        publish(clip("160x90"), f"{ingest.url}?streamid=slow-good-b"),
    )
    assert codes == [0, 0]
    a = probe(await ingest.closed("good-a"))
    b = probe(await ingest.closed("slow-good-b"))
    assert (a["width"], b["width"]) == (320, 160)
    for info in (a, b):
        assert 1.8 <= info["duration"] <= 2.2  # type: ignore[operator]
