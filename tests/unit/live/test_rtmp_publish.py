"""Real publishers against the RTMP server on loopback: ffmpeg's own RTMP client, and librtmp
(the library OBS publishes with) through ctypes."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mediaplane.live import RtmpServer
from tests.support import make_clip, self_signed_cert

TIMEOUT = 60  # seconds any one subprocess may run


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
        self.server = RtmpServer(self._authorize, self._open_sink, idle_timeout=5)

    async def _authorize(self, app: str, key: str) -> object | None:
        return key if app == "live" and key.startswith("good") else None

    async def _open_sink(self, ticket: object) -> FileSink:
        sink = FileSink(self.out / f"{ticket}.flv")
        self.sinks[str(ticket)] = sink
        return sink

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.server.port}/live/{key}"

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


@pytest.fixture(scope="module")
def clip() -> Path:
    return make_clip("rtmp-320x180.mp4", seconds=2, size="320x180")


@pytest.fixture(scope="module")
def small_clip() -> Path:
    return make_clip("rtmp-160x90.mp4", seconds=2, size="160x90")


async def ffmpeg_publish(src: Path, url: str, *, realtime: bool = False) -> int:
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
    argv += ["-re"] if realtime else []
    argv += ["-i", str(src), "-c", "copy", "-f", "flv", url]
    p = await asyncio.create_subprocess_exec(*argv, stderr=subprocess.DEVNULL)
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


async def test_ffmpeg_publish_lands_as_flv(ingest: Ingest, clip: Path) -> None:
    assert await ffmpeg_publish(clip, ingest.url("good-ffmpeg")) == 0
    info = probe(await ingest.closed("good-ffmpeg"))
    assert info["video"] == "h264" and info["audio"] == "aac" and info["width"] == 320
    assert 1.8 <= info["duration"] <= 2.2  # type: ignore[operator]


async def test_ffmpeg_wrong_key_fails_and_opens_no_sink(ingest: Ingest, clip: Path) -> None:
    assert await ffmpeg_publish(clip, ingest.url("wrong-key")) != 0
    assert ingest.sinks == {}


async def test_two_publishers_at_once_each_get_their_own_stream(
    ingest: Ingest, clip: Path, small_clip: Path
) -> None:
    codes = await asyncio.gather(
        ffmpeg_publish(clip, ingest.url("good-a"), realtime=True),
        ffmpeg_publish(small_clip, ingest.url("good-b"), realtime=True),
    )
    assert codes == [0, 0]
    a = probe(await ingest.closed("good-a"))
    b = probe(await ingest.closed("good-b"))
    assert (a["width"], b["width"]) == (320, 160)
    for key in ("good-a", "good-b"):
        assert ingest.sinks[key].path.read_bytes().count(b"FLV\x01") == 1


def _self_signed(tmp: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*self_signed_cert(tmp))
    return ctx


async def test_rtmps_publish(tmp_path: Path, clip: Path) -> None:
    ingest = Ingest(tmp_path)
    await ingest.server.start("127.0.0.1", 0, ssl=_self_signed(tmp_path))
    try:
        url = ingest.url("good-tls").replace("rtmp://", "rtmps://")
        assert await ffmpeg_publish(clip, url) == 0
        info = probe(await ingest.closed("good-tls"))
        assert info["video"] == "h264" and info["audio"] == "aac"
    finally:
        await ingest.server.close()


def _librtmp_publish(url: str, flv: bytes) -> tuple[bool, int]:
    """Publish ``flv`` the way OBS's librtmp does (connect, publish, write tags); returns
    (stream opened, bytes written)."""
    name = ctypes.util.find_library("rtmp")
    if name is None:
        pytest.skip("librtmp is not installed")
    lib = ctypes.CDLL(name)
    lib.RTMP_Alloc.restype = ctypes.c_void_p
    for f in ("RTMP_Init", "RTMP_EnableWrite", "RTMP_Close", "RTMP_Free"):
        getattr(lib, f).argtypes = [ctypes.c_void_p]
    lib.RTMP_SetupURL.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.RTMP_Connect.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.RTMP_ConnectStream.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.RTMP_Write.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.RTMP_LogSetLevel.argtypes = [ctypes.c_int]
    lib.RTMP_LogSetLevel(0)
    r = lib.RTMP_Alloc()
    lib.RTMP_Init(r)
    buf = ctypes.create_string_buffer(url.encode())  # librtmp keeps pointers into it
    sent = 0
    try:
        assert lib.RTMP_SetupURL(r, buf)
        lib.RTMP_EnableWrite(r)
        if not lib.RTMP_Connect(r, None) or not lib.RTMP_ConnectStream(r, 0):
            return False, 0
        for i in range(0, len(flv), 4096):
            n = lib.RTMP_Write(r, flv[i : i + 4096], len(flv[i : i + 4096]))
            if n <= 0:
                break
            sent += n
        return True, sent
    finally:
        lib.RTMP_Close(r)
        lib.RTMP_Free(r)
        del buf


async def test_librtmp_publish_is_byte_for_byte(ingest: Ingest, clip: Path, tmp_path: Path) -> None:
    """librtmp's handshake (the digest kind, falling back to the simple one we answer), its
    connect/publish sequence and its chunking; the FLV it sends comes out unchanged."""
    assert await ffmpeg_publish(clip, ingest.url("good-ref")) == 0
    ref = (await ingest.closed("good-ref")).read_bytes()
    opened, sent = await asyncio.to_thread(_librtmp_publish, ingest.url("good-lib"), ref)
    assert opened and sent == len(ref)
    assert (await ingest.closed("good-lib")).read_bytes() == ref
    opened, sent = await asyncio.to_thread(_librtmp_publish, ingest.url("bad-lib"), ref)
    assert (opened, sent) == (False, 0) and "bad-lib" not in ingest.sinks
