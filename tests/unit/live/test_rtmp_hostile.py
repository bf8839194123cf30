"""The RTMP server against a hand-driven client on loopback: bad handshakes, huge frames,
media before publish, floods, stalls, a slow sink."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from mediaplane.live import RtmpServer, _amf
from mediaplane.live._chunks import ChunkParser, Message, encode_message

# Bounds on how long the test waits for something the server must do; not timings.
WAIT = 10.0


class Sink:
    def __init__(self, ticket: object) -> None:
        self.ticket = ticket
        self.data = bytearray()
        self.closed = asyncio.Event()
        self.gate: asyncio.Event | None = None
        self.first_write = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0

    async def write(self, data: bytes) -> None:
        self.first_write.set()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            self.data += data
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        self.closed.set()


class Harness:
    def __init__(self, **kw: object) -> None:
        self.sinks: list[Sink] = []
        self.authorized: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.server = RtmpServer(self._authorize, self._open_sink, **kw)  # type: ignore[arg-type]

    async def _authorize(self, app: str, key: str) -> object | None:
        self.authorized.append((app, key))
        return key if key.startswith("good") else None

    async def _open_sink(self, ticket: object) -> Sink:
        sink = Sink(ticket)
        sink.gate = self.gate
        self.sinks.append(sink)
        return sink


@pytest.fixture
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    h = Harness(**getattr(request, "param", {}))
    await h.server.start("127.0.0.1", 0)
    yield h
    await h.server.close()


class Client:
    """A minimal RTMP publisher speaking through the server's own chunk code."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = ChunkParser()
        self.chunk_size = 128
        self.inbox: list[Message] = []

    @classmethod
    async def open(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def handshake(self) -> None:
        self.writer.write(b"\x03" + bytes(8) + os.urandom(1528))
        s0s1s2 = await self.reader.readexactly(1 + 2 * 1536)
        assert s0s1s2[0] == 3
        self.writer.write(s0s1s2[1:1537])
        await self.writer.drain()

    def send(self, csid: int, type_id: int, msid: int, body: bytes, ts: int = 0) -> None:
        self.writer.write(
            encode_message(csid, type_id, msid, body, chunk_size=self.chunk_size, timestamp=ts)
        )

    async def command(self, msid: int, *values: object) -> None:
        self.send(3, 20, msid, _amf.encode(*values))
        await self.writer.drain()

    async def expect(self, name: str) -> list[object]:
        """Read until a command called ``name`` arrives; return its values."""
        async with asyncio.timeout(WAIT):
            while True:
                while self.inbox:
                    m = self.inbox.pop(0)
                    if m.type_id == 20:
                        values = _amf.decode_all(m.body)
                        if values[0] == name:
                            return values
                data = await self.reader.read(65536)
                assert data, f"closed before {name}"
                self.inbox += self.parser.feed(data)

    async def publish(self, key: str) -> list[object]:
        await self.handshake()
        await self.command(0, "connect", 1.0, {"app": "live", "tcUrl": "rtmp://h/live"})
        await self.expect("_result")
        await self.command(0, "createStream", 2.0, None)
        (_, _, _, stream_id) = await self.expect("_result")
        await self.command(int(stream_id), "publish", 3.0, None, key, "live")  # type: ignore[call-overload]
        return await self.expect("onStatus")

    async def closed(self) -> bool:
        """True once the server has closed the connection (EOF or reset)."""
        async with asyncio.timeout(WAIT):
            try:
                while await self.reader.read(65536):
                    pass
            except ConnectionError:
                pass
        return True


async def test_garbage_instead_of_handshake_is_closed(harness: Harness) -> None:
    c = await Client.open(harness.server.port)
    c.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(2000))
    assert await c.closed()
    assert harness.sinks == [] and harness.authorized == []


@pytest.mark.parametrize("harness", [{"handshake_timeout": 0.5}], indirect=True)
async def test_stalled_handshake_is_closed_at_the_timeout(harness: Harness) -> None:
    c = await Client.open(harness.server.port)
    c.writer.write(b"\x03" + os.urandom(100))  # a version byte, then nothing more
    assert await c.closed()


async def test_publish_start_then_media_reaches_the_sink(harness: Harness) -> None:
    c = await Client.open(harness.server.port)
    status = await c.publish("good-1")
    assert status[3]["code"] == "NetStream.Publish.Start"  # type: ignore[index]
    c.send(4, 9, 1, b"\x17\x00frame-one", ts=0)
    c.send(4, 9, 1, b"\x27\x01frame-two", ts=40)
    meta = _amf.encode("@setDataFrame", "onMetaData", {"width": 320.0})
    c.send(5, 18, 1, meta)
    await c.command(1, "deleteStream", 4.0, 1.0)
    (sink,) = harness.sinks
    async with asyncio.timeout(WAIT):
        await sink.closed.wait()
    data = bytes(sink.data)
    assert data.startswith(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
    assert b"frame-one" in data and b"frame-two" in data
    assert b"@setDataFrame" not in data and b"onMetaData" in data
    assert harness.authorized == [("live", "good-1")]


async def test_wrong_key_gets_bad_name_and_is_closed(harness: Harness) -> None:
    c = await Client.open(harness.server.port)
    status = await c.publish("wrong")
    assert status[3]["code"] == "NetStream.Publish.BadName"  # type: ignore[index]
    assert await c.closed()
    assert harness.sinks == []


async def test_media_before_publish_is_closed(harness: Harness) -> None:
    c = await Client.open(harness.server.port)
    await c.handshake()
    await c.command(0, "connect", 1.0, {"app": "live"})
    await c.expect("_result")
    c.send(4, 9, 1, b"\x17\x00sneaky")
    assert await c.closed()
    assert harness.sinks == [] and harness.authorized == []


async def test_unknown_app_is_rejected(harness: Harness) -> None:
    c = await Client.open(harness.server.port)
    await c.handshake()
    await c.command(0, "connect", 1.0, {"app": "admin"})
    values = await c.expect("_error")
    assert values[3]["code"] == "NetConnection.Connect.Rejected"  # type: ignore[index]
    assert await c.closed()


@pytest.mark.parametrize("harness", [{"max_message_size": 1 << 20}], indirect=True)
async def test_message_over_the_bound_is_closed(harness: Harness) -> None:
    c = await Client.open(harness.server.port)
    await c.publish("good-huge")
    # A video message header announcing 2 MiB: refused before its body is buffered.
    c.writer.write(b"\x04" + bytes(3) + (2 << 20).to_bytes(3, "big") + b"\x09" + b"\x01\0\0\0")
    c.writer.write(os.urandom(4096))
    assert await c.closed()
    (sink,) = harness.sinks
    assert sink.closed.is_set() and b"FLV" not in sink.data


@pytest.mark.parametrize("harness", [{"max_connections": 2}], indirect=True)
async def test_connections_over_the_limit_are_refused(harness: Harness) -> None:
    held = [await Client.open(harness.server.port) for _ in range(2)]
    for c in held:  # each is in the server's hands (handshake answered)
        await c.handshake()
    extra = await Client.open(harness.server.port)
    assert await extra.closed()
    assert harness.server.connections == 2
    held[0].writer.close()
    assert await held[0].closed()
    # The server lets go of a slot before its peer can see the close: a new client fits.
    again = await Client.open(harness.server.port)
    await again.handshake()  # a slot is free again


@pytest.mark.parametrize("harness", [{"idle_timeout": 0.5}], indirect=True)
async def test_stalled_publisher_is_dropped_and_its_sink_closed(harness: Harness) -> None:
    c = await Client.open(harness.server.port)
    await c.publish("good-stall")
    c.send(4, 9, 1, b"\x17\x00only-frame")
    await c.writer.drain()
    assert await c.closed()
    (sink,) = harness.sinks
    assert sink.closed.is_set() and b"only-frame" in sink.data


@pytest.mark.parametrize("harness", [{"idle_timeout": 0.5}], indirect=True)
async def test_publisher_sending_only_pings_is_dropped(harness: Harness) -> None:
    c = await Client.open(harness.server.port)
    await c.publish("good-pings")
    async with asyncio.timeout(WAIT):
        with contextlib.suppress(ConnectionError):
            while not c.reader.at_eof():
                c.send(2, 4, 0, struct.pack(">HI", 6, 1))
                await c.writer.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        c.parser.feed(await c.reader.read(65536))
    (sink,) = harness.sinks
    assert sink.closed.is_set()


@pytest.mark.parametrize("harness", [{"idle_timeout": 0.5}], indirect=True)
async def test_time_waiting_on_the_sink_is_not_idle_time(harness: Harness) -> None:
    harness.gate = asyncio.Event()
    c = await Client.open(harness.server.port)
    await c.publish("good-patient")
    (sink,) = harness.sinks
    c.send(4, 9, 1, b"\x17\x00first")
    await c.writer.drain()
    async with asyncio.timeout(WAIT):
        await sink.first_write.wait()
    await asyncio.sleep(1.0)  # the sink holds its write for twice the idle timeout
    harness.gate.set()
    c.send(4, 9, 1, b"\x27\x01second", ts=33)
    await c.command(1, "deleteStream", 4.0, 1.0)
    async with asyncio.timeout(WAIT):
        await sink.closed.wait()
    assert b"first" in sink.data and b"second" in sink.data


def _push_until_blocked(sock: socket.socket, chunk: bytes, limit: int) -> int:
    """Send ``chunk`` over and over until a send stalls for 1 s or ``limit`` bytes went out;
    return the bytes sent."""
    sent = 0
    sock.settimeout(1)
    with contextlib.suppress(TimeoutError):
        while sent < limit:
            sock.sendall(chunk)
            sent += len(chunk)
    return sent


async def test_slow_sink_stops_the_reads(harness: Harness) -> None:
    harness.gate = asyncio.Event()
    c = await Client.open(harness.server.port)
    await c.publish("good-slow")
    (sink,) = harness.sinks
    c.send(2, 1, 0, struct.pack(">I", 1 << 20))  # big chunks: the server parses quickly
    c.chunk_size = 1 << 20
    frame = b"\x27\x01" + os.urandom(1 << 19)
    msg = encode_message(4, 9, 1, frame, chunk_size=c.chunk_size)
    await c.writer.drain()
    raw = c.writer.transport.get_extra_info("socket")
    limit = 200 << 20
    with socket.socket(fileno=os.dup(raw.fileno())) as sock:
        sent = await asyncio.to_thread(_push_until_blocked, sock, msg, limit)
    # The server holds its one sink write at the gate and reads nothing more, so the sends
    # stall once the kernel's buffers are full; a server that kept reading (into memory, or
    # into writes it does not wait for) would take all 200 MB.
    assert sent < limit // 4
    assert sink.first_write.is_set() and sink.in_flight == 1
    harness.gate.set()
    c.writer.close()  # a send cut short by the stall leaves a partial message: end here
    async with asyncio.timeout(WAIT):
        await sink.closed.wait()
    assert bytes(sink.data).count(frame) == sent // len(msg)
    assert sink.max_in_flight == 1


async def test_ping_request_gets_a_response(harness: Harness) -> None:
    c = await Client.open(harness.server.port)
    await c.handshake()
    c.send(2, 4, 0, struct.pack(">HI", 6, 12345))
    await c.writer.drain()
    async with asyncio.timeout(WAIT):
        while True:
            msgs = [m for m in c.inbox if m.type_id == 4]
            if msgs:
                break
            c.inbox += c.parser.feed(await c.reader.read(65536))
    assert msgs[0].body == struct.pack(">HI", 7, 12345)
