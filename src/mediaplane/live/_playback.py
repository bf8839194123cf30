"""What the origin needs to serve a live playback id: one indexed query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from ._models import LivePlaybackId, LiveStream

if TYPE_CHECKING:
    from mediaplane.runtime import Runtime

__all__ = ["LivePlayback", "resolve_live_playback"]


@dataclass(frozen=True)
class LivePlayback:
    """The live stream behind a playback id, as the origin decides on it.

    :param policy: ``public`` or ``signed`` (a playback token is needed).
    :param status: ``idle``, ``active`` or ``disabled``.
    :param session_id: the session now live (or away within its reconnect window: keep
        serving its playlists), None when idle or disabled.
    """

    live_stream_id: str
    policy: str
    status: str
    session_id: str | None
    latency_mode: str
    dvr_window_seconds: int
    protection: str = "none"  # the stream's policy (its segments may be encrypted)

    @property
    def carries(self) -> bool:
        """Its media URLs carry a carry token: signed, or protected (licence requests
        carry it too, as a protected VOD asset's do)."""
        return self.policy != "public" or self.protection != "none"


_QUERY = select(
    LivePlaybackId.policy,
    LiveStream.id,
    LiveStream.status,
    LiveStream.active_session_id,
    LiveStream.latency_mode,
    LiveStream.dvr_window_seconds,
    LiveStream.protection,
).join(LiveStream, LiveStream.id == LivePlaybackId.live_stream_id)


def resolve_live_playback(source: Runtime | Session, playback_id: str) -> LivePlayback | None:
    """The live stream a playback id plays, or None (no such id: maybe an asset's).

    One query (the playback id's primary key joined to its stream's). Blocking.

    :param source: a runtime (a session is opened for the read) or an open session.
    """
    if len(playback_id) > 64:
        return None
    query = _QUERY.where(LivePlaybackId.id == playback_id)
    if isinstance(source, Session):
        row = source.execute(query).first()
    else:
        with source.db.session() as s:
            row = s.execute(query).first()
    if row is None:
        return None
    policy, stream_id, status, session_id, latency_mode, dvr, protection = row
    return LivePlayback(
        live_stream_id=stream_id,
        policy=str(policy),
        status=str(status),
        session_id=session_id if status == "active" else None,
        latency_mode=str(latency_mode),
        dvr_window_seconds=int(dvr),
        protection=str(protection or "none"),
    )
