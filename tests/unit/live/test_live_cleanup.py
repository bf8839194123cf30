"""Live directory cleanup (:func:`sweep_session_dirs`, :func:`remove_session_dir`): an ended
session that records nothing goes once its DVR window and the grace have passed; a recorded
one once its recording asset is ready, never while it prepares or after it failed (a retry
needs the segments); a session still live stays; a directory whose session is gone goes
after an hour unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mediaplane.accounts import INSTALL
from mediaplane.catalog import Asset, AssetStatus
from mediaplane.live import LiveSessionRow, create_live_stream, publisher_connected, session_dir
from mediaplane.live._recording import (
    CLEANUP_GRACE_SECONDS,
    ORPHAN_SECONDS,
    remove_session_dir,
    sweep_session_dirs,
)
from mediaplane.runtime import Runtime
from tests.support import migrated_runtime

DVR = 60


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with migrated_runtime("sqlite", tmp_path_factory.mktemp("cleanup")) as runtime:
        yield runtime


def _session(rt: Runtime, *, record: bool) -> tuple[str, str, Path]:
    stream = create_live_stream(rt, INSTALL, record=record, dvr_window_seconds=DVR)
    session = publisher_connected(rt, stream["id"], protocol="rtmp")
    out = session_dir(rt.settings, stream["id"], session.id)
    (out / "video").mkdir(parents=True)
    (out / "video" / "0.m4s").write_bytes(b"segment")
    return stream["id"], session.id, out


def _end(
    rt: Runtime, session_id: str, at: datetime, asset_status: AssetStatus | None = None
) -> None:
    with rt.db.session() as s:
        row = s.get(LiveSessionRow, session_id)
        assert row is not None
        row.ended_at = at
        if asset_status is not None:
            asset = s.get(Asset, row.asset_id)
            assert asset is not None
            asset.status = asset_status


def test_an_unrecorded_session_goes_after_its_dvr_window_and_grace(rt: Runtime) -> None:
    _, live_id, live_dir = _session(rt, record=False)
    stream_id, session_id, out = _session(rt, record=False)
    ended = datetime.now(UTC)
    _end(rt, session_id, ended)
    sweep_session_dirs(rt, ended + timedelta(seconds=DVR))  # a viewer may be behind
    assert out.is_dir()
    later = ended + timedelta(seconds=DVR + CLEANUP_GRACE_SECONDS + 1)
    sweep_session_dirs(rt, later)
    assert not out.exists() and not out.parent.exists()  # the stream's folder, empty, too
    assert live_dir.is_dir()  # still live: kept however late
    assert sweep_session_dirs(rt, later + timedelta(days=1)) == 0


@pytest.mark.parametrize("status", [AssetStatus.PREPARING, AssetStatus.ERRORED])
def test_a_recording_not_ready_keeps_its_segments(rt: Runtime, status: AssetStatus) -> None:
    _, session_id, out = _session(rt, record=True)
    _end(rt, session_id, datetime.now(UTC) - timedelta(days=1), status)
    sweep_session_dirs(rt)
    assert (out / "video" / "0.m4s").is_file()


def test_a_ready_recording_lets_its_segments_go(rt: Runtime) -> None:
    _, session_id, out = _session(rt, record=True)
    _end(rt, session_id, datetime.now(UTC), AssetStatus.READY)  # no grace: VOD plays it
    assert sweep_session_dirs(rt) >= 1
    assert not out.exists()


def test_orphans_go_after_an_hour(rt: Runtime) -> None:
    out = session_dir(rt.settings, "gonestream", "gonesession")
    out.mkdir(parents=True)
    sweep_session_dirs(rt)
    assert out.is_dir()
    sweep_session_dirs(rt, datetime.now(UTC) + timedelta(seconds=ORPHAN_SECONDS + 1))
    assert not out.exists()
    assert remove_session_dir(rt.settings, "gonestream", "gonesession") is False
