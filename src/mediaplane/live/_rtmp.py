"""An RTMP ingest server in asyncio: many publishers on one port, routed by stream key.

One :class:`RtmpServer` accepts publishers (``rtmp://host:port/live/{stream_key}``), checks the
key through ``authorize(app, key)`` before any media is accepted, and writes each publisher's
audio, video and ``onMetaData`` as an FLV byte stream to the sink ``open_sink(ticket)`` returns.
Everything a peer controls is bounded: connections (in all and per address) and the
handshake time, TLS's included for RTMPS (:class:`._limits.IngestLimits`, the rule SRT
shares), the time to publish, idle time, the size of a message, chunk streams, bytes
buffered. A slow sink stops the connection's reads (TCP backpressure), never an unbounded
queue.

Log lines (``mediaplane.live``): ``rtmp.connect``, ``rtmp.publish``, ``rtmp.refused`` and
``rtmp.closed``, each with the remote address and, where there is one, a reason; a stream key
appears only as the first 12 hex digits of its SHA-256.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import struct
import time
from collections.abc import Awaitable, Callable
from ssl import SSLContext
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import structlog

from mediaplane.media import MediaError

from . import _amf, _flv
from ._chunks import (
    ACKNOWLEDGEMENT,
    AGGREGATE,
    AUDIO,
    COMMAND_AMF0,
    COMMAND_AMF3,
    DATA_AMF0,
    DATA_AMF3,
    SET_CHUNK_SIZE,
    SET_PEER_BANDWIDTH,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    ChunkParser,
    Message,
    RtmpProtocolError,
    encode_message,
)
from ._errors import LiveError, PublishRefused
from ._limits import IngestLimits, Refusal

log = structlog.get_logger("mediaplane.live")

_HANDSHAKE_SIZE = 1536
_RTMP_VERSION = 3
_OUT_CHUNK_SIZE = 4096
_WINDOW = 2_500_000
_READ_SIZE = 64 * 1024
_STREAM_ID = 1
_CSID_CONTROL = 2
_CSID_COMMAND = 3
_CSID_STATUS = 5
_UC_STREAM_BEGIN = 0
_UC_PING_REQUEST = 6
_UC_PING_RESPONSE = 7
_U32 = struct.Struct(">I")


@runtime_checkable
class PublishSink(Protocol):
    """Where one publisher's FLV goes (the live packager implements it)."""

    async def write(self, data: bytes) -> None:
        """FLV bytes in order: the file header with the first tags, then tags."""

    async def close(self) -> None:
        """The publisher is gone (or failed): flush and stop."""


#: ``(app, stream_key) -> ticket or None``; None refuses the publisher.
Authorize = Callable[[str, str], Awaitable[object | None]]
#: ``ticket -> sink`` for a publisher that ``authorize`` accepted.
OpenSink = Callable[[object], Awaitable[PublishSink]]


def key_hash(stream_key: str) -> str:
    """What the log shows of a stream key: 12 hex digits of its SHA-256."""
    return hashlib.sha256(stream_key.encode("utf-8", "replace")).hexdigest()[:12]


class _Closed(Exception):
    """End this connection (after any reply was sent); ``reason`` goes in the log line."""

    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


class RtmpServer:
    """RTMP publish ingest on one TCP port.

    :param authorize: ``(app, stream_key) -> ticket | None``, awaited before any media.
    :param open_sink: ``ticket -> PublishSink`` for an accepted publisher.
    :param max_connections: connections held at once; more are closed at accept.
    :param max_connections_per_address: the same, per remote IP address.
    :param limits: the admission rule (:class:`IngestLimits`) instead of the three values
        above; one object shared by servers makes them one pool (RTMP and RTMPS).
    :param apps: application names a client may connect to (``rtmp://host/{app}/{key}``).
    :param handshake_timeout: seconds for C0/C1/C2.
    :param publish_timeout: seconds from accept until ``publish`` is accepted.
    :param idle_timeout: seconds without a byte from the peer before it is dropped.
    :param sink_timeout: seconds one ``sink.write`` may take before the publisher is dropped.
    :param authorize_timeout: seconds ``authorize`` and ``open_sink`` may take, each.
    :param max_message_size: bytes in one RTMP message (a video frame); more closes.
    :param max_chunk_streams: chunk stream ids one connection may use.
    """

    def __init__(
        self,
        authorize: Authorize,
        open_sink: OpenSink,
        *,
        max_connections: int = 64,
        max_connections_per_address: int = 16,
        apps: tuple[str, ...] = ("live",),
        handshake_timeout: float = 5.0,
        publish_timeout: float = 10.0,
        idle_timeout: float = 10.0,
        sink_timeout: float = 30.0,
        authorize_timeout: float = 10.0,
        max_message_size: int = 8 * 1024 * 1024,
        max_chunk_streams: int = 16,
        limits: IngestLimits | None = None,
    ) -> None:
        self._authorize = authorize
        self._open_sink = open_sink
        self.limits = limits or IngestLimits(
            max_connections, max_connections_per_address, handshake_timeout
        )
        self.apps = apps
        self.handshake_timeout = self.limits.handshake_timeout
        self.publish_timeout = publish_timeout
        self.idle_timeout = idle_timeout
        self.sink_timeout = sink_timeout
        self.authorize_timeout = authorize_timeout
        self.max_message_size = max_message_size
        self.max_chunk_streams = max_chunk_streams
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ssl: SSLContext | None = None
        self._started = time.monotonic()

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`; useful when it was started on port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("RtmpServer is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        """Connections held now."""
        return len(self._tasks)

    async def start(self, host: str, port: int, *, ssl: SSLContext | None = None) -> None:
        """Listen on ``host:port`` (port 0: any free port, see :attr:`port`).

        :param ssl: a server context for RTMPS: each connection is admitted first (its
            place under the limits), then its TLS handshake gets the handshake timeout; a
            flood of half-open TLS peers is bounded like any other.
        """
        self._ssl = ssl
        self._server = await asyncio.start_server(self._accept, host, port, limit=_READ_SIZE)
        log.debug("rtmp.listening", host=host, port=self.port, tls=ssl is not None)

    async def close(self) -> None:
        """Stop listening and end every connection (each sink is closed)."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else "?"
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"
        slot = self.limits.admit(address)
        if isinstance(slot, Refusal):
            log.warning("rtmp.refused", remote=remote, reason=slot.reason)
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._ssl is not None and not await self._start_tls(writer, remote):
                return
            await _Connection(self, reader, writer, remote).run()
        finally:
            self._tasks.discard(task)
            slot.release()

    async def _start_tls(self, writer: asyncio.StreamWriter, remote: str) -> bool:
        """The TLS handshake of an RTMPS peer, within the handshake timeout; False (the
        connection dropped, the reason logged) when it fails."""
        assert self._ssl is not None
        try:
            async with asyncio.timeout(self.handshake_timeout):
                await writer.start_tls(self._ssl)
            return True
        except TimeoutError:
            reason = "tls_handshake_timeout"
        except (OSError, EOFError) as exc:  # ssl.SSLError is an OSError
            reason = "tls_handshake_failed"
            log.debug("rtmp.tls_failed", remote=remote, error=str(exc))
        log.warning("rtmp.refused", remote=remote, reason=reason)
        writer.transport.abort()
        return False

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000) & 0xFFFFFFFF


class _Connection:
    """One client, from handshake to close: a loop of read → parse → handle, in order."""

    def __init__(
        self,
        server: RtmpServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        remote: str,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.remote = remote
        self.parser = ChunkParser(
            max_message_size=server.max_message_size,
            max_chunk_streams=server.max_chunk_streams,
            max_buffered=server.max_message_size + (1 << 20),
        )
        self.started = time.monotonic()
        self.app: str | None = None
        self.stream_created = False
        self.key_hash: str | None = None
        self.sink: PublishSink | None = None
        self.publishing = False
        self.unpublished = False
        self.header_sent = False
        self.pending: list[bytes] = []
        self.bytes_in = 0
        self.acked = 0
        self.ack_window = 0
        self.tags = 0
        self.last_media = 0.0

    async def run(self) -> None:
        reason = "eof"
        log.info("rtmp.connect", remote=self.remote)
        try:
            await self._handshake()
            await self._loop()
        except _Closed as exc:
            reason = exc.reason
            if exc.refused:
                log.warning("rtmp.refused", remote=self.remote, reason=reason, key=self.key_hash)
        except RtmpProtocolError as exc:
            reason = exc.reason
            log.warning("rtmp.refused", remote=self.remote, reason=reason, detail=exc.detail)
        except _amf.AmfError as exc:
            reason = "bad_amf"
            log.warning("rtmp.refused", remote=self.remote, reason=reason, detail=str(exc))
        except (ConnectionError, asyncio.IncompleteReadError):
            reason = "reset"
        except asyncio.CancelledError:
            reason = "server_closed"
            raise
        except Exception:  # a bug here must cost one connection, never the server
            reason = "internal_error"
            log.exception("rtmp.internal_error", remote=self.remote, key=self.key_hash)
        finally:
            await self._finish(reason)

    async def _finish(self, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self._close_sink()
        # A graceful close, so a refused client reads its onStatus before the FIN; bounded,
        # and the socket is dropped if the peer does not take the bytes.
        self.writer.close()
        try:
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()
        except (TimeoutError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.writer.transport.abort()
        log.info(
            "rtmp.closed",
            remote=self.remote,
            reason=reason,
            key=self.key_hash,
            bytes_in=self.bytes_in,
            tags=self.tags,
            seconds=round(time.monotonic() - self.started, 3),
        )

    async def _handshake(self) -> None:
        try:
            async with asyncio.timeout(self.server.handshake_timeout):
                c0 = await self.reader.readexactly(1)
                if c0[0] != _RTMP_VERSION:
                    raise RtmpProtocolError(
                        "bad_handshake", f"C0 version {c0[0]} (only plain RTMP 3 is served)"
                    )
                c1 = await self.reader.readexactly(_HANDSHAKE_SIZE)
                # The simple handshake: S1 carries a zero version, so clients (ffmpeg,
                # librtmp/OBS) skip the digest check; S2 echoes C1.
                s1 = _U32.pack(self.server.uptime_ms()) + b"\x00" * 4 + os.urandom(1528)
                self.writer.write(bytes([_RTMP_VERSION]) + s1 + c1)
                await self.writer.drain()
                await self.reader.readexactly(_HANDSHAKE_SIZE)
        except TimeoutError:
            raise RtmpProtocolError(
                "handshake_timeout", f"no handshake within {self.server.handshake_timeout} s"
            ) from None

    async def _loop(self) -> None:
        server = self.server
        publish_deadline = self.started + server.publish_timeout
        while True:
            timeout = server.idle_timeout
            if not self.publishing and not self.unpublished:
                left = publish_deadline - time.monotonic()
                if left <= 0:
                    raise _Closed("publish_timeout", refused=True)
                timeout = min(timeout, left)
            try:
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(_READ_SIZE)
            except TimeoutError:
                if not self.publishing and time.monotonic() >= publish_deadline:
                    raise _Closed("publish_timeout", refused=True) from None
                raise _Closed("idle_timeout") from None
            if not data:
                return
            if self.publishing and time.monotonic() - self.last_media > server.idle_timeout:
                raise _Closed("no_media")  # bytes arrive, but no audio or video
            self.bytes_in += len(data)
            for msg in self.parser.feed(data):
                await self._on_message(msg)
            await self._flush()
            if self.ack_window and self.bytes_in - self.acked >= self.ack_window:
                self.acked = self.bytes_in
                await self._send(
                    _CSID_CONTROL, ACKNOWLEDGEMENT, 0, _U32.pack(self.bytes_in & 0xFFFFFFFF)
                )

    async def _on_message(self, msg: Message) -> None:
        handler = _HANDLERS.get(msg.type_id)
        if handler is not None:
            await handler(self, msg)

    # --- media -----------------------------------------------------------------------------

    def _check_media(self, msg: Message) -> None:
        if not self.publishing:
            reason = "media_after_unpublish" if self.unpublished else "media_before_publish"
            raise _Closed(reason, refused=True)
        if msg.stream_id != _STREAM_ID:
            raise _Closed("media_on_unknown_stream", refused=True)

    async def _on_media(self, msg: Message) -> None:
        self._check_media(msg)
        self._add_tag(msg.type_id, msg.timestamp, msg.body)

    async def _on_data(self, msg: Message) -> None:
        self._check_media(msg)
        body = msg.body[1:] if msg.type_id == DATA_AMF3 else msg.body
        name, end = _amf.decode_one(body)
        if name == "@setDataFrame":
            body = body[end:]
            name, _ = _amf.decode_one(body)
        if name == "onMetaData":
            self._add_tag(_flv.SCRIPT, msg.timestamp, body)

    async def _on_aggregate(self, msg: Message) -> None:
        """Sub-messages in FLV tag layout; their timestamps are shifted to the message's."""
        self._check_media(msg)
        body = msg.body
        pos = 0
        base: int | None = None
        while pos + 11 <= len(body):
            kind = body[pos]
            size = int.from_bytes(body[pos + 1 : pos + 4], "big")
            ts = int.from_bytes(body[pos + 4 : pos + 7], "big") | (body[pos + 7] << 24)
            end = pos + 11 + size
            if end + 4 > len(body):
                raise RtmpProtocolError("bad_aggregate", "sub-message past the end")
            base = ts if base is None else base
            if kind in (_flv.AUDIO, _flv.VIDEO):
                self._add_tag(kind, msg.timestamp + ts - base, body[pos + 11 : end])
            pos = end + 4

    def _add_tag(self, kind: int, timestamp: int, body: bytes) -> None:
        if not self.header_sent:
            self.header_sent = True
            self.pending.append(_flv.file_header())
        self.pending.append(_flv.tag(kind, timestamp, body))
        self.tags += 1
        self.last_media = time.monotonic()

    async def _flush(self) -> None:
        if not self.pending or self.sink is None:
            return
        data = b"".join(self.pending)
        self.pending.clear()
        try:
            async with asyncio.timeout(self.server.sink_timeout):
                await self.sink.write(data)
        except TimeoutError:
            raise _Closed("sink_stalled") from None
        except (LiveError, MediaError) as exc:  # the stream was disabled, or its media refused
            log.info("rtmp.sink_refused", remote=self.remote, key=self.key_hash, error=str(exc))
            raise _Closed(getattr(exc, "code", None) or "sink_refused") from None
        self.last_media = time.monotonic()  # time spent waiting on the sink is not the peer's

    async def _close_sink(self) -> None:
        sink, self.sink = self.sink, None
        self.publishing = False
        if sink is not None:
            self.unpublished = True
            await sink.close()

    # --- control ---------------------------------------------------------------------------

    async def _on_window_ack(self, msg: Message) -> None:
        if len(msg.body) >= 4:
            self.ack_window = _U32.unpack_from(msg.body)[0]

    async def _on_user_control(self, msg: Message) -> None:
        if len(msg.body) >= 6 and int.from_bytes(msg.body[:2], "big") == _UC_PING_REQUEST:
            await self._send(
                _CSID_CONTROL,
                USER_CONTROL,
                0,
                _UC_PING_RESPONSE.to_bytes(2, "big") + msg.body[2:6],
            )

    # --- commands --------------------------------------------------------------------------

    async def _on_command(self, msg: Message) -> None:
        body = msg.body[1:] if msg.type_id == COMMAND_AMF3 else msg.body
        values = _amf.decode_all(body)
        if len(values) < 2 or not isinstance(values[0], str):
            raise RtmpProtocolError("bad_command", "command without a name")
        name = values[0]
        txn = values[1] if isinstance(values[1], float) else 0.0
        handler = _COMMANDS.get(name)
        if handler is None:
            log.debug("rtmp.command_ignored", remote=self.remote, command=name[:40])
            return
        await self._flush()  # media that came before this command reaches the sink first
        await handler(self, msg, txn, values[2:])

    async def _cmd_connect(self, msg: Message, txn: float, args: list[object]) -> None:
        if self.app is not None:
            raise _Closed("second_connect", refused=True)
        props = args[0] if args and isinstance(args[0], dict) else {}
        app = _app_name(props)
        if app not in self.server.apps:
            await self._send_command(
                _CSID_COMMAND,
                0,
                "_error",
                txn,
                None,
                _status("error", "NetConnection.Connect.Rejected", "Unknown application."),
            )
            raise _Closed("unknown_app", refused=True)
        self.app = app
        await self._send(_CSID_CONTROL, WINDOW_ACK_SIZE, 0, _U32.pack(_WINDOW))
        await self._send(_CSID_CONTROL, SET_PEER_BANDWIDTH, 0, _U32.pack(_WINDOW) + b"\x02")
        await self._send(_CSID_CONTROL, SET_CHUNK_SIZE, 0, _U32.pack(_OUT_CHUNK_SIZE))
        result = _status("status", "NetConnection.Connect.Success", "Connection succeeded.")
        result["objectEncoding"] = 0.0
        await self._send_command(
            _CSID_COMMAND,
            0,
            "_result",
            txn,
            {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
            result,
        )

    async def _cmd_ack_only(self, msg: Message, txn: float, args: list[object]) -> None:
        if txn:
            await self._send_command(_CSID_COMMAND, 0, "_result", txn, None)

    async def _cmd_create_stream(self, msg: Message, txn: float, args: list[object]) -> None:
        if self.app is None:
            raise _Closed("create_stream_before_connect", refused=True)
        self.stream_created = True
        await self._send_command(_CSID_COMMAND, 0, "_result", txn, None, float(_STREAM_ID))

    async def _cmd_publish(self, msg: Message, txn: float, args: list[object]) -> None:
        if self.app is None or not self.stream_created:
            raise _Closed("publish_before_create_stream", refused=True)
        if self.publishing or self.unpublished:
            raise _Closed("second_publish", refused=True)
        key = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        self.key_hash = key_hash(key) if key else None
        ticket = None
        if key:
            try:
                async with asyncio.timeout(self.server.authorize_timeout):
                    ticket = await self.server._authorize(self.app, key)
            except TimeoutError:
                await self._publish_status("error", "NetStream.Publish.Failed", "Try again.")
                raise _Closed("authorize_timeout", refused=True) from None
            except Exception:
                log.exception("rtmp.authorize_failed", remote=self.remote, key=self.key_hash)
                await self._publish_status("error", "NetStream.Publish.Failed", "Try again.")
                raise _Closed("authorize_error", refused=True) from None
        if ticket is None:
            await self._publish_status("error", "NetStream.Publish.BadName", "Unknown stream key.")
            raise _Closed("bad_key", refused=True)
        try:
            async with asyncio.timeout(self.server.authorize_timeout):
                sink = await self.server._open_sink(ticket)
        except TimeoutError:
            await self._publish_status("error", "NetStream.Publish.Failed", "Try again.")
            raise _Closed("open_sink_timeout", refused=True) from None
        except PublishRefused as exc:  # disabled, or a publisher is on it already
            await self._publish_status("error", "NetStream.Publish.BadName", str(exc))
            raise _Closed(exc.code, refused=True) from None
        except Exception:
            log.exception("rtmp.open_sink_failed", remote=self.remote, key=self.key_hash)
            await self._publish_status("error", "NetStream.Publish.Failed", "Try again.")
            raise _Closed("open_sink_error", refused=True) from None
        self.sink = sink
        self.publishing = True
        self.last_media = time.monotonic()
        await self._send(
            _CSID_CONTROL,
            USER_CONTROL,
            0,
            _UC_STREAM_BEGIN.to_bytes(2, "big") + _U32.pack(_STREAM_ID),
        )
        await self._publish_status("status", "NetStream.Publish.Start", "Publishing.")
        log.info("rtmp.publish", remote=self.remote, app=self.app, key=self.key_hash)

    async def _cmd_unpublish(self, msg: Message, txn: float, args: list[object]) -> None:
        await self._close_sink()

    async def _publish_status(self, level: str, code: str, description: str) -> None:
        await self._send_command(
            _CSID_STATUS, _STREAM_ID, "onStatus", 0.0, None, _status(level, code, description)
        )

    # --- sending ---------------------------------------------------------------------------

    async def _send_command(self, csid: int, stream_id: int, *values: object) -> None:
        await self._send(csid, COMMAND_AMF0, stream_id, _amf.encode(*values))

    async def _send(self, csid: int, type_id: int, stream_id: int, body: bytes) -> None:
        self.writer.write(
            encode_message(csid, type_id, stream_id, body, chunk_size=self._out_chunk_size())
        )
        try:
            async with asyncio.timeout(self.server.idle_timeout):
                await self.writer.drain()
        except TimeoutError:
            raise _Closed("write_stalled") from None

    def _out_chunk_size(self) -> int:
        # Set Chunk Size goes out with connect's reply and applies from the message after it.
        return _OUT_CHUNK_SIZE if self.app is not None else 128


def _status(level: str, code: str, description: str) -> dict[str, object]:
    return {"level": level, "code": code, "description": description}


def _app_name(props: dict[str, object]) -> str:
    """The application from connect's ``app`` (or the first path segment of ``tcUrl``)."""
    app = props.get("app")
    if not isinstance(app, str) or not app.strip("/"):
        tc = props.get("tcUrl")
        try:
            app = urlsplit(tc).path if isinstance(tc, str) else ""
        except ValueError:  # "rtmp://[" and the like
            app = ""
    return app.split("?", 1)[0].strip("/").split("/", 1)[0]


_Handler = Callable[[_Connection, Message], Awaitable[None]]
_Command = Callable[[_Connection, Message, float, list[object]], Awaitable[None]]

_HANDLERS: dict[int, _Handler] = {
    AUDIO: _Connection._on_media,
    VIDEO: _Connection._on_media,
    DATA_AMF0: _Connection._on_data,
    DATA_AMF3: _Connection._on_data,
    AGGREGATE: _Connection._on_aggregate,
    COMMAND_AMF0: _Connection._on_command,
    COMMAND_AMF3: _Connection._on_command,
    WINDOW_ACK_SIZE: _Connection._on_window_ack,
    USER_CONTROL: _Connection._on_user_control,
}

_COMMANDS: dict[str, _Command] = {
    "connect": _Connection._cmd_connect,
    "releaseStream": _Connection._cmd_ack_only,
    "FCPublish": _Connection._cmd_ack_only,
    "createStream": _Connection._cmd_create_stream,
    "publish": _Connection._cmd_publish,
    "FCUnpublish": _Connection._cmd_unpublish,
    "deleteStream": _Connection._cmd_unpublish,
    "closeStream": _Connection._cmd_unpublish,
}
