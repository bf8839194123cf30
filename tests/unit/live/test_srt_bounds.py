"""The SRT server against a libsrt caller driven from the test (ctypes): stream id forms,
rejections at handshake with their SRT codes, the connection bound, an idle publisher, a
passphrase, a slow sink."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from mediaplane.live import SrtServer, StreamId, StreamIdError, parse_stream_id
from mediaplane.live import _libsrt as srt
from tests.support import REQUIRE_SERVICES

# Bounds on how long the test waits for something the server must do; not timings.
WAIT = 10.0

try:
    srt.load()
except RuntimeError as exc:  # pragma: no cover - libsrt ships with ffmpeg here
    if REQUIRE_SERVICES:
        raise
    pytest.skip(str(exc), allow_module_level=True)


@pytest.mark.parametrize(
    ("sid", "expected"),
    [
        ("abc123", StreamId("live", "abc123")),
        ("live/abc123", StreamId("live", "abc123")),
        ("/live/abc123", StreamId("live", "abc123")),
        ("other/abc123", StreamId("other", "abc123")),
        ("#!::r=abc123,m=publish", StreamId("live", "abc123")),
        ("#!::m=publish,r=live/abc123", StreamId("live", "abc123")),
        ("#!::u=cam1,s=xyz,h=example.com,t=stream,r=abc123,m=publish", StreamId("live", "abc123")),
        ("#!::r=abc123,m=publish,vendor=9,latency=200", StreamId("live", "abc123")),
        ("#!::r=abc123", StreamId("live", "abc123")),  # a publish-only port: no m= is publish
        ("%23%21%3A%3Ar%3Dabc123%2Cm%3Dpublish", StreamId("live", "abc123")),
    ],
)
def test_stream_id_forms(sid: str, expected: StreamId) -> None:
    assert parse_stream_id(sid) == expected


@pytest.mark.parametrize(
    ("sid", "reason", "code"),
    [
        ("", "no_stream_id", srt.SRT_REJX_BAD_REQUEST),
        ("#!::r=abc,m=request", "not_publish", srt.SRT_REJX_BAD_MODE),
        ("#!::r=abc,m=bidirectional", "not_publish", srt.SRT_REJX_BAD_MODE),
        ("#!::m=publish", "no_resource", srt.SRT_REJX_BAD_REQUEST),
        ("#!::r=abc,r=def,m=publish", "bad_stream_id", srt.SRT_REJX_BAD_REQUEST),
        ("#!::r=abc,garbage", "bad_stream_id", srt.SRT_REJX_BAD_REQUEST),
        ("a/b/c", "bad_stream_id", srt.SRT_REJX_BAD_REQUEST),
        ("live/", "bad_key_syntax", srt.SRT_REJX_BAD_REQUEST),
        ("key with space", "bad_key_syntax", srt.SRT_REJX_BAD_REQUEST),
        ("k" * 300, "bad_key_syntax", srt.SRT_REJX_BAD_REQUEST),
        ("x" * 600, "stream_id_too_long", srt.SRT_REJX_BAD_REQUEST),
    ],
)
def test_stream_ids_refused(sid: str, reason: str, code: int) -> None:
    with pytest.raises(StreamIdError) as info:
        parse_stream_id(sid)
    assert (info.value.reason, info.value.reject) == (reason, code)


class Sink:
    def __init__(self, ticket: object) -> None:
        self.ticket = ticket
        self.data = bytearray()
        self.closed = asyncio.Event()
        self.gate: asyncio.Event | None = None
        self.writes = 0

    async def write(self, data: bytes) -> None:
        self.writes += 1
        if self.gate is not None:
            await self.gate.wait()
        self.data += data

    async def close(self) -> None:
        self.closed.set()


class Harness:
    def __init__(self, **kw: object) -> None:
        self.sinks: list[Sink] = []
        self.authorized: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.server = SrtServer(self._authorize, self._open_sink, **kw)  # type: ignore[arg-type]

    async def _authorize(self, app: str, key: str) -> object | None:
        self.authorized.append((app, key))
        return key if key.startswith("good") else None

    async def _open_sink(self, ticket: object) -> Sink:
        sink = Sink(ticket)
        sink.gate = self.gate
        self.sinks.append(sink)
        return sink

    async def connect(self, sid: str, passphrase: str | None = None) -> tuple[int, int]:
        return await asyncio.to_thread(_connect, self.server.port, sid, passphrase)

    async def until(self, check: Callable[[], object]) -> None:
        """Wait for ``check()`` to hold: libsrt's state changes on its own threads, with no
        event to await."""
        async with asyncio.timeout(WAIT):
            while not check():  # noqa: ASYNC110
                await asyncio.sleep(0.02)


def _connect(port: int, sid: str, passphrase: str | None) -> tuple[int, int]:
    """A libsrt caller in live mode: (socket, 0), or (-1, the listener's reject code)."""
    lib = srt.load()
    srt.check("srt_startup", lib.srt_startup())
    sock = srt.check("srt_create_socket", lib.srt_create_socket())
    srt.set_int(sock, srt.SRTO_TRANSTYPE, srt.SRTT_LIVE)
    srt.set_str(sock, srt.SRTO_STREAMID, sid)
    if passphrase is not None:
        srt.set_str(sock, srt.SRTO_PASSPHRASE, passphrase)
    addr = srt.sockaddr("127.0.0.1", port)
    if lib.srt_connect(sock, addr, len(addr)) == -1:
        reason = int(lib.srt_getrejectreason(sock))
        lib.srt_close(sock)
        lib.srt_cleanup()
        return -1, reason
    return sock, 0


def _send(sock: int, payloads: list[bytes]) -> None:
    lib = srt.load()
    for p in payloads:
        srt.check("srt_sendmsg", lib.srt_sendmsg(sock, p, len(p), -1, 0))


def _close(sock: int) -> None:
    """Close a socket from :func:`_connect`, and balance its ``srt_startup``."""
    srt.load().srt_close(sock)
    srt.load().srt_cleanup()


def packets(n: int, start: int = 0) -> list[bytes]:
    """``n`` live payloads of 1316 bytes, each numbered, so order and loss show."""
    return [struct.pack(">I", start + i) * (1316 // 4) for i in range(n)]


@pytest.fixture
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    h = Harness(**getattr(request, "param", {}))
    await h.server.start("127.0.0.1", 0)
    yield h
    await h.server.close()


# A generous handshake wait: on a loaded machine authorize may take longer than the default
# 50 ms, and a late answer would (rightly) be settled after the accept instead.
@pytest.mark.parametrize("harness", [{"handshake_authorize_wait": 5.0}], indirect=True)
async def test_rejections_at_handshake_carry_srt_codes(harness: Harness) -> None:
    assert (await harness.connect("bad-key"))[1] == srt.SRT_REJX_UNAUTHORIZED
    assert (await harness.connect("#!::r=good-1,m=request"))[1] == srt.SRT_REJX_BAD_MODE
    assert (await harness.connect("elsewhere/good-1"))[1] == srt.SRT_REJX_FORBIDDEN
    assert (await harness.connect("has space"))[1] == srt.SRT_REJX_BAD_REQUEST
    assert harness.authorized == [("live", "bad-key")] and harness.sinks == []
    assert harness.server.connections == 0


@pytest.mark.parametrize("harness", [{"max_connections": 1}], indirect=True)
async def test_connections_beyond_the_bound_are_refused(harness: Harness) -> None:
    a, _ = await harness.connect("good-a")
    assert a >= 0
    assert await harness.connect("good-b") == (-1, srt.SRT_REJX_OVERLOAD)
    assert [s.ticket for s in harness.sinks] == ["good-a"]
    await asyncio.to_thread(_close, a)
    await harness.until(lambda: harness.server.connections == 0)
    c, _ = await harness.connect("good-c")  # the place is free again
    assert c >= 0
    await asyncio.to_thread(_close, c)


@pytest.mark.parametrize("harness", [{"max_connections_per_address": 1}], indirect=True)
async def test_connections_per_address_are_bounded(harness: Harness) -> None:
    a, _ = await harness.connect("good-a")
    assert a >= 0
    assert await harness.connect("good-b") == (-1, srt.SRT_REJX_OVERLOAD)
    assert harness.authorized == [("live", "good-a")]  # refused before authorize
    await asyncio.to_thread(_close, a)


@pytest.mark.parametrize("harness", [{"idle_timeout": 1.0}], indirect=True)
async def test_idle_publisher_is_dropped_after_its_payload(harness: Harness) -> None:
    sock, _ = await harness.connect("good-idle")
    assert sock >= 0
    sent = packets(20)
    await asyncio.to_thread(_send, sock, sent)
    await harness.until(lambda: harness.sinks and harness.sinks[0].closed.is_set())
    assert bytes(harness.sinks[0].data) == b"".join(sent)  # all of it, in order
    lib = srt.load()
    await harness.until(lambda: lib.srt_getsockstate(sock) >= srt.SRTS_BROKEN)
    await asyncio.to_thread(_close, sock)


@pytest.mark.parametrize("harness", [{"passphrase": "correct horse battery"}], indirect=True)
async def test_passphrase_is_required(harness: Harness) -> None:
    assert (await harness.connect("good-nopass"))[0] == -1
    assert (await harness.connect("good-wrong", "wrong horse battery"))[0] == -1
    sock, _ = await harness.connect("good-pass", "correct horse battery")
    assert sock >= 0
    sent = packets(5)
    await asyncio.to_thread(_send, sock, sent)
    await harness.until(lambda: harness.sinks and len(harness.sinks[0].data) == 5 * 1316)
    await asyncio.to_thread(_close, sock)
    await harness.until(lambda: any(s.closed.is_set() for s in harness.sinks))
    assert [s.ticket for s in harness.sinks] == ["good-pass"]
    assert bytes(harness.sinks[0].data) == b"".join(sent)


@pytest.mark.parametrize(
    "harness", [{"max_queued_bytes": 64 * 1024, "batch_bytes": 16 * 1024}], indirect=True
)
async def test_slow_sink_stops_the_reads(harness: Harness) -> None:
    """A sink that does not return: the reader fills its small queue and stops taking
    payload from libsrt; released, the sink gets what was queued, in order."""
    harness.gate = asyncio.Event()
    sock, _ = await harness.connect("good-slow")
    assert sock >= 0
    for i in range(10):  # 10 x 40 packets, paced so libsrt's live buffer keeps them
        await asyncio.to_thread(_send, sock, packets(40, 40 * i))
        await asyncio.sleep(0.05)
    await harness.until(lambda: harness.sinks and harness.sinks[0].writes == 1)
    await asyncio.sleep(0.3)  # libsrt has released all 400 by now (latency 120 ms)
    (stats,) = harness.server.stats()
    # read from libsrt at most: the queue, the batch in the sink, the one waiting to be queued
    assert stats["bytes_in"] <= 64 * 1024 + 2 * (16 * 1024 + 1316), stats  # of 526 400 sent
    assert harness.sinks[0].writes == 1
    harness.gate.set()
    await asyncio.to_thread(_close, sock)
    await harness.until(lambda: harness.sinks[0].closed.is_set())
    got = bytes(harness.sinks[0].data)
    assert got and len(got) % 1316 == 0
    numbers = [struct.unpack_from(">I", got, i)[0] for i in range(0, len(got), 1316)]
    assert numbers == sorted(numbers) and numbers[0] == 0  # in order, from the start
