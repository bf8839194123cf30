"""The live ingest: publishers in (RTMP, RTMPS, SRT, WHIP), one packager per publish out.

:class:`LiveIngest` joins the parts: the RTMP and SRT servers ask it to check a stream key
(:func:`authenticate_publisher`, before any media is read), then for a sink; the sink is a
:class:`LivePackager` writing the session's CMAF segments, LL-HLS parts and playlists under
:func:`session_dir`, where the origin serves them (FLV from RTMP, MPEG-TS from SRT: the
packager is told which). When a publisher leaves, the session waits
``reconnect_window_seconds`` for it to come back before it goes idle; a stream deleted or
disabled meanwhile goes idle at once (within :data:`ALLOWED_POLL_SECONDS`), its slate and
packager with it.

A session has one :class:`LiveOutput` for all its publishes: each publisher's packager feeds
it through :meth:`LiveOutput.begin_publish`, so a reconnect continues the playlists (same
numbering, a discontinuity, a new init segment) and players keep playing; the playlists end
(EXT-X-ENDLIST) only when the session goes idle. While the publisher is away, a
:class:`Slate` feeds the session ("The stream will be back shortly", silent audio), so
players keep playing instead of stalling.

The stream's health figures (on the resource) say which input they are of: ``input`` is
``primary``, ``backup`` or, while the publisher is away, ``slate``.

A second publisher on the backup app (``rtmp://HOST/live-backup/{key}``, SRT stream id
``live-backup/{key}``) waits as standby next to the primary: its packager runs, its media
is dropped. When the active input's connection ends, or it sends nothing for
:data:`INPUT_STALL_SECONDS` while the standby does, the standby takes over the session (a
new publish: a discontinuity), and a stalled primary becomes the standby. A primary that
comes back while the backup is on takes over again. Logged as ``live.input_switched``.

Each stream is isolated: its own ffmpeg process, its own task; a failure in one ends that
stream only. ``mediaplane up`` runs this in a thread of its main process; ``mediaplane live``
runs it alone (a live host at scale).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from mediaplane.media import InvalidMedia

from ._errors import PublishRefused
from ._health import HEALTH_SECONDS, record_health
from ._limits import IngestLimits
from ._output import LiveOutput, PublishFeed
from ._packager import InputFormat, LivePackager
from ._protection import stream_protection
from ._publish import (
    LiveSession,
    PublishTarget,
    authenticate_publisher,
    is_publish_allowed,
    publisher_connected,
    publisher_disconnected,
    session_idle,
)
from ._rtmp import RtmpServer
from ._slate import SLATE_MARGIN_SECONDS, Slate, slate_argv
from ._srt import SrtServer
from ._webrtc import WebRtcHost

if TYPE_CHECKING:
    from collections.abc import Callable

    from mediaplane.config import Settings
    from mediaplane.media import Fragment, InitSegment
    from mediaplane.runtime import Runtime

__all__ = ["LiveIngest", "segment_target", "serve_ingest", "session_dir"]

log = structlog.get_logger("mediaplane.live")

#: Standard latency: segments of about this many seconds (closed at the first keyframe past
#: it), no parts. Players hold back three target durations (hls.js, and the RFC's HOLD-BACK
#: floor): 4 s segments measured 17 s glass to glass, 2 s ones 8.4 s (bench/live_latency.py).
STANDARD_SEGMENT_SECONDS = 1.0
#: Low latency: segments (and the GOP the publisher should send) of about this long.
LOW_SEGMENT_SECONDS = 2.0
#: How often a publisher's stream is checked for being disabled or deleted meanwhile.
ALLOWED_POLL_SECONDS = 3.0
#: The application names publishers connect to: the primary input, and its backup.
PRIMARY_APP = "live"
BACKUP_APP = "live-backup"
#: The playlists end this many segment targets (at most half the window) before the
#: reconnect window does: players reloading then see the end before the session goes idle.
END_GRACE_TARGETS = 2
#: An active input that sent nothing for this long, while the standby sends, is switched
#: away from.
INPUT_STALL_SECONDS = 3.0


def segment_target(latency_mode: str) -> float:
    """The segment length a stream of ``latency_mode`` is packaged at (seconds)."""
    return LOW_SEGMENT_SECONDS if latency_mode == "low" else STANDARD_SEGMENT_SECONDS


def live_root(settings: Settings) -> Path:
    """Where live sessions write their segments and playlists (a local directory)."""
    return settings.data_path / "live"


def session_dir(settings: Settings, live_stream_id: str, session_id: str) -> Path:
    """The directory a live session's packager writes and the origin serves."""
    return live_root(settings) / live_stream_id / session_id


def rtmps_context(settings: Settings) -> ssl.SSLContext:
    """The TLS server context of RTMPS: ``rtmps_cert_file`` (PEM, the chain after the
    certificate) with ``rtmps_key_file`` (or the key inside the cert file).

    :raises OSError: a file is missing or unreadable, or (``ssl.SSLError``) not a PEM
        certificate and matching key."""
    assert settings.rtmps_cert_file is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.rtmps_cert_file, settings.rtmps_key_file)
    return context


@dataclass
class _Stream:
    """A live stream with a publisher on it now, or within its reconnect window."""

    target: PublishTarget
    session: LiveSession
    packager: LivePackager | None = None  # the active input's
    active: _SessionSink | None = None  # the input the session shows
    standby: _SessionSink | None = None  # a backup input waiting (or a stalled primary)
    watchdog: asyncio.Task[None] | None = None  # while there is a standby
    output: LiveOutput | None = None  # the session's, for all its publishes
    protection: str = "none"  # the policy of the newest publisher (its next publish's)
    slate: Slate | None = None  # while the publisher is away
    last_health: dict[str, Any] | None = None  # the newest figures stored on the row
    idle_timer: asyncio.TimerHandle | None = None
    end_timer: asyncio.TimerHandle | None = None  # the playlists end, a little before idle
    away_check: asyncio.Task[None] | None = None  # while the publisher is away
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class _SessionSink:
    """What the RTMP server writes one publisher's FLV into: the session's packager. Every
    :data:`ALLOWED_POLL_SECONDS` it checks (in a thread, off the write path) that the
    stream was not disabled or deleted meanwhile; then the next write ends the publish."""

    def __init__(
        self, ingest: LiveIngest, stream: _Stream, packager: LivePackager, *, backup: bool = False
    ) -> None:
        self.ingest = ingest
        self.stream = stream
        self.packager = packager
        self.backup = backup
        self.allowed = True
        self.checked = asyncio.get_running_loop().time()
        self.last_write = self.checked
        self.check: asyncio.Task[None] | None = None
        self.health_at = self.checked - HEALTH_SECONDS / 2  # the first figures come sooner
        self.health_task: asyncio.Task[None] | None = None

    @property
    def role(self) -> str:
        return "backup" if self.backup else "primary"

    async def write(self, data: bytes) -> None:
        if not self.allowed:
            raise PublishRefused("The live stream was disabled or deleted.", "disabled")
        now = self.last_write = asyncio.get_running_loop().time()
        if self.check is None and now - self.checked >= ALLOWED_POLL_SECONDS:
            self.checked = now
            self.check = asyncio.get_running_loop().create_task(self._check())
        if (
            self.health_task is None
            and now - self.health_at >= HEALTH_SECONDS
            and self.stream.active is self  # a standby's figures are not the stream's
        ):
            self.health_at = now
            self.health_task = asyncio.get_running_loop().create_task(self._health())
        await self.packager.write(data)

    async def _store_health(self) -> None:
        """Store the packager's health figures on the stream's row (in a thread), with the
        input they are of (``primary`` or ``backup``)."""
        health = {**self.packager.health(), "input": self.role}
        self.stream.last_health = health
        await asyncio.to_thread(
            record_health,
            self.ingest.runtime,
            self.stream.target.live_stream_id,
            self.stream.session.id,
            health,
        )

    async def _health(self) -> None:
        """The periodic health write (off the write path)."""
        try:
            await self._store_health()
        except Exception:  # the database is away: the next figures come later
            log.warning("live.health_write_failed", exc_info=True)
        finally:
            self.health_task = None

    async def _check(self) -> None:
        try:
            target, session = self.stream.target, self.stream.session
            self.allowed = await asyncio.to_thread(
                is_publish_allowed, self.ingest.runtime, target.live_stream_id, session.id
            )
        except Exception:  # the database is away: keep the stream going, check again later
            log.warning("live.allowed_check_failed", exc_info=True)
        finally:
            self.check = None

    async def close(self) -> None:
        try:
            await self.packager.close()
        except Exception:  # the packager failed: the stream ends as if the publisher left
            log.exception("live.packager_failed", live_stream_id=self.stream.target.live_stream_id)
        if self.health_task is not None:
            with contextlib.suppress(Exception):
                await self.health_task
        if self.packager.error is not None and self.stream.standby is not self:
            # the creator reads why on the resource
            with contextlib.suppress(Exception):
                await self._store_health()
        await self.ingest.publisher_left(self.stream, self)


class LiveIngest:
    """Routes checked publishers (RTMP and SRT, one authorize and one open_sink for both) to
    their session's packager, one stream at a time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.streams: dict[str, _Stream] = {}
        self.server = RtmpServer(
            self.authorize,
            functools.partial(self.open_sink, protocol="rtmp", input_format="flv"),
            limits=self._limits(),
            apps=(PRIMARY_APP, BACKUP_APP),
        )
        #: RTMPS (when a certificate is configured): the same publishers over TLS, in the
        #: same connection pool as RTMP.
        self.rtmps: RtmpServer | None = None
        if self.settings.rtmps_cert_file is not None:
            self.rtmps = RtmpServer(
                self.authorize,
                functools.partial(self.open_sink, protocol="rtmps", input_format="flv"),
                limits=self.server.limits,
                apps=(PRIMARY_APP, BACKUP_APP),
            )
        self.srt = SrtServer(
            self.authorize,
            functools.partial(self.open_sink, protocol="srt", input_format="mpegts"),
            limits=self._limits(),
            apps=(PRIMARY_APP, BACKUP_APP),
        )
        self.srt_started = False
        self._sweeper: asyncio.Task[None] | None = None
        self.webrtc = WebRtcHost(self)  # WHIP publishers and WHEP viewers (relayed by HTTP)

    def _limits(self) -> IngestLimits:
        """One protocol's admission rule from the settings (each port its own pool)."""
        return IngestLimits(
            self.settings.live_max_connections, self.settings.live_max_connections_per_address
        )

    async def start(self, host: str, port: int, srt_port: int | None = None) -> None:
        """Listen for RTMP on ``host:port`` and, unless ``srt_port`` is None, for SRT on
        ``host:srt_port`` (UDP). Without libsrt, or with the SRT port taken, SRT is logged as
        unavailable (``live.srt_unavailable``) and RTMP runs on; the RTMP port in use raises
        :class:`OSError`."""
        await self.server.start(host, port)
        rtmps = None
        if self.rtmps is not None:
            try:
                await self.rtmps.start(
                    host, self.settings.rtmps_port, ssl=rtmps_context(self.settings)
                )
                rtmps = self.rtmps.port
            except (OSError, ValueError) as exc:  # a bad certificate or key, or the port taken
                log.error("live.rtmps_unavailable", port=self.settings.rtmps_port, error=str(exc))
                self.rtmps = None
        if srt_port is not None:
            try:
                await self.srt.start(host, srt_port)
                self.srt_started = True
            except (RuntimeError, OSError) as exc:  # no libsrt, or the port is taken
                log.error("live.srt_unavailable", port=srt_port, error=str(exc))
        await self.webrtc.start()
        # One line for both (a terminal reads the ports in `up`'s ready block as well).
        srt = self.srt.port if self.srt_started else None
        log.info(
            "live.listening", host=host, rtmp_port=self.server.port, rtmps_port=rtmps, srt_port=srt
        )
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Delete the session directories no one needs any more (:func:`._recording.
        sweep_session_dirs`), now (what a restart left) and every ``SWEEP_SECONDS``."""
        from ._recording import SWEEP_SECONDS, sweep_session_dirs  # it imports this module

        while True:
            try:
                await asyncio.to_thread(sweep_session_dirs, self.runtime)
            except Exception:  # the database is away: try again next time
                log.warning("live.sweep_failed", exc_info=True)
            await asyncio.sleep(SWEEP_SECONDS)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.server.close()
        if self.rtmps is not None:
            await self.rtmps.close()
        await self.webrtc.close()
        if self.srt_started:  # its libsrt threads end before the loop does
            await self.srt.close()
            self.srt_started = False
        for stream in list(self.streams.values()):
            self._cancel_timers(stream)
            await self._go_idle(stream)

    async def authorize(self, app: str, stream_key: str) -> PublishTarget | None:
        """The stream a key opens, or None (the server drops the publisher at once); on the
        backup app, as its backup input."""
        target = await asyncio.to_thread(authenticate_publisher, self.runtime, stream_key)
        if target is not None and app == BACKUP_APP:
            target = dataclasses.replace(target, backup=True)
        return target

    async def open_sink(
        self, ticket: object, *, protocol: str = "rtmp", input_format: InputFormat = "flv"
    ) -> _SessionSink:
        """A publisher was accepted (over ``protocol``, sending ``input_format``): continue
        its session or start one, and its packager (:class:`PublishRefused` when another
        publisher is on the stream, or it was disabled since the key was checked).

        A backup input while another input is on waits as the standby; a primary while the
        backup is on takes over from it."""
        assert isinstance(ticket, PublishTarget)
        stream = self.streams.get(ticket.live_stream_id)
        if ticket.backup and stream is not None and stream.active is not None:
            return self._standby(stream, ticket, protocol, input_format)
        try:
            session = await asyncio.to_thread(
                publisher_connected, self.runtime, ticket.live_stream_id, protocol=protocol
            )
        except PublishRefused as exc:
            on = stream.active if stream is not None else None
            if exc.code != "already_publishing" or ticket.backup or on is None or not on.backup:
                raise
            assert stream is not None
            session = stream.session  # the primary is back: it takes over from the backup
            on.packager.tap = None  # WHEP viewers get the primary's media
            if stream.standby is None:
                stream.standby = on
                self._watch(stream)
        stream = self.streams.get(ticket.live_stream_id)
        if stream is not None and stream.session.id == session.id:
            self._cancel_timers(stream)  # back within the reconnect window
            self._stop_slate(stream)  # the new publish supersedes it at its first media
        else:
            stream = _Stream(ticket, session)
            self.streams[ticket.live_stream_id] = stream
        stream.protection = ticket.protection
        out = session_dir(self.settings, ticket.live_stream_id, session.id)
        packager = LivePackager(
            out,
            latency_mode=ticket.latency_mode,
            part_target=self.settings.live_part_seconds,
            segment_target=segment_target(ticket.latency_mode),
            dvr_window_seconds=ticket.dvr_window_seconds,
            keep_segments=ticket.record,  # the recording reuses every segment
            ffmpeg=self.settings.ffmpeg_path,
            input_format=input_format,
            output_for=functools.partial(self._output_for, stream),
            ladder=self.settings.live_ladder,
            x264_preset=self.settings.x264_preset,
        )
        packager.tap = self._tap(stream)  # WHEP viewers
        stream.packager = packager
        sink = stream.active = _SessionSink(self, stream, packager, backup=ticket.backup)
        log.info(
            "live.publishing",
            live_stream_id=ticket.live_stream_id,
            session_id=session.id,
            protocol=protocol,
            latency_mode=ticket.latency_mode,
            input=sink.role,
        )
        return sink

    def _standby(
        self, stream: _Stream, ticket: PublishTarget, protocol: str, input_format: InputFormat
    ) -> _SessionSink:
        """A backup input next to the active one: its packager runs, its media waits."""
        if stream.standby is not None:
            raise PublishRefused(
                "A backup publisher is already connected to this live stream.",
                "already_publishing",
            )
        holder: list[_SessionSink] = []
        packager = LivePackager(
            session_dir(self.settings, ticket.live_stream_id, stream.session.id),
            latency_mode=ticket.latency_mode,
            part_target=self.settings.live_part_seconds,
            segment_target=segment_target(ticket.latency_mode),
            dvr_window_seconds=ticket.dvr_window_seconds,
            ffmpeg=self.settings.ffmpeg_path,
            input_format=input_format,
            output_for=functools.partial(self._standby_output_for, stream, holder),
            ladder=self.settings.live_ladder,  # the same rungs once it takes over
            x264_preset=self.settings.x264_preset,
        )
        sink = _SessionSink(self, stream, packager, backup=True)
        holder.append(sink)
        stream.standby = sink
        self._watch(stream)
        log.info(
            "live.standby",
            live_stream_id=ticket.live_stream_id,
            session_id=stream.session.id,
            protocol=protocol,
        )
        return sink

    def _standby_output_for(
        self,
        stream: _Stream,
        holder: list[_SessionSink],
        names: list[str],
        started_at: datetime | None,
    ) -> PublishFeed:
        """Thread: a standby feed (see :meth:`LiveOutput.standby_feed`), active at once when
        its input took over before its packager started."""
        if stream.output is None:
            raise InvalidMedia("the primary input has sent no media yet: connect the backup after")
        feed = stream.output.standby_feed(names)
        if holder and stream.active is holder[0]:
            feed.activate()
        return feed

    def _watch(self, stream: _Stream) -> None:
        if stream.watchdog is None:
            stream.watchdog = asyncio.get_running_loop().create_task(self._watchdog(stream))

    async def _watchdog(self, stream: _Stream) -> None:
        """While there is a standby: switch to it when the active input stalls."""
        loop = asyncio.get_running_loop()
        try:
            while stream.standby is not None:
                await asyncio.sleep(0.5)
                active, standby, now = stream.active, stream.standby, loop.time()
                if (
                    active is not None
                    and standby is not None
                    and now - active.last_write >= INPUT_STALL_SECONDS
                    and now - standby.last_write < 1.0
                ):
                    await self._switch(stream, standby, "stalled", keep=active)
        finally:
            stream.watchdog = None

    async def _switch(
        self, stream: _Stream, to: _SessionSink, reason: str, *, keep: _SessionSink | None = None
    ) -> None:
        """``to`` (the standby) takes over the session; ``keep`` (a stalled input, still
        connected) becomes the standby."""
        old = stream.active
        stream.active, stream.packager, stream.standby = to, to.packager, keep
        to.packager.tap = self._tap(stream)  # WHEP viewers
        if keep is not None:
            keep.packager.tap = None
        feed = to.packager.output
        if isinstance(feed, PublishFeed):  # else its packager activates it as it starts
            await asyncio.to_thread(feed.activate)
        if keep is not None and isinstance(keep.packager.output, PublishFeed):
            await asyncio.to_thread(keep.packager.output.deactivate)
        with contextlib.suppress(Exception):  # the resource shows the input now on
            await to._store_health()
        log.info(
            "live.input_switched",
            live_stream_id=stream.target.live_stream_id,
            session_id=stream.session.id,
            to=to.role,
            from_=old.role if old is not None else None,
            reason=reason,
        )

    def _tap(self, stream: _Stream) -> Callable[[str, InitSegment | Fragment], None] | None:
        """The WHEP fan-out of a stream's media; none for a protected one (WebRTC would
        hand out the clear media the HLS and DASH viewers need a licence for)."""
        if stream.protection != "none":
            return None
        return self.webrtc.tap(stream.target.live_stream_id)

    def _output_for(
        self, stream: _Stream, names: list[str], started_at: datetime | None, *, slate: bool = False
    ) -> PublishFeed:
        """Thread: the feed a new publish of ``stream``'s session writes through (the
        session's output, made by its first publish), encrypted as the stream's policy was
        when its publisher connected (the slate: as the publish before it)."""
        protection = stream_protection(
            self.runtime, stream.target.live_stream_id, stream.protection
        )
        if stream.output is None:
            target = stream.target
            stream.output = LiveOutput(
                session_dir(self.settings, target.live_stream_id, stream.session.id),
                renditions=names,
                low_latency=target.latency_mode == "low",
                part_target=self.settings.live_part_seconds,
                segment_target=segment_target(target.latency_mode),
                dvr_window_seconds=target.dvr_window_seconds,
                keep_segments=target.record,
                started_at=started_at,
                protection=protection,
            )
            return PublishFeed(stream.output, stream.output.current_publish)
        feed = stream.output.begin_publish(
            names, started_at=started_at, slate=slate, protection=True if slate else protection
        )
        standby = stream.standby.packager.output if stream.standby is not None else None
        if not slate and isinstance(standby, PublishFeed):
            standby.index = None  # a backup this publish took over from waits again
        return feed

    async def publisher_left(self, stream: _Stream, sink: _SessionSink) -> None:
        """The publisher went away: the standby input takes over, or the session waits out
        its reconnect window (with the slate)."""
        if stream.standby is sink:
            stream.standby = None
            log.info("live.standby_left", live_stream_id=stream.target.live_stream_id)
            return
        if stream.packager is not sink.packager:
            return  # a newer publisher has taken over
        if stream.standby is not None:
            await self._switch(stream, stream.standby, "disconnected")
            return
        stream.packager = stream.active = None
        await asyncio.to_thread(
            publisher_disconnected, self.runtime, stream.target.live_stream_id, stream.session.id
        )
        if not sink.allowed:  # deleted or disabled: no window to wait out
            await self._go_idle(stream)
            return
        loop = asyncio.get_running_loop()
        window = stream.target.reconnect_window_seconds
        stream.idle_timer = loop.call_later(window, self._idle_later, stream)
        grace = min(window / 2, END_GRACE_TARGETS * segment_target(stream.target.latency_mode))
        stream.end_timer = loop.call_later(window - grace, self._end_later, stream)
        stream.away_check = loop.create_task(self._check_away(stream))
        if stream.target.reconnect_window_seconds > 0:
            await self._start_slate(stream)

    async def _check_away(self, stream: _Stream) -> None:
        """While the publisher is away: every :data:`ALLOWED_POLL_SECONDS`, whether the
        stream was deleted or disabled meanwhile; then the session goes idle at once (else
        its slate, an encoder, and its packager would run out the reconnect window for a
        stream that is gone: a host whose streams come and go filled up with them)."""
        target, session = stream.target, stream.session
        while stream.active is None:
            await asyncio.sleep(ALLOWED_POLL_SECONDS)
            if stream.active is not None:
                return  # a publisher is back
            try:
                allowed = await asyncio.to_thread(
                    is_publish_allowed, self.runtime, target.live_stream_id, session.id
                )
            except Exception:  # the database is away: the window's timer still ends it
                log.warning("live.allowed_check_failed", exc_info=True)
                continue
            if not allowed and stream.active is None:
                stream.away_check = None  # this task: _cancel_timers leaves it be
                self._cancel_timers(stream)
                await self._go_idle(stream)
                return

    async def _start_slate(self, stream: _Stream) -> None:
        """Feed the session the slate until a publisher is back or the window ends (only
        once a publish has shown its tracks; a failure to start it is logged, not fatal)."""
        output = stream.output
        if output is None or stream.slate is not None:
            return
        tracks = output.tracks()
        if not set(output.inputs) <= set(tracks):
            return
        video, audio = tracks.get("video"), tracks.get("audio")
        target = stream.target
        argv = slate_argv(
            self.settings.ffmpeg_path,
            seconds=target.reconnect_window_seconds + SLATE_MARGIN_SECONDS,
            gop_seconds=segment_target(target.latency_mode),
            width=video.width if video else None,
            height=video.height if video else None,
            fps=await asyncio.to_thread(output.frame_rate),
            video=video is not None,
            audio=audio is not None,
            sample_rate=audio.timescale if audio and 8000 <= audio.timescale <= 96000 else 48000,
        )
        packager = LivePackager(
            output.out_dir,
            latency_mode=target.latency_mode,
            part_target=self.settings.live_part_seconds,
            segment_target=segment_target(target.latency_mode),
            dvr_window_seconds=target.dvr_window_seconds,
            ffmpeg=self.settings.ffmpeg_path,
            output_for=functools.partial(self._output_for, stream, slate=True),
            ladder=self.settings.live_ladder,  # the master's rungs go on
            x264_preset=self.settings.x264_preset,
        )
        slate = Slate(argv, packager)
        try:
            await slate.start()
        except OSError as exc:
            log.error("live.slate_failed", live_stream_id=target.live_stream_id, error=str(exc))
            return
        stream.slate = slate
        log.info("live.slate", live_stream_id=target.live_stream_id, session_id=stream.session.id)
        # The resource says the slate is on, over the last figures of the input that left.
        health = {**(stream.last_health or {}), "input": "slate"}
        with contextlib.suppress(Exception):
            await asyncio.to_thread(
                record_health, self.runtime, target.live_stream_id, stream.session.id, health
            )

    def _stop_slate(self, stream: _Stream) -> None:
        """The slate ends (in the background: a new publish supersedes it anyway)."""
        slate, stream.slate = stream.slate, None
        if slate is not None:
            task = asyncio.get_running_loop().create_task(slate.stop())
            stream.tasks.add(task)
            task.add_done_callback(stream.tasks.discard)

    @staticmethod
    def _cancel_timers(stream: _Stream) -> None:
        for timer in (stream.idle_timer, stream.end_timer):
            if timer is not None:
                timer.cancel()
        stream.idle_timer = stream.end_timer = None
        if stream.away_check is not None:
            stream.away_check.cancel()
            stream.away_check = None

    def _end_later(self, stream: _Stream) -> None:
        task = asyncio.get_running_loop().create_task(self._end_playlists(stream))
        stream.tasks.add(task)
        task.add_done_callback(stream.tasks.discard)

    async def _end_playlists(self, stream: _Stream) -> None:
        """The reconnect window is nearly over: the slate stops and the playlists end
        (EXT-X-ENDLIST, a static MPD) while the session still serves them, so players
        reloading see a clean end. A publisher back in the last moments reopens them."""
        stream.end_timer = None
        slate, stream.slate = stream.slate, None
        if slate is not None:
            await slate.stop()
        if stream.output is not None and stream.active is None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stream.output.finish)

    def _idle_later(self, stream: _Stream) -> None:
        task = asyncio.get_running_loop().create_task(self._go_idle(stream))
        stream.tasks.add(task)
        task.add_done_callback(stream.tasks.discard)

    async def _go_idle(self, stream: _Stream) -> None:
        if stream.away_check is not None and stream.away_check is not asyncio.current_task():
            stream.away_check.cancel()
        stream.away_check = None
        self._stop_slate(stream)
        for task in list(stream.tasks):
            if task is not asyncio.current_task():
                with contextlib.suppress(Exception):
                    await task
        if stream.packager is not None:  # shutting down with a publisher on
            with contextlib.suppress(Exception):
                await stream.packager.close()
            stream.packager = None
            await asyncio.to_thread(
                publisher_disconnected,
                self.runtime,
                stream.target.live_stream_id,
                stream.session.id,
            )
        if stream.output is not None:  # the playlists end (EXT-X-ENDLIST)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stream.output.finish)
        if self.streams.get(stream.target.live_stream_id) is stream:
            del self.streams[stream.target.live_stream_id]
            self.webrtc.stream_idle(stream.target.live_stream_id)
        await asyncio.to_thread(
            session_idle, self.runtime, stream.target.live_stream_id, stream.session.id
        )
        log.info(
            "live.idle", live_stream_id=stream.target.live_stream_id, session_id=stream.session.id
        )


async def serve_ingest(runtime: Runtime, stop: asyncio.Event | None = None) -> None:
    """Run the live ingest on ``host``:``rtmp_port`` (RTMP) and ``host``:``srt_port`` (SRT)
    until ``stop`` is set (or forever)."""
    ingest = LiveIngest(runtime)
    settings = runtime.settings
    await ingest.start(settings.host, settings.rtmp_port, settings.srt_port)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await ingest.close()
