"""The dashboard's data-quality panel over a real database (SQLite): a failed check is
current until a build writes the warehouse again, whether the scheduled job ran the build
or a person did (``mediaplane analytics build`` records no job)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mediaplane.analytics import warehouse_path
from mediaplane.app import job_table
from mediaplane.config import Settings
from mediaplane.db import migrate
from mediaplane.events import EventType, emit
from mediaplane.runtime import Runtime
from mediaplane.web._analytics_pages import _quality


def test_a_failure_is_current_until_the_warehouse_is_written_again(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    migrate(settings.effective_database_url)
    rt = Runtime(settings, job_table=job_table)
    try:
        assert _quality(rt) == {"build": None, "failure": None, "built_at": None}
        warehouse = warehouse_path(tmp_path)
        warehouse.parent.mkdir(parents=True, exist_ok=True)
        warehouse.write_bytes(b"written by the failing build")  # before its failure
        os.utime(warehouse, (time.time() - 60, time.time() - 60))
        summary = {"ok": False, "failed": [{"node": "test.x.not_null_fct_views_view_id"}]}
        with rt.db.session() as s:
            emit(s, EventType.ANALYTICS_QUALITY_FAILED, "analytics_build", "cli", summary)
        q = _quality(rt)
        assert q["failure"]["current"] and q["failure"]["nodes"] == [
            "test.x.not_null_fct_views_view_id"
        ]

        os.utime(warehouse, (time.time() + 60, time.time() + 60))  # a build since: it passed
        q = _quality(rt)
        assert not q["failure"]["current"] and q["built_at"] > q["failure"]["at"]
    finally:
        rt.db.dispose()
