"""The publish side: what the ingests (RTMP, SRT, WHIP) call, without a principal — the
stream key is the credential.

A publisher's life on one stream::

    authenticate_publisher(key)          → PublishTarget, or None (unknown/disabled key)
    publisher_connected(stream)          → LiveSession: new (``connected`` + ``active``),
                                           or the same one within the reconnect window
                                           (``connected``)
    is_publish_allowed(stream, session)  → poll while media flows: False once the stream
                                           is disabled, deleted, or the session ended
    publisher_disconnected(stream, sess) → ``disconnected``; the stream stays ``active``
    session_idle(stream, sess)           → after the reconnect window (the caller's
                                           timer): ``idle``, the recording handed on

Every function is blocking (the database): call them from a thread in async code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select

from mediaplane.db import utcnow
from mediaplane.events import EventType

from ._errors import PublishRefused
from ._models import LiveSessionRow, LiveStream, LiveStreamStatus, stream_key_hash
from ._service import (
    emit_live_event,
    end_session,
    lock_stream,
    recording_finished,
    start_recording,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.live")

#: No stream key is longer (ours have 43 characters); a longer one is refused unhashed.
MAX_STREAM_KEY_LENGTH = 256


@dataclass(frozen=True)
class PublishTarget:
    """What a checked stream key opens."""

    live_stream_id: str
    latency_mode: str  # "standard" | "low"
    record: bool
    dvr_window_seconds: int
    reconnect_window_seconds: int
    backup: bool = False  # a backup input (the backup app), see mediaplane.live._ingest
    protection: str = "none"  # the stream's policy when this publisher connected


@dataclass(frozen=True)
class LiveSession:
    """One run of a publisher on a stream (a reconnect within the window continues it).

    :param asset_id: the recording asset (``record``), None otherwise.
    """

    id: str
    live_stream_id: str
    started_at: datetime
    asset_id: str | None


def authenticate_publisher(runtime: Runtime, stream_key: str) -> PublishTarget | None:
    """The stream a publisher's key opens; None for an unknown, deleted or disabled key.

    The key is looked up by its SHA-256 through a unique index (one row read, never a scan
    nor a string compare against stored keys). Blocking: call it via a thread.
    """
    if not stream_key or len(stream_key) > MAX_STREAM_KEY_LENGTH:
        return None
    with runtime.db.session() as s:
        stream = s.scalars(
            select(LiveStream).where(LiveStream.stream_key_hash == stream_key_hash(stream_key))
        ).one_or_none()
        if stream is None or stream.status is LiveStreamStatus.DISABLED:
            return None
        return PublishTarget(
            live_stream_id=stream.id,
            latency_mode=str(stream.latency_mode),
            record=stream.record,
            dvr_window_seconds=stream.dvr_window_seconds,
            reconnect_window_seconds=stream.reconnect_window_seconds,
            protection=stream.protection,
        )


def _session(row: LiveSessionRow) -> LiveSession:
    return LiveSession(row.id, row.live_stream_id, row.started_at, row.asset_id)


def _locked_stream(s: Session, live_stream_id: str) -> LiveStream | None:
    lock_stream(s, live_stream_id)
    return s.get(LiveStream, live_stream_id)


def _window_over(stream: LiveStream, row: LiveSessionRow, now: datetime) -> bool:
    """Whether a disconnected session's reconnect window has passed."""
    if row.disconnected_at is None:
        return False
    return now - row.disconnected_at >= timedelta(seconds=stream.reconnect_window_seconds)


def publisher_connected(runtime: Runtime, live_stream_id: str, *, protocol: str) -> LiveSession:
    """A publisher (already authenticated) connected to the stream.

    When the stream's session lost its publisher less than ``reconnect_window_seconds`` ago,
    that same session continues (same id, same recording): ``video.live_stream.connected``.
    Otherwise a new session starts (with a new recording asset when the stream records) and
    the stream becomes ``active``: ``.connected`` then ``.active``; a session whose window
    ran out without :func:`session_idle` being called ends first (``.idle``).

    :param protocol: ``rtmp``, ``srt``, ``whip``.
    :raises PublishRefused: the stream is gone (``unknown_stream``), disabled
        (``disabled``), or another publisher is connected to it (``already_publishing``).
    """
    now = utcnow()
    recorded = None
    with runtime.db.session() as s:
        stream = _locked_stream(s, live_stream_id)
        if stream is None:
            raise PublishRefused("No such live stream.", "unknown_stream")
        if stream.status is LiveStreamStatus.DISABLED:
            raise PublishRefused("The live stream is disabled.", "disabled")
        current = s.get(LiveSessionRow, stream.active_session_id or "")
        if current is not None and current.ended_at is None:
            if current.disconnected_at is None:
                raise PublishRefused(
                    "Another publisher is connected to this live stream.", "already_publishing"
                )
            if not _window_over(stream, current, now):
                current.disconnected_at = None
                current.protocol = protocol[:16]
                emit_live_event(s, EventType.LIVE_STREAM_CONNECTED, stream, runtime.settings)
                log.info("live.reconnected", live_stream_id=live_stream_id, session_id=current.id)
                return _session(current)
            recorded = end_session(s, stream, now)
            emit_live_event(s, EventType.LIVE_STREAM_IDLE, stream, runtime.settings)
        row = LiveSessionRow(live_stream_id=stream.id, started_at=now, protocol=protocol[:16])
        if stream.record:
            row.asset_id = start_recording(s, stream, runtime.settings, now)
        s.add(row)
        s.flush()
        stream.active_session_id = row.id
        stream.status = LiveStreamStatus.ACTIVE
        emit_live_event(s, EventType.LIVE_STREAM_CONNECTED, stream, runtime.settings)
        emit_live_event(s, EventType.LIVE_STREAM_ACTIVE, stream, runtime.settings)
        started = _session(row)
    if recorded is not None:
        recording_finished(runtime, recorded)
    log.info("live.session_started", live_stream_id=live_stream_id, session_id=started.id)
    return started


def publisher_disconnected(runtime: Runtime, live_stream_id: str, session_id: str) -> None:
    """The session's publisher went away (``video.live_stream.disconnected``); the stream
    stays ``active`` for its reconnect window. Call :func:`session_idle` when the window
    has passed. With a window of 0 (or a disabled stream) the session ends at once
    (``.idle``). Nothing happens for a session that is no longer the stream's current one.
    """
    now = utcnow()
    recorded = None
    with runtime.db.session() as s:
        stream = _locked_stream(s, live_stream_id)
        if stream is None or stream.active_session_id != session_id:
            return
        row = s.get(LiveSessionRow, session_id)
        if row is None or row.ended_at is not None or row.disconnected_at is not None:
            return
        row.disconnected_at = now
        emit_live_event(s, EventType.LIVE_STREAM_DISCONNECTED, stream, runtime.settings)
        if stream.reconnect_window_seconds == 0:
            recorded = end_session(s, stream, now)
            emit_live_event(s, EventType.LIVE_STREAM_IDLE, stream, runtime.settings)
    if recorded is not None:
        recording_finished(runtime, recorded)
    log.info("live.disconnected", live_stream_id=live_stream_id, session_id=session_id)


def session_idle(runtime: Runtime, live_stream_id: str, session_id: str) -> None:
    """End the session once its reconnect window has passed (``video.live_stream.idle``;
    the stream goes ``idle``, its recording moves to ``recent_asset_ids`` and is handed to
    :func:`recording_finished`).

    Safe to call from a timer: it does nothing while a publisher is connected to the
    session (it came back), before its window has passed (it came back and left again:
    that later disconnect's timer ends it), or for a session already ended.
    """
    _idle(runtime, live_stream_id, session_id)


def _idle(runtime: Runtime, live_stream_id: str, session_id: str) -> bool:
    now = utcnow()
    with runtime.db.session() as s:
        stream = _locked_stream(s, live_stream_id)
        if stream is None or stream.active_session_id != session_id:
            return False
        row = s.get(LiveSessionRow, session_id)
        if row is None or row.ended_at is not None or not _window_over(stream, row, now):
            return False
        recorded = end_session(s, stream, now)
        emit_live_event(s, EventType.LIVE_STREAM_IDLE, stream, runtime.settings)
    if recorded is not None:
        recording_finished(runtime, recorded)
    log.info("live.idle", live_stream_id=live_stream_id, session_id=session_id)
    return True


def is_publish_allowed(runtime: Runtime, live_stream_id: str, session_id: str) -> bool:
    """Whether the publisher of ``session_id`` may go on sending: False once the stream was
    disabled or deleted, or the session ended. One primary-key read; an ingest polls it
    every few seconds and drops the connection on False."""
    with runtime.db.session() as s:
        row = s.execute(
            select(LiveStream.status, LiveStream.active_session_id).where(
                LiveStream.id == live_stream_id
            )
        ).first()
    if row is None:
        return False
    return row.status is LiveStreamStatus.ACTIVE and row.active_session_id == session_id


def idle_expired_sessions(runtime: Runtime) -> int:
    """A watchdog pass: end every session whose publisher left more than its reconnect
    window ago and that no timer ended (the process holding the timer died); how many."""
    with runtime.db.session() as s:
        candidates = s.execute(
            select(LiveStream.id, LiveSessionRow.id)
            .join(LiveSessionRow, LiveSessionRow.id == LiveStream.active_session_id)
            .where(LiveSessionRow.ended_at.is_(None), LiveSessionRow.disconnected_at.is_not(None))
        ).all()
    return sum(_idle(runtime, stream_id, session_id) for stream_id, session_id in candidates)
