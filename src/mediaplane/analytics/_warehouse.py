"""The warehouse: the dbt project shipped in this package (``analytics/dbt``) built over the
lake with dbt-duckdb, into a DuckDB file in the data dir (``<data-dir>/analytics/
warehouse.duckdb``). Its data tests (not null, accepted values, relationships, unique) and
the lake's freshness are the data-quality gate.

:func:`build_warehouse` runs ``dbt source freshness`` and ``dbt build`` through dbt's
Python API (``dbtRunner``), reporting each node as it finishes; ``mediaplane analytics
build`` and the ``analytics.build`` job (:func:`build_job`, on a schedule with
``analytics_build_interval_seconds``) call it. A job whose build has a failing check emits
``analytics.quality_failed`` with the failing nodes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from sqlalchemy import func, select

from mediaplane.db import utcnow
from mediaplane.events import EventType, emit
from mediaplane.jobs import Job, JobContext, JobPayload, JobState, create_job, dispatch

from ._lake import Lake, lake_of

if TYPE_CHECKING:
    from mediaplane.runtime import Runtime

__all__ = [
    "DBT_PROJECT",
    "BuildAnalytics",
    "DbtStep",
    "WarehouseBuild",
    "build_gave_up",
    "build_job",
    "build_warehouse",
    "report_build",
    "schedule_build",
    "warehouse_path",
]

log = structlog.get_logger("mediaplane.analytics.warehouse")

#: The dbt project (dbt_project.yml, models/, macros/, profiles/).
DBT_PROJECT = Path(__file__).parent / "dbt"
#: dbt keeps global state (flags, adapters): one invocation at a time per process.
_DBT_LOCK = threading.Lock()
_FAILED = {"error", "fail", "runtime error"}


@dataclass(frozen=True)
class DbtStep:
    """One dbt node's outcome: ``model.mediaplane_analytics.fct_views`` ``success``."""

    command: str  # freshness, build
    node: str
    status: str  # success, pass, warn, error, fail, skipped, runtime error
    message: str | None = None
    failures: int | None = None

    @property
    def failed(self) -> bool:
        return self.status in _FAILED


@dataclass
class WarehouseBuild:
    """What one build did: every node's step, and whether the lake had anything yet."""

    steps: list[DbtStep] = field(default_factory=list)
    empty_lake: bool = False
    error: str | None = None  # dbt itself failed (a broken project or profile)

    @property
    def failed(self) -> list[DbtStep]:
        return [s for s in self.steps if s.failed]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "empty_lake": self.empty_lake,
            "error": self.error,
            "steps": len(self.steps),
            "failed": [
                {"node": s.node, "status": s.status, "message": s.message, "failures": s.failures}
                for s in self.failed
            ],
        }


def warehouse_path(data_path: Path) -> Path:
    """The DuckDB file the models are built into."""
    return data_path / "analytics" / "warehouse.duckdb"


def _lake_root(lake: Lake) -> tuple[str | None, bool]:
    """The local folder holding ``events/date=…`` (the store's, or the cache of a remote
    store after fetching every file; None while the lake has no event file), and whether
    ``cmcd/date=…`` has a file there too."""
    files = lake.files("events")
    if not files:
        return None, False
    first = Path(files[0]).as_posix()
    root = first[: first.rindex("/events/date=")]
    cmcd = [Path(f).as_posix() for f in lake.files("cmcd")]
    # the local store and the cache hold both datasets side by side: one root for both
    return root, any(f.startswith(root + "/cmcd/date=") for f in cmcd)


def build_warehouse(
    lake: Lake,
    data_path: Path,
    *,
    on_step: Callable[[DbtStep], None] | None = None,
    on_start: Callable[[str, str], None] | None = None,
) -> WarehouseBuild:
    """Check the lake's freshness, then ``dbt build`` (models and data tests) into
    :func:`warehouse_path` (blocking; seconds).

    :param on_step: called with each node's outcome as it finishes.
    :param on_start: called with (command, node) as a node starts.
    """
    from dbt.cli.main import dbtRunner  # dbt takes ~1 s to import: only when building

    out = WarehouseBuild()
    root, cmcd_files = _lake_root(lake)
    if root is None:
        out.empty_lake = True
        return out
    work = data_path / "analytics" / "dbt"
    work.mkdir(parents=True, exist_ok=True)
    variables = {
        "lake_root": root,
        "cmcd_files": cmcd_files,
        "duckdb_path": str(warehouse_path(data_path)),
    }
    common = [
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT / "profiles" / "duckdb"),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        "--vars",
        json.dumps(variables),
    ]
    command = ""

    def callback(msg: Any) -> None:
        name = msg.info.name
        if name not in ("NodeStart", "NodeFinished"):
            return
        node = msg.data.node_info
        if name == "NodeStart":
            if on_start is not None:
                on_start(command, node.unique_id)
            return
        step = DbtStep(command, node.unique_id, node.node_status or "unknown")
        if on_step is not None:
            on_step(step)

    flags = ["--no-send-anonymous-usage-stats", "--no-version-check", "--quiet"]
    with _DBT_LOCK:
        runner = dbtRunner(callbacks=[callback])
        for command, args in (
            ("freshness", ["source", "freshness", *common]),
            ("build", ["build", *common]),
        ):
            res = runner.invoke([*flags, *args])
            if res.exception is not None:
                out.error = f"dbt {command}: {res.exception}"
                log.error("analytics.dbt_error", command=command, error=str(res.exception))
                break
            for r in getattr(res.result, "results", None) or []:
                out.steps.append(
                    DbtStep(
                        command,
                        r.node.unique_id,
                        str(r.status),
                        r.message,
                        getattr(r, "failures", None),
                    )
                )
        _release_duckdb()
    log.info("analytics.built", **out.summary())
    return out


def _release_duckdb() -> None:
    """Close the warehouse file dbt-duckdb keeps open in this process after a run, so that
    readers (another process, a read-only connection) can open it."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    env = DuckDBConnectionManager._ENV  # the adapter's one cached DuckDB instance
    if env is not None:
        env.close()  # type: ignore[no-untyped-call]
    DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]


class BuildAnalytics(JobPayload):
    """Build the warehouse from the lake and run its data tests."""

    job_type: ClassVar[str] = "analytics.build"


def build_job(ctx: JobContext, payload: BuildAnalytics) -> None:
    """The ``analytics.build`` job: a failing check emits ``analytics.quality_failed``."""
    rt = ctx.runtime
    report_build(rt, build_warehouse(lake_of(rt), rt.settings.data_path), ctx.job_id)


def report_build(rt: Runtime, result: WarehouseBuild, build_id: str) -> None:
    """A build that failed (a data test, freshness, or dbt itself) emits
    ``analytics.quality_failed`` with its failing nodes: the dashboard's data-quality panel
    shows it and webhooks carry it, whether the job or ``mediaplane analytics build`` ran
    it (``build_id``: the job's id, or ``cli``)."""
    if result.ok:
        return
    with rt.db.session() as s:
        emit(s, EventType.ANALYTICS_QUALITY_FAILED, "analytics_build", build_id, result.summary())


def build_gave_up(
    ctx: JobContext, payload: BuildAnalytics, message: str, /, *, permanent: bool
) -> None:
    log.error("analytics.build_gave_up", job_id=ctx.job_id, error=message)


def schedule_build(rt: Runtime) -> int:
    """A watchdog pass: enqueue ``analytics.build`` when ``analytics_build_interval_seconds``
    passed since the last one was created and none is waiting or running (1: enqueued)."""
    interval = rt.settings.analytics_build_interval_seconds
    if not interval:
        return 0
    with rt.db.session() as s:
        t = BuildAnalytics.job_type
        busy = s.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.type == t, Job.state.in_([JobState.PENDING, JobState.RUNNING]))
        )
        last = s.scalar(select(func.max(Job.created_at)).where(Job.type == t))
        if busy or (last is not None and utcnow() - last < timedelta(seconds=interval)):
            return 0
        job = create_job(s, BuildAnalytics())
        job_id = job.id
    dispatch(rt, job_id, BuildAnalytics.job_type)
    return 1
