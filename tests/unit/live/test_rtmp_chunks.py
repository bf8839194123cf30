"""The sans-I/O parts of the RTMP ingest: chunk reassembly, AMF0, FLV tags."""

from __future__ import annotations

import struct

import pytest

from mediaplane.live import _amf, _flv
from mediaplane.live._chunks import (
    ChunkParser,
    RtmpProtocolError,
    encode_message,
)


def _basic(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes([(fmt << 6) | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([(fmt << 6) | 1, (csid - 64) & 0xFF, (csid - 64) >> 8])


def _fmt0(csid: int, ts: int, length: int, type_id: int, msid: int) -> bytes:
    ext = ts >= 0xFFFFFF
    out = _basic(0, csid) + (0xFFFFFF if ext else ts).to_bytes(3, "big")
    out += length.to_bytes(3, "big") + bytes([type_id]) + msid.to_bytes(4, "little")
    return out + (struct.pack(">I", ts) if ext else b"")


def _fmt1(csid: int, delta: int, length: int, type_id: int) -> bytes:
    return _basic(1, csid) + delta.to_bytes(3, "big") + length.to_bytes(3, "big") + bytes([type_id])


def _fmt2(csid: int, delta: int) -> bytes:
    return _basic(2, csid) + delta.to_bytes(3, "big")


def test_fmt0_to_3_timestamps_and_deltas() -> None:
    p = ChunkParser()
    data = (
        _fmt0(6, 1000, 3, 9, 1)
        + b"abc"
        + _fmt1(6, 33, 2, 9)
        + b"de"
        + _fmt2(6, 34)
        + b"fg"
        + _basic(3, 6)  # a new message repeating the last delta (34) and length (2)
        + b"hi"
    )
    msgs = p.feed(data)
    assert [(m.timestamp, m.body, m.type_id, m.stream_id) for m in msgs] == [
        (1000, b"abc", 9, 1),
        (1033, b"de", 9, 1),
        (1067, b"fg", 9, 1),
        (1101, b"hi", 9, 1),
    ]


def test_type3_after_type0_repeats_the_timestamp_as_delta() -> None:
    """RTMP spec 5.3.1.2.4, and what ffmpeg's reader and writer do."""
    msgs = ChunkParser().feed(_fmt0(4, 40, 1, 8, 1) + b"x" + _basic(3, 4) + b"y")
    assert [m.timestamp for m in msgs] == [40, 80]


def test_message_split_into_chunks_and_interleaved_streams() -> None:
    p = ChunkParser()
    body_v = bytes(range(256)) + b"V" * 44  # 300 bytes: 128 + 128 + 44
    body_a = b"A" * 200
    data = (
        _fmt0(6, 0, 300, 9, 1)
        + body_v[:128]
        + _fmt0(4, 5, 200, 8, 1)
        + body_a[:128]
        + _basic(3, 6)
        + body_v[128:256]
        + _basic(3, 4)
        + body_a[128:]
        + _basic(3, 6)
        + body_v[256:]
    )
    # Feed one byte at a time: every partial header and partial chunk must wait.
    msgs = [m for i in range(len(data)) for m in p.feed(data[i : i + 1])]
    assert [(m.type_id, m.body) for m in msgs] == [(8, body_a), (9, body_v)]
    assert p.pending == 0


def test_extended_timestamps_on_every_chunk() -> None:
    ts = 0x01234567
    body = b"z" * 200
    data = _fmt0(5, ts, 200, 9, 1) + body[:128] + _basic(3, 5) + struct.pack(">I", ts) + body[128:]
    (m,) = ChunkParser().feed(data)
    assert (m.timestamp, m.body) == (ts, body)
    # and our own writer produces the same layout
    assert encode_message(5, 9, 1, body, chunk_size=128, timestamp=ts) == data


def test_timestamps_wrap_at_32_bits() -> None:
    data = _fmt0(5, 0xFFFFFFF0, 1, 9, 1) + b"a" + _fmt2(5, 0x20) + b"b"
    msgs = ChunkParser().feed(data)
    assert [m.timestamp for m in msgs] == [0xFFFFFFF0, 0x10]


def test_two_and_three_byte_chunk_stream_ids() -> None:
    p = ChunkParser()
    msgs = p.feed(_fmt0(100, 1, 1, 8, 1) + b"a" + _fmt0(1000, 2, 1, 9, 1) + b"b")
    assert [(m.csid, m.body) for m in msgs] == [(100, b"a"), (1000, b"b")]


def test_set_chunk_size_applies_to_the_following_chunks() -> None:
    p = ChunkParser()
    body = b"q" * 1000
    data = encode_message(2, 1, 0, struct.pack(">I", 4096), chunk_size=128)
    data += _fmt0(6, 0, 1000, 9, 1) + body
    (m,) = p.feed(data)
    assert m.body == body and p.chunk_size == 4096


@pytest.mark.parametrize("size", [0, 1, 127, 0x1000000])
def test_set_chunk_size_out_of_bounds(size: int) -> None:
    with pytest.raises(RtmpProtocolError) as exc:
        ChunkParser().feed(encode_message(2, 1, 0, struct.pack(">I", size), chunk_size=128))
    assert exc.value.reason == "bad_chunk_size"


def test_abort_drops_the_partial_message() -> None:
    p = ChunkParser()
    data = _fmt0(6, 0, 300, 9, 1) + b"x" * 128
    data += encode_message(2, 2, 0, struct.pack(">I", 6), chunk_size=128)
    data += _fmt0(6, 10, 2, 9, 1) + b"ok"
    (m,) = p.feed(data)
    assert m.body == b"ok" and p.pending == 0


def test_huge_message_is_refused_from_its_header() -> None:
    p = ChunkParser(max_message_size=1024)
    with pytest.raises(RtmpProtocolError) as exc:
        p.feed(_fmt0(6, 0, 1025, 9, 1))
    assert exc.value.reason == "huge_message"


def test_chunk_streams_are_bounded() -> None:
    p = ChunkParser(max_chunk_streams=3)
    p.feed(b"".join(_fmt0(c, 0, 1, 8, 1) + b"a" for c in (3, 4, 5)))
    with pytest.raises(RtmpProtocolError) as exc:
        p.feed(_fmt0(6, 0, 1, 8, 1) + b"a")
    assert exc.value.reason == "too_many_chunk_streams"


def test_partial_bytes_are_bounded_across_streams() -> None:
    p = ChunkParser(max_message_size=1000, max_buffered=1500)
    p.feed(_fmt0(3, 0, 1000, 9, 1) + b"a" * 128)
    with pytest.raises(RtmpProtocolError) as exc:
        p.feed(_fmt0(4, 0, 1000, 9, 1) + b"b" * 128)
    assert exc.value.reason == "too_much_buffered"


@pytest.mark.parametrize(
    "data",
    [
        _fmt2(7, 0),  # a chunk stream that starts without a type 0 header
        _fmt0(6, 0, 300, 9, 1) + b"x" * 128 + _fmt1(6, 0, 10, 9),  # new header mid-message
    ],
)
def test_bad_chunk_sequences(data: bytes) -> None:
    with pytest.raises(RtmpProtocolError) as exc:
        ChunkParser().feed(data)
    assert exc.value.reason == "bad_chunk"


def test_amf0_round_trip() -> None:
    values = [
        "connect",
        1.0,
        {"app": "live", "tcUrl": "rtmp://h/live", "n": 2.5, "ok": True, "nested": {"a": None}},
        None,
        ["x", 3.0],
        "é" * 40000,  # over 65535 bytes: a long string
    ]
    assert _amf.decode_all(_amf.encode_all(values)) == values


def test_amf0_ecma_array_and_date() -> None:
    data = b"\x08\x00\x00\x00\x01\x00\x01k\x02\x00\x01v\x00\x00\x09" + b"\x0b" + b"\x00" * 10
    assert _amf.decode_all(data) == [{"k": "v"}, 0.0]


@pytest.mark.parametrize(
    "data",
    [
        b"\x02\x00\x10abc",  # string longer than the data
        b"\x0a\xff\xff\xff\xff\x05",  # strict array count past the end
        b"\x03" * 40,  # nesting deeper than the bound
        b"\x11\x00",  # AMF3 switch
        b"\x07\x00\x01",  # reference
        b"\x02\x00\x02\xff\xfe",  # not UTF-8
    ],
)
def test_amf0_hostile(data: bytes) -> None:
    with pytest.raises(_amf.AmfError):
        _amf.decode_all(data)


def test_flv_header_and_tag_layout() -> None:
    assert _flv.file_header() == b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
    tag = _flv.tag(_flv.VIDEO, 0x12345678, b"abc")
    assert tag[:11] == bytes([9, 0, 0, 3, 0x34, 0x56, 0x78, 0x12, 0, 0, 0])
    assert tag[11:14] == b"abc" and tag[14:] == struct.pack(">I", 14)
