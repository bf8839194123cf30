"""The job table: rows checked when built, looked up by name; and the app's table, whose
names stay the values stored in ``jobs.type`` and whose limits come from the settings."""

from __future__ import annotations

from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mediaplane.app import job_table
from mediaplane.catalog import AssetJob, EncodeChunk, StitchRung
from mediaplane.config import Settings
from mediaplane.jobs import JobContext, JobPayload, JobSpec, JobTable, UnknownJobType
from mediaplane.media import Chunk, Rung


class Note(JobPayload):
    job_type: ClassVar[str] = "test.note"
    text: str


def _run(ctx: JobContext, payload: Note) -> None:
    pass


def _give_up(ctx: JobContext, payload: Any, message: str, *, permanent: bool) -> None:
    pass


ROW: dict[str, Any] = {"queue": "test", "attempts": 3, "timeout_seconds": 60}


def test_lookup_by_name() -> None:
    spec = JobSpec(Note, _run, _give_up, **ROW)
    table = JobTable([spec])
    assert spec.name == "test.note" and table["test.note"] is spec
    assert list(table) == ["test.note"] and len(table) == 1
    assert "test.other" not in table and table.get("test.other") is None
    with pytest.raises(UnknownJobType, match="'test.other' is not in this process's job table"):
        table["test.other"]


def test_rows_are_checked() -> None:
    with pytest.raises(ValueError, match="twice"):
        JobTable([JobSpec(Note, _run, _give_up, **ROW)] * 2)
    with pytest.raises(ValueError, match="must name the job type"):
        JobSpec(AssetJob, _run, _give_up, **ROW)  # a shared base names no type
    with pytest.raises(ValueError, match="positive"):
        JobSpec(Note, _run, _give_up, **{**ROW, "attempts": 0})
    with pytest.raises(ValueError, match="positive"):
        JobSpec(Note, _run, _give_up, **{**ROW, "timeout_seconds": 0})
    with pytest.raises(ValueError, match="concurrency"):
        JobSpec(Note, _run, _give_up, **ROW, concurrency=0)


def test_the_apps_types_keep_their_stored_names(tmp_path: Path) -> None:
    table = job_table(Settings(data_dir=tmp_path))
    assert set(table) == {
        "asset.import_url",
        "asset.process",
        "asset.fingerprint",
        "asset.encode_chunk",
        "asset.stitch_rung",
        "asset.repackage",
        "live.finish_recording",
        "analytics.build",
    }
    assert table.queues() == ["io", "media", "package"]
    assert table["live.finish_recording"].queue == "package"
    assert table["asset.stitch_rung"].queue == "package"


def test_the_apps_limits_come_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        job_max_attempts=5,
        import_timeout_seconds=120,
        encode_timeout_max_seconds=7200,
    )
    table = job_table(settings)
    # the warehouse build is tried once: its schedule is its retry
    assert {name: spec.attempts for name, spec in table.items() if spec.attempts != 5} == {
        "analytics.build": 1
    }
    imports, process = table["asset.import_url"], table["asset.process"]
    assert (
        120
        < imports.timeout_seconds
        < job_table(Settings(data_dir=tmp_path))["asset.import_url"].timeout_seconds
    )
    assert process.timeout_seconds > 7200  # never cut an encode its own bound allows


def test_chunk_payloads_read_what_earlier_versions_stored() -> None:
    """Jobs queued before payloads were models: same JSON in, same JSON out."""
    rung = Rung("v720", 1280, 720, 3_000_000, 3_300_000, 6_000_000, Fraction(30000, 1001), 60)
    chunk = Chunk(index=2, start_frame=240, frames=None)
    stored = {
        "asset_id": "a1",
        "rung": {**asdict(rung), "fps": str(rung.fps)},
        "chunk": asdict(chunk),
        "chunks": 4,
    }
    payload = EncodeChunk.model_validate(stored)
    assert (payload.rung, payload.chunk, payload.chunks) == (rung, chunk, 4)
    assert payload.model_dump(mode="json") == stored
    stitch = {"asset_id": "a1", "rung": stored["rung"], "chunks": 4}
    assert StitchRung.model_validate(stitch).model_dump(mode="json") == stitch
