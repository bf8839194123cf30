"""RTMP chunk streams, sans I/O: bytes in, whole messages out (RTMP spec 1.0, section 5.3).

:class:`ChunkParser` reassembles messages from interleaved chunk streams and applies the two
protocol control messages that change how the following bytes parse (Set Chunk Size, Abort);
:func:`encode_message` cuts a message into chunks for sending. Everything a peer controls is
bounded: the size of one message, the number of chunk streams, the bytes held in partly
received messages, the chunk size. A violation raises :class:`RtmpProtocolError`, whose
``reason`` is a short code for the log line.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
COMMAND_AMF3 = 17
DATA_AMF0 = 18
COMMAND_AMF0 = 20
AGGREGATE = 22

DEFAULT_CHUNK_SIZE = 128
#: Smallest chunk size a peer may set: smaller ones only multiply per-chunk work.
MIN_CHUNK_SIZE = 128
#: The largest message length the 24-bit field can carry.
MAX_CHUNK_SIZE = 0xFFFFFF
_EXTENDED = 0xFFFFFF
_HEADER_SIZES = (11, 7, 3, 0)
_U32 = struct.Struct(">I")


class RtmpProtocolError(Exception):
    """A peer broke the protocol or a bound; the connection is closed.

    :param reason: a short code for the log line (``huge_message``, ``bad_handshake``, …).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Message:
    """One reassembled RTMP message; ``timestamp`` in milliseconds, modulo 2**32."""

    csid: int
    type_id: int
    stream_id: int
    timestamp: int
    body: bytes


class _Stream:
    """What one chunk stream remembers from its previous headers."""

    __slots__ = ("buf", "delta", "extended", "length", "stream_id", "timestamp", "type_id")

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.extended = False
        self.buf: bytearray | None = None


class ChunkParser:
    """Reassembles RTMP messages from the bytes of one connection.

    :param max_message_size: bytes; a message header announcing more is refused
        (``huge_message``) before any of its body is buffered.
    :param max_chunk_streams: distinct chunk stream ids one connection may use.
    :param max_buffered: bytes held in partly received messages across all chunk streams.
    """

    def __init__(
        self,
        *,
        max_message_size: int = 8 * 1024 * 1024,
        max_chunk_streams: int = 16,
        max_buffered: int = 16 * 1024 * 1024,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_chunk_streams = max_chunk_streams
        self.max_buffered = max_buffered
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self._streams: dict[int, _Stream] = {}
        self._buf = bytearray()
        self._reserved = 0  # announced lengths of the partly received messages

    @property
    def pending(self) -> int:
        """Bytes held: unparsed input plus the announced size of partly received messages."""
        return len(self._buf) + self._reserved

    def feed(self, data: bytes) -> list[Message]:
        """Take the next bytes of the connection; return the messages they complete, in order
        (Set Chunk Size and Abort are applied here and not returned)."""
        buf = self._buf
        buf += data
        out: list[Message] = []
        pos = 0
        n = len(buf)
        try:
            while True:
                used = self._chunk(buf, pos, n, out)
                if not used:
                    break
                pos += used
        finally:
            del buf[:pos]
        return out

    def _chunk(self, buf: bytearray, pos: int, n: int, out: list[Message]) -> int:
        """Parse one chunk at ``pos``; return the bytes it took, or 0 when incomplete."""
        if pos >= n:
            return 0
        b0 = buf[pos]
        fmt = b0 >> 6
        csid = b0 & 0x3F
        p = pos + 1
        if csid == 0:
            if p + 1 > n:
                return 0
            csid = 64 + buf[p]
            p += 1
        elif csid == 1:
            if p + 2 > n:
                return 0
            csid = 64 + buf[p] + (buf[p + 1] << 8)
            p += 2
        hsize = _HEADER_SIZES[fmt]
        if p + hsize > n:
            return 0
        st = self._streams.get(csid)
        if st is None:
            if fmt != 0:
                raise RtmpProtocolError(
                    "bad_chunk", f"chunk stream {csid} starts with a type {fmt} header"
                )
            if len(self._streams) >= self.max_chunk_streams:
                raise RtmpProtocolError(
                    "too_many_chunk_streams", f"more than {self.max_chunk_streams} chunk streams"
                )
            st = _Stream()
            self._streams[csid] = st
        if fmt != 3 and st.buf is not None:
            raise RtmpProtocolError(
                "bad_chunk", f"new message header inside a message on chunk stream {csid}"
            )
        ts_field = st.delta
        length = st.length
        type_id = st.type_id
        stream_id = st.stream_id
        if fmt <= 2:
            ts_field = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2]
        if fmt <= 1:
            length = (buf[p + 3] << 16) | (buf[p + 4] << 8) | buf[p + 5]
            type_id = buf[p + 6]
        if fmt == 0:
            stream_id = int.from_bytes(buf[p + 7 : p + 11], "little")
        p += hsize
        extended = st.extended if fmt == 3 else ts_field == _EXTENDED
        if extended:
            if p + 4 > n:
                return 0
            if fmt != 3:
                ts_field = _U32.unpack_from(buf, p)[0]
            p += 4
        if length > self.max_message_size:
            raise RtmpProtocolError(
                "huge_message",
                f"message of {length} bytes (type {type_id}), bound {self.max_message_size}",
            )
        have = 0 if st.buf is None else len(st.buf)
        take = min(self.chunk_size, length - have)
        if p + take > n:
            return 0
        # The whole chunk is here: commit the header to the chunk stream's state.
        if st.buf is None:
            if fmt == 0:
                st.timestamp = ts_field
                st.delta = ts_field  # a type 3 after a type 0 repeats its timestamp as a delta
            else:
                if fmt != 3:
                    st.delta = ts_field
                st.timestamp = (st.timestamp + st.delta) & 0xFFFFFFFF
            st.length = length
            st.type_id = type_id
            st.stream_id = stream_id
            st.extended = extended
            if take == length:  # one chunk: no reassembly buffer
                self._complete(csid, st, bytes(buf[p : p + take]), out)
                return p + take - pos
            if self._reserved + length > self.max_buffered:
                raise RtmpProtocolError("too_much_buffered", "partly received messages too large")
            self._reserved += length
            st.buf = bytearray()
        st.buf += buf[p : p + take]
        if len(st.buf) >= st.length:
            body = bytes(st.buf)
            self._reserved -= st.length
            st.buf = None
            self._complete(csid, st, body, out)
        return p + take - pos

    def _complete(self, csid: int, st: _Stream, body: bytes, out: list[Message]) -> None:
        if st.type_id == SET_CHUNK_SIZE:
            if len(body) < 4:
                raise RtmpProtocolError("bad_control", "short Set Chunk Size")
            size = _U32.unpack_from(body)[0] & 0x7FFFFFFF
            if not MIN_CHUNK_SIZE <= size <= MAX_CHUNK_SIZE:
                raise RtmpProtocolError("bad_chunk_size", f"chunk size {size}")
            self.chunk_size = size
            return
        if st.type_id == ABORT:
            if len(body) < 4:
                raise RtmpProtocolError("bad_control", "short Abort")
            target = self._streams.get(_U32.unpack_from(body)[0])
            if target is not None and target.buf is not None:
                self._reserved -= target.length
                target.buf = None
            return
        out.append(Message(csid, st.type_id, st.stream_id, st.timestamp, body))


def encode_message(
    csid: int, type_id: int, stream_id: int, body: bytes, *, chunk_size: int, timestamp: int = 0
) -> bytes:
    """``body`` as chunks: a type 0 header, then type 3 continuation headers.

    :param csid: 2..63 (the one-byte basic header; all this server sends).
    """
    if not 2 <= csid <= 63:
        raise ValueError("csid must be 2..63")
    ts = timestamp & 0xFFFFFFFF
    ext = ts >= _EXTENDED
    size = len(body)
    out = bytearray()
    out.append(csid)
    out += (_EXTENDED if ext else ts).to_bytes(3, "big")
    out += size.to_bytes(3, "big")
    out.append(type_id)
    out += stream_id.to_bytes(4, "little")
    if ext:
        out += _U32.pack(ts)
    for i in range(0, max(size, 1), chunk_size):
        if i:
            out.append(0xC0 | csid)
            if ext:
                out += _U32.pack(ts)
        out += body[i : i + chunk_size]
    return bytes(out)
