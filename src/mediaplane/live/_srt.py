"""An SRT ingest server over libsrt (ctypes): many publishers on one UDP port, routed by
stream id.

One :class:`SrtServer` listens on ``srt://host:port`` and takes publishers whose stream id
names a stream key (``KEY``, ``live/KEY`` or the access-control form ``#!::r=KEY,m=publish``,
see :func:`parse_stream_id`). The key is checked through ``authorize(app, key)`` before the
connection is accepted where that answers quickly (libsrt's listen callback, at handshake
time: a wrong key is rejected with code 1401 and never becomes a connection), and otherwise
right after the accept, before any payload is read. Each accepted publisher's MPEG-TS goes, in
order, to the sink ``open_sink(ticket)`` returns.

Threads: libsrt sockets are not file descriptors asyncio can watch, so one thread accepts
(an SRT epoll on the listener) and one thread per publisher reads; the reader hands batches of
payload to the event loop through a bounded queue and blocks when it is full (a slow sink
stops the reads; libsrt's receive buffer, itself bounded, then drops what is too late, as live
SRT does). No libsrt call runs on the event loop: the listen callback runs on libsrt's receive
thread and waits for the loop, so the loop must never wait for libsrt.

Log lines (``mediaplane.live``): ``srt.listening``, ``srt.connect``, ``srt.refused``,
``srt.sink_refused`` (the sink refused the media, e.g. not H.264/AAC) and ``srt.closed``,
each with the remote address and, where there is one, a reason; a stream key appears only
as the first 12 hex digits of its SHA-256.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

import structlog

from mediaplane.media import MediaError

from . import _libsrt as srt
from ._errors import LiveError
from ._limits import IngestLimits, Refusal, Slot
from ._rtmp import Authorize, OpenSink, PublishSink, key_hash

log = structlog.get_logger("mediaplane.live")

#: Longest stream id libsrt carries (SRTO_STREAMID, srt.h) and longest key taken from it.
MAX_STREAM_ID = 512
MAX_KEY = 256
#: Access-control keys (SRT's AccessControl.md): resource, mode, user, session, host, type.
_KNOWN_KEYS = frozenset("rmusht")
_RECV_POLL_MS = 100  # reader's SRTO_RCVTIMEO: how often it looks at the clock and stop flag
_ACCEPT_POLL_MS = 100
_GONE = (srt.SRT_ECONNLOST, srt.SRT_ENOCONN, srt.SRT_EINVSOCK)  # the publisher is gone


class StreamIdError(ValueError):
    """A stream id this server does not take; ``reason`` for the log, ``reject`` the SRT code."""

    def __init__(self, reason: str, reject: int = srt.SRT_REJX_BAD_REQUEST) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reject = reject


@dataclass(frozen=True)
class StreamId:
    """What a publisher's stream id names: the application and the stream key."""

    app: str
    key: str


def parse_stream_id(stream_id: str, *, default_app: str = "live") -> StreamId:
    """The app and stream key in an SRT stream id, for a publisher.

    Forms: ``KEY``; ``live/KEY`` (a leading ``/`` is ignored); the access-control form
    ``#!::r=KEY,m=publish`` with ``r`` (which may itself be ``live/KEY``), ``m``, ``u``,
    ``s``, ``h``, ``t`` in any order, and unknown keys that some encoders add ignored. ``m``
    other than ``publish`` (``request``: a player; ``bidirectional``) is refused; without ``m``
    the connection is taken as a publisher (this is a publish-only port).

    :raises StreamIdError: with the reason and the SRT reject code to answer.
    """
    if not stream_id:
        raise StreamIdError("no_stream_id")
    if len(stream_id) > MAX_STREAM_ID:
        raise StreamIdError("stream_id_too_long")
    if stream_id[:6].upper() == "%23%21":  # "#!" sent URL-encoded (ffmpeg 5 does not decode)
        stream_id = unquote(stream_id)
    resource = stream_id
    if stream_id.startswith("#!::"):
        fields: dict[str, str] = {}
        for item in stream_id[4:].split(","):
            name, eq, value = item.partition("=")
            if not eq or not name:
                raise StreamIdError("bad_stream_id")
            if name in _KNOWN_KEYS and name in fields:
                raise StreamIdError("bad_stream_id")
            fields.setdefault(name, value)
        mode = fields.get("m", "publish")
        if mode != "publish":
            raise StreamIdError("not_publish", srt.SRT_REJX_BAD_MODE)
        if "r" not in fields:
            raise StreamIdError("no_resource")
        resource = fields["r"]
    parts = resource.lstrip("/").split("/")
    if len(parts) == 1:
        app, key = default_app, parts[0]
    elif len(parts) == 2:
        app, key = parts
    else:
        raise StreamIdError("bad_stream_id")
    if not key or len(key) > MAX_KEY or not key.isascii() or not key.isprintable():
        raise StreamIdError("bad_key_syntax")
    if any(c in key for c in " ,#="):
        raise StreamIdError("bad_key_syntax")
    return StreamId(app, key)


class _Closed(Exception):
    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


@dataclass
class _Pending:
    """A handshake the listen callback admitted, until its socket is accepted."""

    remote: str
    address: str
    stream: StreamId
    ticket: object | None
    future: concurrent.futures.Future[object | None] | None
    slot: Slot
    at: float = field(default_factory=time.monotonic)


class SrtServer:
    """SRT publish ingest on one UDP port.

    :param authorize: ``(app, stream_key) -> ticket | None``, awaited before any payload.
    :param open_sink: ``ticket -> PublishSink`` for an accepted publisher; it receives the
        publisher's MPEG-TS bytes in order.
    :param max_connections: publishers held at once (accepted or in their handshake); more
        are rejected at handshake (SRT reject 1402).
    :param max_connections_per_address: the same, per remote IP address.
    :param handshake_timeout: seconds an admitted handshake has (after ``authorize``'s
        wait) to reach its accept before its place is freed.
    :param limits: the admission rule (:class:`IngestLimits`) instead of the three values
        above (the one RTMP uses).
    :param apps: application names a stream id may name (``live/KEY``).
    :param latency_ms: SRT receive latency (SRTO_LATENCY; the larger of ours and the
        publisher's applies).
    :param passphrase: when set, publishers must encrypt with it (SRTO_PASSPHRASE).
    :param handshake_authorize_wait: seconds the listen callback waits for ``authorize``
        (it holds libsrt's receive thread for the port meanwhile); a later answer is taken
        after the accept, before any payload is read.
    :param authorize_timeout: seconds ``authorize`` and ``open_sink`` may take, each.
    :param idle_timeout: seconds without payload before a publisher is dropped.
    :param sink_timeout: seconds one ``sink.write`` may take before the publisher is dropped.
    :param peer_idle_timeout: seconds without any packet (keepalives included) before libsrt
        declares the connection broken (SRTO_PEERIDLETIMEO).
    :param receive_buffer_bytes: libsrt's receive buffer per connection (SRTO_RCVBUF).
    :param max_queued_bytes: payload held per connection between its reader thread and the
        sink, at most.
    :param batch_bytes: payload handed to the event loop in one piece, at most.
    :param batch_seconds: how long the reader gathers payload before handing it on.
    """

    def __init__(
        self,
        authorize: Authorize,
        open_sink: OpenSink,
        *,
        max_connections: int = 64,
        max_connections_per_address: int = 16,
        handshake_timeout: float = 5.0,
        limits: IngestLimits | None = None,
        apps: tuple[str, ...] = ("live",),
        latency_ms: int = 120,
        passphrase: str | None = None,
        handshake_authorize_wait: float = 0.05,
        authorize_timeout: float = 10.0,
        idle_timeout: float = 10.0,
        sink_timeout: float = 30.0,
        peer_idle_timeout: float = 5.0,
        receive_buffer_bytes: int = 4 << 20,
        max_queued_bytes: int = 1 << 20,
        batch_bytes: int = 64 * 1024,
        batch_seconds: float = 0.02,
    ) -> None:
        self._authorize = authorize
        self._open_sink = open_sink
        self.limits = limits or IngestLimits(
            max_connections, max_connections_per_address, handshake_timeout
        )
        self.apps = apps
        self.latency_ms = latency_ms
        self.passphrase = passphrase
        self.handshake_authorize_wait = handshake_authorize_wait
        self.authorize_timeout = authorize_timeout
        self.idle_timeout = idle_timeout
        self.sink_timeout = sink_timeout
        self.peer_idle_timeout = peer_idle_timeout
        self.receive_buffer_bytes = receive_buffer_bytes
        self.max_queued_bytes = max_queued_bytes
        self.batch_bytes = batch_bytes
        self.batch_seconds = batch_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener = -1
        self._port = 0
        self._lock = threading.Lock()  # guards _pending and _accepted (libsrt threads use them)
        self._pending: dict[int, _Pending] = {}
        self._accepted: dict[int, Slot] = {}  # socket -> its place under the limits
        self._tasks: set[asyncio.Task[None]] = set()
        self._live: set[_Connection] = set()
        self._stop = threading.Event()
        self._closing = False
        self._accept_thread: threading.Thread | None = None
        self._callback = srt.LISTEN_CALLBACK(self._on_handshake)  # kept alive while listening

    @property
    def port(self) -> int:
        """The bound UDP port (after :meth:`start`; useful when it was started on port 0)."""
        if self._listener < 0:
            raise RuntimeError("SrtServer is not started")
        return self._port

    @property
    def connections(self) -> int:
        """Publishers held now (accepted, or admitted and completing their handshake)."""
        return self.limits.held

    def stats(self) -> list[dict[str, object]]:
        """One entry per publisher being read: remote address, key hash, payload bytes and
        packets read so far, seconds connected, batches queued for its sink."""
        now = time.monotonic()
        return [
            {
                "remote": c.remote,
                "key": c.key_hash,
                "bytes_in": c.bytes_in,
                "packets": c.packets,
                "seconds": round(now - c.started, 3),
                "queued": c.queue.qsize(),
            }
            for c in list(self._live)
        ]

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (port 0: any free port, see :attr:`port`).

        :raises RuntimeError: libsrt is not installed.
        """
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._listen, host, port)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"srt-accept:{self._port}", daemon=True
        )
        self._accept_thread.start()
        log.debug("srt.listening", host=host, port=self._port, libsrt=srt.version())

    def _listen(self, host: str, port: int) -> None:
        lib = srt.load()
        srt.check("srt_startup", lib.srt_startup())
        lib.srt_setloglevel(srt.LOG_ERR)  # its warnings repeat our srt.refused lines
        sock = srt.check("srt_create_socket", lib.srt_create_socket())
        try:
            srt.set_int(sock, srt.SRTO_TRANSTYPE, srt.SRTT_LIVE)
            srt.set_bool(sock, srt.SRTO_RCVSYN, False)  # accept polls; readers set it back
            srt.set_int(sock, srt.SRTO_LATENCY, self.latency_ms)
            srt.set_int(sock, srt.SRTO_RCVBUF, self.receive_buffer_bytes)
            srt.set_int(sock, srt.SRTO_PEERIDLETIMEO, int(self.peer_idle_timeout * 1000))
            if self.passphrase is not None:
                srt.set_str(sock, srt.SRTO_PASSPHRASE, self.passphrase)
            srt.check("srt_listen_callback", lib.srt_listen_callback(sock, self._callback, None))
            addr = srt.sockaddr(host, port)
            srt.check("srt_bind", lib.srt_bind(sock, addr, len(addr)))
            backlog = max(4, min(self.limits.max_connections, 64))
            srt.check("srt_listen", lib.srt_listen(sock, backlog))
            self._port = srt.sockname(sock)[1]
        except BaseException:
            lib.srt_close(sock)
            lib.srt_cleanup()
            raise
        self._listener = sock

    async def close(self) -> None:
        """Stop listening and end every connection (each sink is closed)."""
        self._closing = True
        self._stop.set()
        if self._accept_thread is not None:
            await asyncio.to_thread(self._accept_thread.join)
            self._accept_thread = None
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener >= 0:
            self._listener = -1
            await asyncio.to_thread(srt.load().srt_cleanup)

    # --- libsrt's receive thread: the handshake ---------------------------------------------

    def _on_handshake(
        self, opaque: object, ns: int, hsversion: int, peer: int | None, sid: bytes | None
    ) -> int:
        try:
            return self._admit(ns, hsversion, peer, sid)
        except BaseException:  # never let an exception through the C callback (it admits)
            log.exception("srt.internal_error", socket=ns)
            srt.load().srt_setrejectreason(ns, srt.SRT_REJX_ISE)
            return -1

    def _admit(self, ns: int, hsversion: int, peer: int | None, sid: bytes | None) -> int:
        address, port = srt.peer_of(peer)
        remote = f"{address}:{port}"

        def refuse(reason: str, code: int, key: str | None = None, **kw: object) -> int:
            log.warning(
                "srt.refused", remote=remote, reason=reason, key=key and key_hash(key), **kw
            )
            srt.load().srt_setrejectreason(ns, code)
            return -1

        if self._closing or self._loop is None:
            return refuse("server_closed", srt.SRT_REJX_OVERLOAD)
        if hsversion < 5:  # HSv4 (libsrt before 1.3) carries no stream id
            return refuse("old_handshake", srt.SRT_REJX_BAD_REQUEST)
        try:
            stream = parse_stream_id((sid or b"").decode("utf-8"))
        except UnicodeDecodeError:
            return refuse("bad_stream_id", srt.SRT_REJX_BAD_REQUEST)
        except StreamIdError as exc:
            return refuse(exc.reason, exc.reject)
        if stream.app not in self.apps:
            return refuse("unknown_app", srt.SRT_REJX_FORBIDDEN, stream.key)
        with self._lock:
            self._prune()
            slot = self.limits.admit(address)
            if not isinstance(slot, Refusal):  # hold the place while authorize runs
                self._pending[ns] = _Pending(remote, address, stream, None, None, slot)
        if isinstance(slot, Refusal):
            return refuse(slot.reason, srt.SRT_REJX_OVERLOAD, stream.key)
        future = asyncio.run_coroutine_threadsafe(self._authorize_bounded(stream), self._loop)
        try:
            ticket = future.result(timeout=self.handshake_authorize_wait)
        except TimeoutError:
            if not future.done():  # no answer yet: decided after the accept, before payload
                with self._lock:
                    self._pending[ns].future = future
                return 0
            self._drop_pending(ns)
            return refuse("authorize_timeout", srt.SRT_REJX_OVERLOAD, stream.key)
        except Exception:
            self._drop_pending(ns)
            log.exception("srt.authorize_failed", remote=remote, key=key_hash(stream.key))
            return refuse("authorize_error", srt.SRT_REJX_ISE, stream.key)
        if ticket is None:
            self._drop_pending(ns)
            return refuse("bad_key", srt.SRT_REJX_UNAUTHORIZED, stream.key)
        with self._lock:
            self._pending[ns].ticket = ticket
        return 0

    async def _authorize_bounded(self, stream: StreamId) -> object | None:
        async with asyncio.timeout(self.authorize_timeout):
            return await self._authorize(stream.app, stream.key)

    def _drop_pending(self, ns: int) -> None:
        with self._lock:
            p = self._pending.pop(ns, None)
        if p is not None:
            p.slot.release()

    def _prune(self) -> None:
        """Forget handshakes that never reached accept (e.g. a wrong passphrase)."""
        now = time.monotonic()
        ttl = self.handshake_authorize_wait + self.limits.handshake_timeout
        for ns in [ns for ns, p in self._pending.items() if now - p.at > ttl]:
            p = self._pending.pop(ns)
            p.slot.release()
            if p.future is not None:
                p.future.cancel()

    # --- the accept thread ------------------------------------------------------------------

    def _accept_loop(self) -> None:
        lib = srt.load()
        eid = lib.srt_epoll_create()
        events = ctypes.c_int(srt.SRT_EPOLL_IN | srt.SRT_EPOLL_ERR)
        lib.srt_epoll_add_usock(eid, self._listener, ctypes.byref(events))
        ready = (srt.SrtEpollEvent * 4)()
        try:
            while not self._stop.is_set():
                if lib.srt_epoll_uwait(eid, ready, 4, _ACCEPT_POLL_MS) <= 0:
                    continue
                addr = ctypes.create_string_buffer(128)
                size = ctypes.c_int(128)
                sock = lib.srt_accept(self._listener, addr, ctypes.byref(size))
                if sock >= 0:  # (level-triggered: a second one wakes the next wait)
                    self._accepted_socket(sock)
        except BaseException:
            log.exception("srt.accept_failed", port=self._port)
        finally:
            lib.srt_epoll_release(eid)
            lib.srt_close(self._listener)

    def _accepted_socket(self, sock: int) -> None:
        with self._lock:
            pending = self._pending.pop(sock, None)
            if pending is not None:
                self._accepted[sock] = pending.slot
        loop = self._loop
        if pending is None or loop is None or self._closing:
            srt.load().srt_close(sock)
            if pending is not None:
                self._forget(sock)
            log.warning("srt.refused", remote="?", reason="no_handshake_record", socket=sock)
            return
        try:
            loop.call_soon_threadsafe(self._spawn, sock, pending)
        except RuntimeError:  # the loop is gone
            srt.load().srt_close(sock)
            self._forget(sock)

    def _spawn(self, sock: int, pending: _Pending) -> None:
        task = asyncio.ensure_future(_Connection(self, sock, pending).run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, sock: int) -> None:
        with self._lock:
            slot = self._accepted.pop(sock, None)
        if slot is not None:
            slot.release()


class _Connection:
    """One accepted publisher: authorization (if the handshake did not settle it), the sink,
    a reader thread, and the pump from the reader's queue into the sink."""

    def __init__(self, server: SrtServer, sock: int, pending: _Pending) -> None:
        self.server = server
        self.sock = sock
        self.pending = pending
        self.remote = pending.remote
        self.key_hash = key_hash(pending.stream.key)
        self.started = time.monotonic()
        self.loop = asyncio.get_running_loop()
        # Bounded by ``slots``: the reader takes one per batch before queueing it (blocking
        # while none is free), the pump gives it back once the batch is written.
        self.queue: asyncio.Queue[bytes | str] = asyncio.Queue()
        self.slots = threading.Semaphore(max(2, server.max_queued_bytes // server.batch_bytes))
        self.stop = threading.Event()
        self.reader: threading.Thread | None = None
        self.sink: PublishSink | None = None
        self.bytes_in = 0
        self.packets = 0

    async def run(self) -> None:
        reason = "eof"
        log.info("srt.connect", remote=self.remote, app=self.pending.stream.app, key=self.key_hash)
        try:
            ticket = await self._ticket()
            await self._open(ticket)
            self.reader = threading.Thread(
                target=self._read, name=f"srt-read:{self.sock}", daemon=True
            )
            self.reader.start()
            self.server._live.add(self)
            reason = await self._pump()
        except _Closed as exc:
            reason = exc.reason
            if exc.refused:
                log.warning("srt.refused", remote=self.remote, reason=reason, key=self.key_hash)
        except asyncio.CancelledError:
            reason = "server_closed"
            raise
        except Exception:  # a bug here must cost one connection, never the server
            reason = "internal_error"
            log.exception("srt.internal_error", remote=self.remote, key=self.key_hash)
        finally:
            await self._finish(reason)

    async def _ticket(self) -> object:
        p = self.pending
        ticket = p.ticket
        if ticket is None and p.future is not None:
            try:
                async with asyncio.timeout(self.server.authorize_timeout):
                    ticket = await asyncio.wrap_future(p.future)
            except TimeoutError:
                raise _Closed("authorize_timeout", refused=True) from None
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("srt.authorize_failed", remote=self.remote, key=self.key_hash)
                raise _Closed("authorize_error", refused=True) from None
        if ticket is None:
            raise _Closed("bad_key", refused=True)
        return ticket

    async def _open(self, ticket: object) -> None:
        try:
            async with asyncio.timeout(self.server.authorize_timeout):
                self.sink = await self.server._open_sink(ticket)
        except TimeoutError:
            raise _Closed("open_sink_timeout", refused=True) from None
        except Exception:
            log.exception("srt.open_sink_failed", remote=self.remote, key=self.key_hash)
            raise _Closed("open_sink_error", refused=True) from None

    async def _pump(self) -> str:
        assert self.sink is not None
        while True:
            item = await self.queue.get()
            if isinstance(item, str):
                return item  # the reader ended, with this reason
            try:
                async with asyncio.timeout(self.server.sink_timeout):
                    await self.sink.write(item)
            except TimeoutError:
                raise _Closed("sink_stalled") from None
            except (LiveError, MediaError) as exc:  # the stream was disabled, or media refused
                log.info("srt.sink_refused", remote=self.remote, key=self.key_hash, error=str(exc))
                raise _Closed(getattr(exc, "code", None) or "sink_refused") from None
            self.slots.release()

    async def _finish(self, reason: str) -> None:
        self.stop.set()
        try:
            if self.reader is not None:
                await asyncio.to_thread(self.reader.join)
            else:
                await asyncio.to_thread(srt.load().srt_close, self.sock)
        finally:
            self.server._live.discard(self)
            self.server._forget(self.sock)
            sink, self.sink = self.sink, None
            if sink is not None:
                with contextlib.suppress(Exception):
                    await sink.close()
        log.info(
            "srt.closed",
            remote=self.remote,
            reason=reason,
            key=self.key_hash,
            bytes_in=self.bytes_in,
            packets=self.packets,
            seconds=round(time.monotonic() - self.started, 3),
        )

    # --- the reader thread ------------------------------------------------------------------

    def _read(self) -> None:
        """Receive payloads, hand them on in batches; end on EOF, error, idle or stop."""
        lib = srt.load()
        server = self.server
        buf = ctypes.create_string_buffer(srt.SRT_LIVE_MAX_PLSIZE + 64)
        batch: list[bytes] = []
        size = 0
        first = 0.0
        last_data = time.monotonic()
        reason = "server_closed"
        drain_until = 0.0
        try:
            srt.set_bool(self.sock, srt.SRTO_RCVSYN, True)
            srt.set_int(self.sock, srt.SRTO_RCVTIMEO, _RECV_POLL_MS)
            while not self.stop.is_set():
                n = lib.srt_recvmsg(self.sock, buf, len(buf))
                now = time.monotonic()
                if n > 0:
                    if n > srt.SRT_LIVE_MAX_PLSIZE:
                        reason = "payload_too_large"
                        break
                    if not batch:
                        first = now
                    batch.append(ctypes.string_at(buf, n))
                    size += n
                    self.packets += 1
                    self.bytes_in += n
                    last_data = now
                elif n < 0:
                    code, _ = srt.last_error()
                    if code in _GONE:
                        # The publisher closed (or was lost). libsrt still holds what its
                        # latency buffer had not yet released: read that out first.
                        if drain_until == 0.0:
                            drain_until = now + server.latency_ms / 1000 + 1.0
                        if now < drain_until and self._buffered() > 0:
                            time.sleep(0.01)
                            continue
                        reason = "eof"
                        break
                    if code not in (srt.SRT_EASYNCRCV, srt.SRT_ETIMEOUT):  # not the poll timeout
                        reason = f"srt_error_{code}"
                        break
                else:
                    reason = "eof"
                    break
                if batch and (size >= server.batch_bytes or now - first >= server.batch_seconds):
                    if not self._hand_on(b"".join(batch)):
                        break
                    batch, size = [], 0
                    last_data = max(last_data, time.monotonic())  # waiting on the sink
                elif not batch and now - last_data > server.idle_timeout:
                    reason = "idle_timeout"
                    break
        except srt.SrtError as exc:  # e.g. setting the options on a socket already broken
            reason = "eof" if exc.code in _GONE else f"srt_error_{exc.code}"
        except Exception:
            reason = "internal_error"
            log.exception("srt.read_failed", remote=self.remote, key=self.key_hash)
        finally:
            if batch:
                self._hand_on(b"".join(batch))
            lib.srt_close(self.sock)
            self._hand_on(reason)

    def _buffered(self) -> int:
        """Packets libsrt holds for this socket, not yet delivered (SRTO_RCVDATA)."""
        try:
            return srt.get_int(self.sock, srt.SRTO_RCVDATA)
        except srt.SrtError:
            return 0

    def _hand_on(self, item: bytes | str) -> bool:
        """Queue ``item`` for the pump, blocking while the queue is full (a reason string, the
        last item, needs no slot); False once the connection is ending or the loop is gone."""
        if isinstance(item, bytes):
            while not self.slots.acquire(timeout=0.2):
                if self.stop.is_set():
                    return False
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:
            return False
        return not self.stop.is_set()
