"""Player beacons: the batch a player posts to ``POST /api/v1/beacons``, validated as
untrusted input, and turned into lake rows.

A batch is an envelope (the view it belongs to, the playback id, the player, when it was
sent) and up to :data:`MAX_EVENTS` events. The envelope is checked whole: a bad one refuses
the batch (400). Each event is checked alone: a bad event is rejected and counted, the rest
are taken. Extra fields are refused everywhere, every string and list is bounded.

Times: a player's clock may be wrong. The batch's ``sent_at`` against the server's receive
time gives the player's clock offset; when it is off by more than
:data:`CLOCK_TOLERANCE_MS`, every event of the batch is shifted by it (intervals between
events are kept). Then each event's time is clamped into
``[received - skew bound, received]``: nothing lands in the future, nothing further back
than the bound.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ._errors import InvalidBeacon

__all__ = [
    "EVENT_COLUMNS",
    "MAX_EVENTS",
    "Batch",
    "BeaconEvent",
    "EventKind",
    "Intake",
    "Pseudonymizer",
    "parse_batch",
]

#: Events one batch may carry.
MAX_EVENTS = 200
#: A player clock within this of the server's is trusted as it is.
CLOCK_TOLERANCE_MS = 2_000

_Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
_Name = Annotated[
    str, StringConstraints(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9 _.+/:-]+$")
]
_Text = Annotated[str, StringConstraints(max_length=256)]
#: A host name with an optional port (what serves the media: the CDN).
_HOST = r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$"
_Host = Annotated[str, StringConstraints(min_length=1, max_length=260, pattern=_HOST)]
_Ms = Annotated[int, Field(ge=0, le=2**53)]
_Seconds = Annotated[float, Field(ge=0, le=10_000_000, allow_inf_nan=False)]


class EventKind(enum.StrEnum):
    """What happened in the player."""

    VIEW_START = "view_start"  # the viewer asked to play (page load with autoplay, a click)
    FIRST_FRAME = "first_frame"  # the first frame showed: ``startup_ms`` since view_start
    REBUFFER_START = "rebuffer_start"  # playback stalled on an empty buffer
    REBUFFER_END = "rebuffer_end"  # it went on: ``duration_ms`` stalled
    RENDITION_SWITCH = "rendition_switch"  # now playing ``rendition`` at ``bitrate``
    ERROR = "error"  # ``code``, ``message``, ``fatal``
    SEEK = "seek"  # ``from_s`` → ``to_s``
    PAUSE = "pause"
    END = "end"  # the view ended (played out, or the page went away)
    HEARTBEAT = "heartbeat"  # every few seconds while playing: position, rendition


class Player(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: _Name
    version: _Name | None = None


class BeaconEvent(BaseModel):
    """One event. ``ts`` is the player's clock (ms since the Unix epoch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _Id
    type: EventKind
    ts: _Ms
    #: Where playback is, seconds into the presentation.
    position_s: _Seconds | None = None
    rendition: _Name | None = None
    #: The rendition's bitrate, bits per second.
    bitrate: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = None
    width: Annotated[int, Field(ge=0, le=16384)] | None = None
    height: Annotated[int, Field(ge=0, le=16384)] | None = None
    #: first_frame: milliseconds from view_start to the first frame.
    startup_ms: Annotated[int, Field(ge=0, le=3_600_000)] | None = None
    #: rebuffer_end: milliseconds the stall lasted.
    duration_ms: Annotated[int, Field(ge=0, le=86_400_000)] | None = None
    #: Milliseconds spent playing in this view so far (a running total: a lost or repeated
    #: beacon does not skew watch time).
    watched_ms: Annotated[int, Field(ge=0, le=86_400_000 * 7)] | None = None
    code: _Name | None = None
    message: _Text | None = None
    fatal: bool | None = None
    from_s: _Seconds | None = None
    to_s: _Seconds | None = None
    #: The player's size on the page (the video element, in device pixels), sent with
    #: view_start, heartbeats and rendition switches: against the rendition's height it
    #: gives the upscale/downscale percentages.
    player_width: Annotated[int, Field(ge=0, le=16384)] | None = None
    player_height: Annotated[int, Field(ge=0, le=16384)] | None = None
    #: The host the player's latest media segment came from (a multi-CDN setup has one
    #: per CDN), sent with heartbeats and rendition switches: the CDN breakdown.
    cdn: _Host | None = None


class Batch(BaseModel):
    """The envelope; ``events`` are validated one by one (:func:`parse_batch`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The view (one playback session of one viewer): the player makes it, and sends it as
    #: CMCD ``sid`` too.
    view_id: _Id
    playback_id: Annotated[
        str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z0-9]+$")
    ]
    player: Player
    #: The player's own anonymous viewer id (kept in the browser); stored only as a keyed
    #: hash.
    viewer_id: _Id | None = None
    #: The player's clock when it sent the batch (ms since the Unix epoch).
    sent_at: _Ms | None = None
    events: Annotated[list[Any], Field(max_length=MAX_EVENTS)]


@dataclass(frozen=True)
class Rejected:
    index: int
    message: str


class _ValidBatch(Batch):
    """The whole batch in one pass (every event valid: the usual case)."""

    events: Annotated[list[BeaconEvent], Field(max_length=MAX_EVENTS)]


def parse_batch(body: bytes) -> tuple[Batch, list[BeaconEvent], list[Rejected]]:
    """The batch in ``body``, its valid events, and the index and reason of each rejected one.

    :raises InvalidBeacon: not JSON, or the envelope breaks the schema.
    """
    try:  # one pass through pydantic's core when everything is valid
        whole = _ValidBatch.model_validate_json(body)
        return whole, whole.events, []
    except ValidationError:
        pass  # then the envelope alone, and each event on its own
    try:
        batch = Batch.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidBeacon(f"{where}: {first.get('msg', 'invalid')}") from None
    good: list[BeaconEvent] = []
    bad: list[Rejected] = []
    for i, raw in enumerate(batch.events):
        try:
            good.append(BeaconEvent.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "event"
            bad.append(Rejected(i, f"{where}: {first.get('msg', 'invalid')}"[:200]))
    return batch, good, bad


class Pseudonymizer:
    """Keyed hashes for identities (HMAC-SHA256, 128 bits kept): the same viewer gets the
    same pseudonym, and nobody without the key can tell whose it is (nor test a guess)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, kind: str, value: str) -> str:
        msg = kind.encode() + b"\0" + value.encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:32]


#: The lake's event columns, in the order :meth:`Intake.rows` yields them, with their types.
EVENT_COLUMNS: dict[str, str] = {
    "event_id": "VARCHAR",
    "view_id": "VARCHAR",
    "type": "VARCHAR",
    "ts_ms": "BIGINT",
    "received_ms": "BIGINT",
    "playback_id": "VARCHAR",
    "viewer": "VARCHAR",
    "address": "VARCHAR",
    "player_name": "VARCHAR",
    "player_version": "VARCHAR",
    "user_agent": "VARCHAR",
    "position_s": "DOUBLE",
    "rendition": "VARCHAR",
    "bitrate": "BIGINT",
    "width": "INTEGER",
    "height": "INTEGER",
    "startup_ms": "BIGINT",
    "duration_ms": "BIGINT",
    "watched_ms": "BIGINT",
    "code": "VARCHAR",
    "message": "VARCHAR",
    "fatal": "BOOLEAN",
    "from_s": "DOUBLE",
    "to_s": "DOUBLE",
    "player_width": "INTEGER",
    "player_height": "INTEGER",
    "cdn": "VARCHAR",
    "country": "VARCHAR",
}


@dataclass(frozen=True)
class Intake:
    """How a received batch becomes rows: the clock bound and whose it is.

    :param skew_ms: how far back from the receive time an event may be (ms).
    """

    skew_ms: int

    def corrected(self, batch: Batch, event: BeaconEvent, received_ms: int) -> int:
        """The event's time on the server's clock, clamped (ms since the epoch)."""
        ts = event.ts
        if batch.sent_at is not None:
            offset = received_ms - batch.sent_at
            if abs(offset) > CLOCK_TOLERANCE_MS:
                ts += offset
        return min(received_ms, max(received_ms - self.skew_ms, ts))

    def rows(
        self,
        batch: Batch,
        events: list[BeaconEvent],
        received_ms: int,
        *,
        viewer: str | None,
        address: str | None,
        user_agent: str | None,
        country: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """One lake row per event (columns of :data:`EVENT_COLUMNS`); ``country``: the
        viewer's, as the rights checks see it (a trusted CDN header, the operator's address
        table), found before the address is truncated."""
        p = batch.player
        out = []
        for e in events:
            out.append(
                (
                    e.id,
                    batch.view_id,
                    e.type.value,
                    self.corrected(batch, e, received_ms),
                    received_ms,
                    batch.playback_id,
                    viewer,
                    address,
                    p.name,
                    p.version,
                    user_agent,
                    e.position_s,
                    e.rendition,
                    e.bitrate,
                    e.width,
                    e.height,
                    e.startup_ms,
                    e.duration_ms,
                    e.watched_ms,
                    e.code,
                    e.message,
                    None if e.fatal is None else ("true" if e.fatal else "false"),
                    e.from_s,
                    e.to_s,
                    e.player_width,
                    e.player_height,
                    e.cdn and e.cdn.lower(),
                    country,
                )
            )
        return out
