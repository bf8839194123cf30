"""Live streams as a resource: create, read, list, delete, reset the key, disable, enable,
and their playback ids — with the asset's authorization (a stream belongs to a channel:
its members read it, its editors and owners change it, admins do everything; another
channel's stream does not exist for the caller: 404).

Each runtime-level function here is what one API route calls: it opens the transaction,
writes the rows and their outbox events together, and answers in the API's JSON shape.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import ColumnElement, false, func, select, true, update

from mediaplane.accounts import ChannelRole, member_channel_ids, role_in, upload_channel
from mediaplane.catalog import (
    FinishRecording,
    PlaybackPolicy,
    create_recording_asset,
    playback_urls,
)
from mediaplane.db import utcnow
from mediaplane.errors import Forbidden
from mediaplane.events import EventType, emit
from mediaplane.jobs import create_job, dispatch

from ._errors import InvalidProtection, LiveStreamNotFound
from ._models import (
    LatencyMode,
    LivePlaybackId,
    LiveSessionRow,
    LiveStream,
    LiveStreamStatus,
    new_stream_key,
    stream_key_hash,
)
from ._protection import LIVE_PROTECTIONS

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mediaplane.accounts import Principal
    from mediaplane.config import Settings
    from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.live")

#: A stream keeps the ids of this many recordings in ``recent_asset_ids`` (the newest).
MAX_RECENT_ASSETS = 50
#: Limits the API checks (the settings of one stream).
MAX_DVR_WINDOW_SECONDS = 12 * 3600
MAX_RECONNECT_WINDOW_SECONDS = 1800
DEFAULT_DVR_WINDOW_SECONDS = 600
DEFAULT_RECONNECT_WINDOW_SECONDS = 60


class LiveAction(enum.StrEnum):
    """What a caller may do with a live stream they can see."""

    READ = "read"  # any member of its channel
    EDIT = "edit"  # delete, reset the key, disable, enable, playback ids: editors, owners


def live_visible_to(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause: the live streams ``principal`` may read (admins: all; a channel's
    members: its streams; anyone else: none)."""
    if principal.sees_everything:
        return true()
    if principal.user_id is None:
        return false()
    return LiveStream.channel_id.in_(member_channel_ids(principal))


def _may_edit(session: Session, principal: Principal, stream: LiveStream) -> bool:
    if principal.sees_everything:
        return True
    role = role_in(session, principal, stream.channel_id) if stream.channel_id else None
    return role is not None and role.covers(ChannelRole.EDITOR)


def authorized_live_stream(
    session: Session,
    principal: Principal,
    live_stream_id: str,
    action: LiveAction,
    *,
    lock: bool = False,
) -> LiveStream:
    """The stream, when ``principal`` may do ``action`` with it.

    :param lock: take the row's write lock first (a change follows).
    :raises LiveStreamNotFound: no such stream, or one the caller may not see (404).
    :raises Forbidden: visible, but changing it needs the editor role in its channel.
    """
    if lock:
        lock_stream(session, live_stream_id)
    query = select(LiveStream).where(LiveStream.id == live_stream_id, live_visible_to(principal))
    stream = session.scalars(query).one_or_none()
    if stream is None:
        raise LiveStreamNotFound(f"No live stream with id {live_stream_id!r}.")
    if action is LiveAction.EDIT and not _may_edit(session, principal, stream):
        raise Forbidden(
            "Changing a live stream needs the editor or owner role in its channel.",
            "insufficient_channel_role",
        )
    return stream


def lock_stream(session: Session, live_stream_id: str) -> None:
    """Take the stream row's write lock before reading it: an UPDATE locks the row on
    PostgreSQL and starts the write transaction on SQLite, so two publishers (or a
    publisher and the API) change one stream one after the other, never on a stale read."""
    session.execute(
        update(LiveStream)
        .where(LiveStream.id == live_stream_id)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def live_stream_to_api(
    stream: LiveStream, base_url: str, *, stream_key: bool = True
) -> dict[str, Any]:
    """The public JSON shape of a live stream.

    :param stream_key: include the key (for callers who may change the stream); else the
        field is null. Event data leaves the field out (:func:`emit_live_event`): webhooks
        and buses are no place for a publishing credential.
    """
    data: dict[str, Any] = {
        "id": stream.id,
        "stream_key": stream.stream_key if stream_key else None,
        "status": str(stream.status),
        "playback_ids": [{"id": p.id, "policy": str(p.policy)} for p in stream.playback_ids],
        "latency_mode": str(stream.latency_mode),
        "record": stream.record,
        "protection": stream.protection,
        "dvr_window_seconds": stream.dvr_window_seconds,
        "reconnect_window_seconds": stream.reconnect_window_seconds,
        "active_session_id": stream.active_session_id,
        "active_asset_id": stream.active_asset_id,
        "recent_asset_ids": list(stream.recent_asset_ids or []),
        "channel_id": stream.channel_id,
        "health": _health_view(stream),
        "created_at": stream.created_at.isoformat(),
        "updated_at": stream.updated_at.isoformat(),
    }
    if stream.playback_ids:
        urls = playback_urls(base_url, stream.playback_ids[0].id)
        data["playback"] = {"hls": urls.hls, "dash": urls.dash, "watch": urls.watch}
    return data


def _health_view(stream: LiveStream) -> dict[str, Any] | None:
    """The stream's health with its ``updated_at``; None when idle (a failed session's
    ``failed`` health stays until the next publish, so the creator reads why)."""
    if stream.health is None:
        return None
    at = stream.health_updated_at
    return {**stream.health, "updated_at": at.isoformat() if at else None}


def emit_live_event(
    session: Session, kind: EventType, stream: LiveStream, settings: Settings
) -> None:
    """Add ``kind`` about ``stream`` to the outbox in ``session``'s transaction; its data
    is the stream as the API returns it, **without the stream key** (events reach
    webhooks and buses; the key is a publishing credential)."""
    session.flush()
    emit(session, kind, "live_stream", stream.id, _event_data(stream, settings))


def _event_data(stream: LiveStream, settings: Settings) -> dict[str, Any]:
    data = live_stream_to_api(stream, settings.effective_public_url, stream_key=False)
    del data["stream_key"]  # not even as null: the field is the API's, for its owners
    return data


def end_session(session: Session, stream: LiveStream, now: datetime) -> str | None:
    """End the stream's current session (if any) in ``session``'s transaction: its
    recording moves from ``active_asset_id`` to ``recent_asset_ids``. Returns the ended
    session's id when it had a recording (for :func:`recording_finished`, after commit),
    else None. Emits nothing (the caller says why it ended)."""
    sid = stream.active_session_id
    stream.active_session_id = None
    if (stream.health or {}).get("status") != "failed":
        stream.health = None  # idle: no figures (a failure's message stays)
    if stream.status is LiveStreamStatus.ACTIVE:
        stream.status = LiveStreamStatus.IDLE
    if sid is None:
        return None
    row = session.get(LiveSessionRow, sid)
    if row is not None and row.ended_at is None:
        row.ended_at = now
        if row.disconnected_at is None:
            row.disconnected_at = now
    recorded = stream.active_asset_id
    if recorded is not None:
        recent = [a for a in stream.recent_asset_ids or [] if a != recorded] + [recorded]
        stream.recent_asset_ids = recent[-MAX_RECENT_ASSETS:]
        stream.active_asset_id = None
    return sid if recorded is not None else None


def recording_finished(runtime: Runtime, session_id: str) -> str | None:
    """The hook a recorded session's end calls, after its transaction committed: the
    recording asset (``preparing``, in the stream's ``recent_asset_ids`` now) is made
    playable as VOD from the segments the live packager wrote, by a
    :class:`FinishRecording` job (``live.finish_recording``, :mod:`._recording`) queued
    here.

    Returns the asset's id (None when the session had no recording).
    """
    with runtime.db.session() as s:
        queued = queue_recording(s, session_id)
    if queued is None:
        return None
    asset_id, job_id, job_type = queued
    dispatch(runtime, job_id, job_type)
    log.info("live.recording_finished", session_id=session_id, asset_id=asset_id, job_id=job_id)
    return asset_id


def queue_recording(session: Session, session_id: str) -> tuple[str, str, str] | None:
    """Add the :class:`FinishRecording` job of a recorded session in ``session``'s
    transaction: (asset id, job id, job type) to :func:`mediaplane.jobs.dispatch` after
    commit, or None when the session had no recording."""
    row = session.get(LiveSessionRow, session_id)
    if row is None or row.asset_id is None:
        return None
    payload = FinishRecording(
        asset_id=row.asset_id, live_stream_id=row.live_stream_id, session_id=session_id
    )
    job = create_job(session, payload, subject_id=row.asset_id)
    return row.asset_id, job.id, job.type


def start_recording(session: Session, stream: LiveStream, settings: Settings, now: datetime) -> str:
    """A new recording asset for a session starting on ``stream`` (``record``)."""
    title = f"Live {stream.id} {now:%Y-%m-%d %H:%M} UTC"
    asset = create_recording_asset(session, settings, title=title, channel_id=stream.channel_id)
    stream.active_asset_id = asset.id
    return asset.id


# --- what the routes call --------------------------------------------------------------


def _view(session: Session, principal: Principal, stream: LiveStream, rt: Runtime) -> Any:
    show_key = _may_edit(session, principal, stream)
    return live_stream_to_api(stream, rt.settings.effective_public_url, stream_key=show_key)


def create_live_stream(
    runtime: Runtime,
    principal: Principal,
    *,
    channel_id: str | None = None,
    latency_mode: LatencyMode = LatencyMode.STANDARD,
    record: bool = False,
    dvr_window_seconds: int = DEFAULT_DVR_WINDOW_SECONDS,
    reconnect_window_seconds: int = DEFAULT_RECONNECT_WINDOW_SECONDS,
    playback_policy: PlaybackPolicy = PlaybackPolicy.PUBLIC,
    protection: str = "none",
) -> dict[str, Any]:
    """A new idle stream with a fresh stream key and one playback id, in ``channel_id``
    (default: the caller's first channel they edit; none for admins), in the API shape.

    :param protection: ``none``, ``cenc`` or ``cbcs`` (:func:`check_live_protection`).

    :param dvr_window_seconds: how far back viewers may seek (0: the live edge only).
    :param reconnect_window_seconds: how long a publisher that dropped may come back and
        continue the same session (same playback, same recording).
    """
    if not 0 <= dvr_window_seconds <= MAX_DVR_WINDOW_SECONDS:
        raise ValueError(f"dvr_window_seconds out of range: {dvr_window_seconds}")
    if not 0 <= reconnect_window_seconds <= MAX_RECONNECT_WINDOW_SECONDS:
        raise ValueError(f"reconnect_window_seconds out of range: {reconnect_window_seconds}")
    check_live_protection(protection, record)
    with runtime.db.session() as s:
        channel = upload_channel(s, principal, channel_id)
        key = new_stream_key()
        stream = LiveStream(
            channel_id=channel,
            stream_key=key,
            stream_key_hash=stream_key_hash(key),
            status=LiveStreamStatus.IDLE,
            latency_mode=latency_mode,
            record=record,
            protection=protection,
            dvr_window_seconds=dvr_window_seconds,
            reconnect_window_seconds=reconnect_window_seconds,
            recent_asset_ids=[],
        )
        stream.playback_ids.append(LivePlaybackId(policy=playback_policy))
        s.add(stream)
        emit_live_event(s, EventType.LIVE_STREAM_CREATED, stream, runtime.settings)
        data = _view(s, principal, stream, runtime)
    log.info("live_stream.created", live_stream_id=data["id"], channel_id=channel)
    return dict(data)


def check_live_protection(protection: str, record: bool) -> None:
    """:class:`InvalidProtection` (a 400 at the API) for a policy a live stream cannot have:
    ``aes-128`` (HLS full-segment encryption is VOD's only), one we do not know, or any
    protection on a recorded stream (the recording is made from the live segments, which
    would then be encrypted with the live stream's keys)."""
    if protection == "aes-128":
        raise InvalidProtection(
            "aes-128 is not available for live streams: use cbcs (HLS and DASH) or cenc"
        )
    if protection not in LIVE_PROTECTIONS:
        raise InvalidProtection(f"protection must be one of {', '.join(LIVE_PROTECTIONS)}")
    if protection != "none" and record:
        raise InvalidProtection(
            "a protected live stream cannot be recorded (yet): set record false"
        )


def update_live_stream(
    runtime: Runtime, principal: Principal, live_stream_id: str, *, protection: str | None = None
) -> Any:
    """Change a stream's settings (now: ``protection``, applied from its next publish)."""
    with runtime.db.session() as s:
        stream = authorized_live_stream(s, principal, live_stream_id, LiveAction.EDIT, lock=True)
        if protection is not None:
            check_live_protection(protection, stream.record)
            stream.protection = protection
        data = _view(s, principal, stream, runtime)
    log.info("live_stream.updated", live_stream_id=live_stream_id, protection=protection)
    return data


def live_stream_view(runtime: Runtime, principal: Principal, live_stream_id: str) -> Any:
    """The API shape of one stream ``principal`` may see (404 otherwise)."""
    with runtime.db.session() as s:
        stream = authorized_live_stream(s, principal, live_stream_id, LiveAction.READ)
        return _view(s, principal, stream, runtime)


def live_stream_views(
    runtime: Runtime, principal: Principal, *, limit: int, page: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of the streams ``principal`` may see, newest first, and how many in all."""
    query = select(LiveStream).where(live_visible_to(principal))
    with runtime.db.session() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(
            query.order_by(LiveStream.created_at.desc(), LiveStream.id)
            .limit(limit)
            .offset((page - 1) * limit)
        ).all()
        return [_view(s, principal, r, runtime) for r in rows], int(total)


def delete_live_stream(runtime: Runtime, principal: Principal, live_stream_id: str) -> None:
    """Delete the stream, its sessions and playback ids (its key stops at once; a
    publisher on it learns through ``is_publish_allowed``). Recordings stay, as assets:
    one in progress is finished from what its session wrote."""
    with runtime.db.session() as s:
        stream = authorized_live_stream(s, principal, live_stream_id, LiveAction.EDIT, lock=True)
        recorded = end_session(s, stream, utcnow())
        # Queued before the session's row goes with the stream.
        queued = queue_recording(s, recorded) if recorded is not None else None
        data = _event_data(stream, runtime.settings)
        s.delete(stream)
        emit(s, EventType.LIVE_STREAM_DELETED, "live_stream", live_stream_id, data)
    if queued is not None:
        dispatch(runtime, queued[1], queued[2])
    log.info("live_stream.deleted", live_stream_id=live_stream_id)


def reset_stream_key(runtime: Runtime, principal: Principal, live_stream_id: str) -> Any:
    """A new stream key; the old one stops authenticating at once (a publisher already
    connected with it stays on)."""
    with runtime.db.session() as s:
        stream = authorized_live_stream(s, principal, live_stream_id, LiveAction.EDIT, lock=True)
        key = new_stream_key()
        stream.stream_key, stream.stream_key_hash = key, stream_key_hash(key)
        emit_live_event(s, EventType.LIVE_STREAM_UPDATED, stream, runtime.settings)
        data = _view(s, principal, stream, runtime)
    log.info("live_stream.key_reset", live_stream_id=live_stream_id)
    return data


def disable_live_stream(runtime: Runtime, principal: Principal, live_stream_id: str) -> Any:
    """Refuse publishers from now on; a session in progress ends (its publisher is told by
    ``is_publish_allowed``, its recording goes to ``recent_asset_ids``). Disabling a
    disabled stream changes nothing."""
    recorded = None
    with runtime.db.session() as s:
        stream = authorized_live_stream(s, principal, live_stream_id, LiveAction.EDIT, lock=True)
        if stream.status is not LiveStreamStatus.DISABLED:
            recorded = end_session(s, stream, utcnow())
            stream.status = LiveStreamStatus.DISABLED
            emit_live_event(s, EventType.LIVE_STREAM_DISABLED, stream, runtime.settings)
        data = _view(s, principal, stream, runtime)
    if recorded is not None:
        recording_finished(runtime, recorded)
    log.info("live_stream.disabled", live_stream_id=live_stream_id)
    return data


def enable_live_stream(runtime: Runtime, principal: Principal, live_stream_id: str) -> Any:
    """Accept publishers again (``idle``); enabling an enabled stream changes nothing."""
    with runtime.db.session() as s:
        stream = authorized_live_stream(s, principal, live_stream_id, LiveAction.EDIT, lock=True)
        if stream.status is LiveStreamStatus.DISABLED:
            stream.status = LiveStreamStatus.IDLE
            emit_live_event(s, EventType.LIVE_STREAM_ENABLED, stream, runtime.settings)
        data = _view(s, principal, stream, runtime)
    log.info("live_stream.enabled", live_stream_id=live_stream_id)
    return data


def add_live_playback_id(
    runtime: Runtime, principal: Principal, live_stream_id: str, policy: PlaybackPolicy
) -> dict[str, Any]:
    """Give the stream a new playback id with ``policy`` (``public``, or ``signed``: only
    with a playback token); ``{"id", "policy"}``."""
    with runtime.db.session() as s:
        stream = authorized_live_stream(s, principal, live_stream_id, LiveAction.EDIT, lock=True)
        pid = LivePlaybackId(policy=policy)
        stream.playback_ids.append(pid)
        emit_live_event(s, EventType.LIVE_STREAM_UPDATED, stream, runtime.settings)
        data = {"id": pid.id, "policy": str(pid.policy)}
    log.info("live_stream.playback_id_added", live_stream_id=live_stream_id, policy=str(policy))
    return data


def remove_live_playback_id(
    runtime: Runtime, principal: Principal, live_stream_id: str, playback_id: str
) -> None:
    """Remove one playback id of the stream (404 when it has no such id)."""
    with runtime.db.session() as s:
        stream = authorized_live_stream(s, principal, live_stream_id, LiveAction.EDIT, lock=True)
        pid = next((p for p in stream.playback_ids if p.id == playback_id), None)
        if pid is None:
            raise LiveStreamNotFound(f"The live stream has no playback id {playback_id!r}.")
        stream.playback_ids.remove(pid)
        emit_live_event(s, EventType.LIVE_STREAM_UPDATED, stream, runtime.settings)
    log.info("live_stream.playback_id_removed", live_stream_id=live_stream_id)
