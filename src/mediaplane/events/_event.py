"""Domain events: their types and the one JSON shape every bus and consumer sees."""

from __future__ import annotations

import enum
import fnmatch
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._model import OutboxRow

#: One encoder, made once (json.dumps with separators makes one per call).
_COMPACT = json.JSONEncoder(separators=(",", ":"), default=str)


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
    #: The analytics warehouse's build had a failing data test or a stale lake (data: the
    #: failing checks); object: the ``analytics.build`` job.
    ANALYTICS_QUALITY_FAILED = "analytics.quality_failed"


class Event:
    """One domain event: ``{"type", "id", "created_at", "object": {"type", "id"}, "data"}``.

    Immutable. An event read from the outbox (:meth:`stored`) keeps ``data`` as the JSON
    text the row holds: the relay hands it to the bus without decoding and encoding it
    again, and ``data`` is decoded only when something asks for it.

    :param seq: its outbox row id (the relay's order), when known.
    """

    __slots__ = (
        "_body",
        "_data",
        "_data_json",
        "created_at",
        "id",
        "object_id",
        "object_type",
        "seq",
        "type",
    )

    type: str
    id: str
    created_at: datetime
    object_type: str
    object_id: str
    seq: int | None
    _data: dict[str, Any] | None
    _data_json: str | None
    _body: str | None

    def __init__(
        self,
        type: str,
        id: str,
        created_at: datetime,
        object_type: str,
        object_id: str,
        data: dict[str, Any],
        seq: int | None = None,
    ) -> None:
        self._init(type, id, created_at, object_type, object_id, seq)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_data_json", None)

    def _init(
        self,
        type: str,
        id: str,
        created_at: datetime,
        object_type: str,
        object_id: str,
        seq: int | None,
    ) -> None:
        set_ = object.__setattr__  # (immutable: __setattr__ refuses)
        set_(self, "type", type)
        set_(self, "id", id)
        set_(self, "created_at", created_at)
        set_(self, "object_type", object_type)
        set_(self, "object_id", object_id)
        set_(self, "seq", seq)
        set_(self, "_body", None)

    @classmethod
    def stored(
        cls,
        type: str,
        id: str,
        created_at: datetime,
        object_type: str,
        object_id: str,
        data_json: str,
        seq: int | None = None,
    ) -> Event:
        """The event of an outbox row, ``data_json`` its ``data`` column as stored."""
        event = cls.__new__(cls)
        event._init(type, id, created_at, object_type, object_id, seq)
        object.__setattr__(event, "_data", None)
        object.__setattr__(event, "_data_json", data_json)
        return event

    @property
    def data(self) -> dict[str, Any]:
        """The resource as the API returns it."""
        if self._data is None:
            object.__setattr__(self, "_data", json.loads(self._data_json or "null"))
        assert self._data is not None
        return self._data

    def with_seq(self, seq: int) -> Event:
        """This event with its outbox row id."""
        if self._data_json is not None:
            return Event.stored(
                self.type,
                self.id,
                self.created_at,
                self.object_type,
                self.object_id,
                self._data_json,
                seq,
            )
        return Event(
            self.type, self.id, self.created_at, self.object_type, self.object_id, self.data, seq
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"an Event is immutable (cannot set {name!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self._key() == other._key() and self.data == other.data

    # (no hash: data is a dict)
    __hash__ = None  # type: ignore[assignment]

    def _key(self) -> tuple[object, ...]:
        return (self.type, self.id, self.created_at, self.object_type, self.object_id, self.seq)

    def __repr__(self) -> str:
        return (
            f"Event(type={self.type!r}, id={self.id!r}, created_at={self.created_at!r}, "
            f"object_type={self.object_type!r}, object_id={self.object_id!r}, seq={self.seq!r})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "object": {"type": self.object_type, "id": self.object_id},
            "data": self.data,
        }

    def dumps(self) -> str:
        """The event as JSON text, as every bus carries it."""
        if self._data_json is None:
            return _COMPACT.encode(self.to_json())
        if self._body is None:  # the stored data spliced in: the same document, no decoding
            head = {
                "type": self.type,
                "id": self.id,
                "created_at": self.created_at.isoformat(),
                "object": {"type": self.object_type, "id": self.object_id},
            }
            body = _COMPACT.encode(head)[:-1] + ',"data":' + self._data_json
            object.__setattr__(self, "_body", body + "}")
        assert self._body is not None
        return self._body

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
