"""The outbox: an event exists exactly when the change it reports commits; the relay
publishes in outbox order, once per deployment, again after a crash between publishing
and marking (same ids, none lost), and not at all while the bus is down."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from mediaplane.catalog import Asset, ProcessAsset, emit_asset_event, get_asset, ingest_file
from mediaplane.catalog._service import delete_asset, moderate_asset, update_asset
from mediaplane.db import utcnow
from mediaplane.events import (
    BusUnavailable,
    Event,
    EventType,
    InProcessBus,
    OutboxRow,
    Relay,
    backlog,
    emit,
    open_bus,
    prune,
)
from mediaplane.events._outbox import unpublished
from mediaplane.ingest import create_upload
from mediaplane.ingest._uploads import cancel_upload
from mediaplane.jobs import JobContext
from mediaplane.pipeline import asset_gave_up
from mediaplane.runtime import Runtime
from tests.support import free_port, migrated_runtime


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with migrated_runtime("sqlite", tmp_path) as runtime:
        yield runtime


def _events(rt: Runtime) -> list[Event]:
    with rt.db.session() as s:
        return [Event.of(r) for r in s.scalars(select(OutboxRow).order_by(OutboxRow.id))]


def _asset(rt: Runtime, tmp_path: Path, title: str = "first") -> str:
    src = tmp_path / "src.mp4"
    src.write_bytes(b"not decoded here: no worker runs in this test")
    return ingest_file(rt, src, filename="src.mp4", title=title).id


def _rename_then_fail(rt: Runtime, asset_id: str) -> None:
    with rt.db.session() as s:
        asset = get_asset(s, asset_id)
        asset.title = "never"
        emit_asset_event(s, EventType.ASSET_UPDATED, asset, rt.settings)
        raise RuntimeError("the change fails after its event was written")


def _emit_then_conflict(rt: Runtime, asset_id: str) -> None:
    with rt.db.session() as s:
        emit(s, EventType.ASSET_UPDATED, "asset", asset_id, {"id": asset_id})
        s.add(Asset(id=asset_id, title="a second row with the same id"))


def test_an_event_rolls_back_with_its_change(rt: Runtime, tmp_path: Path) -> None:
    asset_id = _asset(rt, tmp_path)
    before = len(_events(rt))
    with pytest.raises(RuntimeError):
        _rename_then_fail(rt, asset_id)
    with pytest.raises(IntegrityError):  # the database refuses the change at commit
        _emit_then_conflict(rt, asset_id)
    assert len(_events(rt)) == before
    with rt.db.session() as s:
        assert get_asset(s, asset_id).title == "first"


def test_services_emit_the_resource_as_the_api_shows_it(rt: Runtime, tmp_path: Path) -> None:
    asset_id = _asset(rt, tmp_path)
    update_asset(rt, asset_id, title="renamed")
    moderate_asset(rt, asset_id, approve=False)
    ctx = JobContext(rt, "job", ProcessAsset.job_type, asset_id, 3)
    asset_gave_up(ctx, ProcessAsset(asset_id=asset_id), "the source is no video", permanent=True)
    asset_gave_up(ctx, ProcessAsset(asset_id=asset_id), "again", permanent=True)  # no event
    delete_asset(rt, asset_id)
    upload = create_upload(rt, 10, meta={"filename": "a.mp4"}, meta_header=None)
    cancel_upload(rt, upload.id)

    events = _events(rt)
    assert [(e.type, e.object_type, e.object_id) for e in events] == [
        ("video.asset.created", "asset", asset_id),
        ("video.asset.updated", "asset", asset_id),
        ("video.asset.moderation.rejected", "asset", asset_id),
        ("video.asset.errored", "asset", asset_id),
        ("video.asset.deleted", "asset", asset_id),
        ("video.upload.created", "upload", upload.id),
        ("video.upload.cancelled", "upload", upload.id),
    ]
    created, updated, rejected, errored, deleted, _, cancelled = events
    assert created.data["status"] == "preparing" and created.data["title"] == "first"
    assert created.data["playback"]["hls"].startswith(rt.settings.effective_public_url)
    assert updated.data["title"] == "renamed"
    assert rejected.data["moderation"] == "rejected"
    assert errored.data["errors"]["messages"] == ["the source is no video"]
    assert deleted.data["id"] == asset_id and deleted.data["status"] == "errored"
    assert cancelled.data["status"] == "cancelled"
    assert len({e.id for e in events}) == len(events)
    doc = created.to_json()
    assert set(doc) == {"type", "id", "created_at", "object", "data"}
    assert doc["object"] == {"type": "asset", "id": asset_id}
    assert Event.loads(created.dumps()).to_json() == doc


def _emit_many(rt: Runtime, n: int, objects: int = 3) -> list[str]:
    """``n`` events over ``objects`` objects, interleaved, one transaction per 50."""
    ids: list[str] = []
    for start in range(0, n, 50):
        with rt.db.session() as s:
            for i in range(start, min(n, start + 50)):
                ids.append(
                    emit(s, EventType.ASSET_UPDATED, "asset", f"a{i % objects}", {"n": i}).id
                )
    return ids


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_relay_order_lease_and_restart(database: str, tmp_path: Path) -> None:
    with migrated_runtime(database, tmp_path) as rt:
        ids = _emit_many(rt, 1200)
        seen: list[Event] = []
        bus = InProcessBus(rt.db)
        bus.listen(seen.append)

        first = Relay(rt.db, bus, batch=500)
        other = Relay(Runtime(rt.settings).db, bus, batch=500)  # another web process
        assert first.tick() == 500
        assert other.tick() == 0  # the first holds the lease: one relay per deployment
        # The first dies after the bus took a batch, before marking it: what a SIGKILL
        # between publish and mark leaves behind.
        with rt.db.session() as s:
            bus.publish(unpublished(s, 500))
        first.release()  # (a dead holder's lease expires; this hands it on at once)
        restarted = Relay(other.db, bus, batch=500)
        assert restarted.drain() == 700
        restarted.release()
        other.db.dispose()

        with rt.db.session() as s:
            assert backlog(s) == 0
        got = [e.id for e in seen]
        assert got[:500] == ids[:500]
        assert got[500:1000] == ids[500:1000]  # published, lost its mark, in the outbox still
        assert got[1000:] == ids[500:]  # so the next relay publishes it again: same ids
        assert set(got) == set(ids)
        for obj in ("a0", "a1", "a2"):  # per object, the order of the changes
            mine = [e.data["n"] for e in seen[1000:] if e.object_id == obj]
            assert mine == sorted(mine)


def test_a_bus_that_is_down_leaves_events_waiting(rt: Runtime) -> None:
    ids = _emit_many(rt, 120)
    down = open_bus(f"redis://127.0.0.1:{free_port()}/0", rt.db)
    relay = Relay(rt.db, down)
    with pytest.raises(BusUnavailable):
        relay.tick()
    with rt.db.session() as s:
        assert backlog(s) == 120
    seen: list[Event] = []
    up = InProcessBus(rt.db)
    up.listen(seen.append)
    relay.bus = up  # the bus is back
    assert relay.drain() == 120
    assert [e.id for e in seen] == ids


def test_embedded_readers_see_the_outbox_table(rt: Runtime) -> None:
    before = _emit_many(rt, 5)
    bus = open_bus(None, rt.db)
    tail = bus.subscribe(None)
    everything = bus.subscribe(None, from_start=True)
    after = _emit_many(rt, 3)
    assert [d.event.id for d in tail.fetch(1.0)] == after
    assert [d.event.id for d in everything.fetch(1.0)] == before + after
    assert tail.fetch(0.0) == []


def test_prune_deletes_only_old_published_events(rt: Runtime) -> None:
    old = _emit_many(rt, 3)
    relay = Relay(rt.db, InProcessBus(rt.db))
    assert relay.drain() == 3
    waiting = _emit_many(rt, 2)  # never published: kept however old
    long_ago = utcnow() - timedelta(days=8)
    with rt.db.session() as s:
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.event_id.in_(old[:2] + waiting))
            .values(created_at=long_ago)
        )
        s.execute(
            update(OutboxRow).where(OutboxRow.event_id.in_(old[:2])).values(published_at=long_ago)
        )
    with rt.db.session() as s:
        assert prune(s, 7 * 86400) == 2
    assert [e.id for e in _events(rt)] == old[2:] + waiting
