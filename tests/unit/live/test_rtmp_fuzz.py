"""Hostile input to the RTMP ingest: the chunk parser and AMF0 decoder raise nothing but their
own errors, and a server fed random messages after a valid handshake never fails internally."""

from __future__ import annotations

import asyncio
import struct

import pytest
from structlog.testing import capture_logs

from mediaplane.live import RtmpServer, _amf
from mediaplane.live._chunks import ChunkParser, RtmpProtocolError, encode_message

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a test dependency")
st = hypothesis.strategies
given, settings, HealthCheck = hypothesis.given, hypothesis.settings, hypothesis.HealthCheck

AMF_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
NAMES = st.sampled_from(
    ["connect", "createStream", "publish", "releaseStream", "FCPublish", "FCUnpublish",
     "deleteStream", "closeStream", "play", "_checkbw", "@setDataFrame", "onMetaData", ""]
)  # fmt: skip
TYPES = st.sampled_from([1, 2, 3, 4, 5, 6, 8, 9, 15, 17, 18, 20, 22, 0, 7, 255])


def _valid_stream() -> bytes:
    out = encode_message(2, 1, 0, struct.pack(">I", 4096), chunk_size=128)
    out += encode_message(3, 20, 0, _amf.encode("connect", 1.0, {"app": "live"}), chunk_size=4096)
    for i in range(6):
        out += encode_message(
            4, 9, 1, bytes([0x17, 1]) + bytes(300), chunk_size=4096, timestamp=i * 33
        )
    return out


VALID = _valid_stream()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.integers(1, 500))
def test_parser_on_random_bytes(data: bytes, step: int) -> None:
    p = ChunkParser(max_message_size=1 << 16, max_buffered=1 << 17)
    try:
        for i in range(0, len(data), step):
            p.feed(data[i : i + step])
            assert p.pending <= (1 << 17) + (1 << 16) + step
    except RtmpProtocolError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8))
def test_parser_on_mutated_streams(flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for pos, value in flips:
        data[pos] = value
    try:
        ChunkParser().feed(bytes(data))
    except RtmpProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500))
def test_amf_on_random_bytes(data: bytes) -> None:
    try:
        _amf.decode_all(data)
    except _amf.AmfError:
        pass


@settings(max_examples=30, deadline=None)
@given(st.lists(AMF_VALUES, max_size=6))
def test_amf_round_trip(values: list[object]) -> None:
    assert _amf.decode_all(_amf.encode_all(values)) == [_normalize(v) for v in values]


def _normalize(v: object) -> object:
    if isinstance(v, list):
        return [_normalize(x) for x in v]
    if isinstance(v, dict):
        return {k: _normalize(x) for k, x in v.items()}
    return v


class _NullSink:
    async def write(self, data: bytes) -> None:
        pass

    async def close(self) -> None:
        pass


async def _run_session(messages: list[tuple[int, int, int, bytes]]) -> list[dict[str, object]]:
    async def authorize(app: str, key: str) -> object | None:
        return key or None

    async def open_sink(ticket: object) -> _NullSink:
        return _NullSink()

    server = RtmpServer(authorize, open_sink, idle_timeout=2, publish_timeout=2)
    await server.start("127.0.0.1", 0)
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x03" + bytes(1536))
        s = await reader.readexactly(3073)
        writer.write(s[1:1537])
        for csid, type_id, msid, body in messages:
            writer.write(encode_message(csid, type_id, msid, body, chunk_size=128))
        writer.write_eof()
        async with asyncio.timeout(10):
            try:
                while await reader.read(65536):
                    pass
            except ConnectionError:
                pass
        writer.close()
        await server.close()
    return logs


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(2, 63),
            TYPES,
            st.sampled_from([0, 1, 2]),
            st.one_of(
                st.binary(max_size=64),
                st.tuples(NAMES, st.lists(AMF_VALUES, max_size=4)).map(
                    lambda t: _amf.encode_all([t[0], 1.0, *t[1]])
                ),
            ),
        ),
        max_size=12,
    )
)
def test_server_on_random_messages(messages: list[tuple[int, int, int, bytes]]) -> None:
    # A valid start, so the random messages reach the command and media handlers.
    start = [
        (3, 20, 0, _amf.encode("connect", 1.0, {"app": "live"})),
        (3, 20, 0, _amf.encode("createStream", 2.0, None)),
        (5, 20, 1, _amf.encode("publish", 3.0, None, "fuzz-key", "live")),
    ]
    logs = asyncio.run(_run_session(start + messages))
    assert not [e for e in logs if e["event"] == "rtmp.internal_error"], logs
    assert [e["event"] for e in logs].count("rtmp.closed") == 1
