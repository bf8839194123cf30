"""Domain events: their types and the one JSON shape every bus and consumer sees."""

from __future__ import annotations

import enum
import fnmatch
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._model import OutboxRow


class EventType(enum.StrEnum):
    """Every event Mediaplane emits, named as hosted-video APIs name theirs."""

    ASSET_CREATED = "video.asset.created"
    ASSET_READY = "video.asset.ready"
    ASSET_ERRORED = "video.asset.errored"
    ASSET_UPDATED = "video.asset.updated"
    ASSET_DELETED = "video.asset.deleted"
    #: One per track (the video track, each audio track) as it becomes playable: when the
    #: asset turns ready, and for tracks the full ladder adds after the preview.
    ASSET_TRACK_READY = "video.asset.track.ready"
    ASSET_MODERATION_APPROVED = "video.asset.moderation.approved"
    ASSET_MODERATION_REJECTED = "video.asset.moderation.rejected"
    #: A live stream's recording ended; its asset is being made playable as VOD.
    ASSET_LIVE_STREAM_COMPLETED = "video.asset.live_stream_completed"
    UPLOAD_CREATED = "video.upload.created"
    UPLOAD_ASSET_CREATED = "video.upload.asset_created"
    UPLOAD_CANCELLED = "video.upload.cancelled"
    UPLOAD_ERRORED = "video.upload.errored"
    # Live streams: data is the stream as the API returns it, without its stream key.
    LIVE_STREAM_CREATED = "video.live_stream.created"
    LIVE_STREAM_CONNECTED = "video.live_stream.connected"  # a publisher connected
    LIVE_STREAM_ACTIVE = "video.live_stream.active"  # a new session is live
    LIVE_STREAM_DISCONNECTED = "video.live_stream.disconnected"  # the publisher went away
    LIVE_STREAM_IDLE = "video.live_stream.idle"  # the session ended (reconnect window over)
    LIVE_STREAM_UPDATED = "video.live_stream.updated"
    LIVE_STREAM_DELETED = "video.live_stream.deleted"
    LIVE_STREAM_DISABLED = "video.live_stream.disabled"
    LIVE_STREAM_ENABLED = "video.live_stream.enabled"


@dataclass(frozen=True)
class Event:
    """One domain event: ``{"type", "id", "created_at", "object": {"type", "id"}, "data"}``.

    :param seq: its outbox row id (the relay's order), when known.
    """

    type: str
    id: str
    created_at: datetime
    object_type: str
    object_id: str
    data: dict[str, Any]
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "object": {"type": self.object_type, "id": self.object_id},
            "data": self.data,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), default=str)

    @classmethod
    def loads(cls, text: str | bytes, seq: int | None = None) -> Event:
        """The event from its JSON (as a bus carries it)."""
        doc = json.loads(text)
        return cls(
            type=doc["type"],
            id=doc["id"],
            created_at=datetime.fromisoformat(doc["created_at"]),
            object_type=doc["object"]["type"],
            object_id=doc["object"]["id"],
            data=doc["data"],
            seq=seq,
        )

    @classmethod
    def of(cls, row: OutboxRow) -> Event:
        return cls(
            row.type,
            row.event_id,
            row.created_at,
            row.object_type,
            row.object_id,
            row.data,
            seq=row.id,
        )


def matches(event_type: str, patterns: Iterable[str] | None) -> bool:
    """Whether ``event_type`` is one of ``patterns`` (``video.asset.*``); None: every type."""
    if patterns is None:
        return True
    return any(fnmatch.fnmatchcase(event_type, p) for p in patterns)
