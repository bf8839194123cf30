"""Beacon intake per process: validation, limits, pseudonyms, and the handoff to the lake."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mediaplane.accounts import redis_client, truncate_address

from ._beacons import Intake, Pseudonymizer, parse_batch
from ._errors import RateLimited
from ._identity import ensure_analytics_key
from ._lake import Lake, lake_of
from ._limits import InProcessRate, Rate, RedisRate
from ._realtime import Realtime, realtime_of, view_update

if TYPE_CHECKING:
    from mediaplane.runtime import Runtime

__all__ = ["BeaconIntake", "Receipt", "beacon_intake"]

#: Rejected events described in an answer at most (all are counted).
MAX_REASONS = 10


@dataclass(frozen=True)
class Receipt:
    accepted: int
    duplicates: int
    rejected: int
    errors: list[dict[str, Any]]

    def to_api(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors,
        }


class BeaconIntake:
    """What ``POST /api/v1/beacons`` does with a body, for one runtime."""

    def __init__(self, rt: Runtime, lake: Lake) -> None:
        s = rt.settings
        self.lake = lake
        self.realtime: Realtime = realtime_of(rt)
        self.intake = Intake(skew_ms=int(s.beacon_clock_skew_seconds * 1000))
        self.pseudonym = Pseudonymizer(ensure_analytics_key(s))
        client = redis_client(s)
        self.per_viewer: Rate
        self.per_address: Rate
        if client is None:
            self.per_viewer = InProcessRate(s.beacon_batches_per_viewer)
            self.per_address = InProcessRate(s.beacon_batches_per_address)
        else:
            ns = s.queue_namespace
            self.per_viewer = RedisRate(client, s.beacon_batches_per_viewer, prefix=ns + ":viewer")
            self.per_address = RedisRate(
                client, s.beacon_batches_per_address, prefix=ns + ":address"
            )

    def take(
        self,
        body: bytes,
        address: str | None,
        user_agent: str | None,
        country: str | None = None,
    ) -> Receipt:
        """Validate ``body`` and buffer its good events.

        :raises InvalidBeacon: the envelope is bad (nothing taken).
        :raises RateLimited: the viewer or the address is over its share.
        :raises LakeBusy: the buffer is full.
        """
        received = time.time_ns() // 1_000_000
        raw_address = address or "unknown"
        # The address's share is taken before parsing: junk from one address costs it alone.
        if (wait := self.per_address.hit(raw_address)) > 0:
            raise RateLimited("Too many beacon batches from this address; wait.", wait)
        batch, good, bad = parse_batch(body)
        viewer = (
            self.pseudonym("viewer", batch.viewer_id)
            if batch.viewer_id
            else self.pseudonym("address", f"{raw_address}\0{user_agent or ''}")
        )
        if (wait := self.per_viewer.hit(viewer)) > 0:
            raise RateLimited("Too many beacon batches from this viewer; wait.", wait)
        rows = self.intake.rows(
            batch,
            good,
            received,
            viewer=viewer,
            address=truncate_address(address),
            user_agent=(user_agent or None) and user_agent[:256],
            country=country,
        )
        taken, dupes = self.lake.add_events(rows) if rows else (0, 0)
        # replays included: every field keeps its newest value, errors count once each
        update = view_update(
            batch.playback_id,
            batch.view_id,
            ((e, row[3]) for e, row in zip(good, rows, strict=True)),
        )
        if update is not None:
            self.realtime.update(update)
        reasons = [{"index": r.index, "message": r.message} for r in bad[:MAX_REASONS]]
        return Receipt(taken, dupes, len(bad), reasons)


def _make_intake(rt: Runtime) -> BeaconIntake:
    return BeaconIntake(rt, lake_of(rt))


def beacon_intake(rt: Runtime) -> BeaconIntake:
    """This process's intake for the runtime (made on first use)."""
    return rt.shared(_make_intake)
