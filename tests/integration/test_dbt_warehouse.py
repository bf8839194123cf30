"""The analytics warehouse: generated beacons land in the lake through the real intake rows
and Lake flush, the shipped dbt project builds over them (dbt-duckdb, dbtRunner), and the
marts' numbers match what this test computes itself from the same events (and the metrics
API's, its own SQL over the lake, match the marts'); then a row of an unknown event type
makes a data test fail and the ``analytics.build`` job (run through the real job machinery)
emits ``analytics.quality_failed``."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pytest
from sqlalchemy import select

from mediaplane.analytics import (
    EVENT_COLUMNS,
    METRICS,
    BeaconEvent,
    BuildAnalytics,
    Intake,
    Lake,
    MetricsQuery,
    ViewScope,
    breakdown,
    build_warehouse,
    parse_batch,
    schedule_build,
    warehouse_path,
)
from mediaplane.app import job_table
from mediaplane.config import Settings
from mediaplane.db import migrate
from mediaplane.events import OutboxRow
from mediaplane.jobs import Job, JobState, run_job
from mediaplane.runtime import Runtime
from mediaplane.storage import open_store

PLAYBACKS = ("pbalpha", "pbbeta")
GOOD, BAD = 1000, 10000  # the project's startup_good_ms / startup_bad_ms vars


def _view(rng: random.Random, i: int, now_ms: int) -> tuple[dict[str, Any], list[dict]]:
    """One view's beacon events (as a player posts them) and what the test expects of it."""
    start = now_ms - rng.randint(60_000, 1_800_000)
    kind = "ok" if i % 10 not in (3, 7) else ("fail" if i % 10 == 3 else "exit")
    player = [360, 720, 1080][i % 3]  # the player's height; some go full screen (1080) later
    events: list[dict[str, Any]] = [
        {
            "type": "view_start",
            "ts": start,
            "player_width": player * 16 // 9,
            "player_height": player,
        }
    ]
    exp: dict[str, Any] = {"kind": kind, "startup": None, "stalls": 0, "stalled": 0}
    t = start
    if kind == "exit":
        return exp | {"watched": 0, "bitrates": [], "held": []}, events
    if kind == "fail":
        events.append({"type": "error", "ts": t + 400, "code": "manifest_404", "fatal": True})
        return exp | {"watched": 0, "bitrates": [], "held": []}, events
    startup = rng.randint(300, 12_000)
    t += startup
    exp["startup"] = startup
    events.append({"type": "first_frame", "ts": t, "startup_ms": startup})
    rates = [800_000, 2_400_000, 5_000_000]
    rate = rng.choice(rates)
    samples: list[tuple[int, int]] = [(t, rate)]  # (ts, bitrate) of each event naming one
    events.append(
        {
            "type": "rendition_switch",
            "ts": t,
            "bitrate": rate,
            "height": 720,
            "player_height": player,
        }
    )
    watched = 0
    for beat in range(rng.randint(2, 8)):
        t += 10_000
        watched += 10_000
        if beat == 1 and i % 4 == 0:  # a stall, then the player steps down
            stall = rng.randint(500, 4000)
            events.append({"type": "rebuffer_start", "ts": t})
            t += stall
            events.append({"type": "rebuffer_end", "ts": t, "duration_ms": stall})
            exp["stalls"] += 1
            exp["stalled"] += stall
            rate = rates[0]
            events.append({"type": "rendition_switch", "ts": t, "bitrate": rate, "height": 360})
            samples.append((t, rate))
        if beat == 3 and i % 4 == 1:
            player = 1080
        events.append(
            {"type": "heartbeat", "ts": t, "bitrate": rate, "watched_ms": watched,
             "player_height": player}
        )  # fmt: skip
        samples.append((t, rate))
    if i % 5 == 1:  # a non-fatal error on a view that plays on
        events.append({"type": "error", "ts": t + 1, "code": "segment_retry", "fatal": False})
        t += 1
    events.append({"type": "end", "ts": t + 5, "watched_ms": watched})
    t += 5
    ends = [s[0] for s in samples[1:]] + [t]
    exp |= {
        "watched": watched,
        "bitrates": [s[1] for s in samples],
        "held": [(b, e - s) for (s, b), e in zip(samples, ends, strict=True)],
    }
    return exp, events


def _scaling(events: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """Upscale and downscale percentage as fct_views defines them, from the view's events
    (ids e0, e1, … in the order sent): each event's heights as last reported hold until the
    next event; stretches from a pause, a stall or the end are no playback."""
    order = sorted(enumerate(events), key=lambda ne: (ne[1]["ts"], f"e{ne[0]}"))
    rendition = player = None
    up = down = total = 0
    for k, (_, e) in enumerate(order):
        rendition = e.get("height", rendition)
        player = e.get("player_height", player)
        if k + 1 == len(order) or e["type"] in ("pause", "rebuffer_start", "end"):
            continue
        if rendition is None or not player:
            continue
        held = order[k + 1][1]["ts"] - e["ts"]
        total += held
        up += held if rendition < player else 0
        down += held if rendition > player else 0
    return (up / total, down / total) if total else (None, None)


def _cmcd(lake: Lake, i: int, view_id: str, playback: str, now_ms: int) -> dict[str, Any]:
    """Every third view's player sends CMCD: three segment requests (800, 1600, 2400 kbps),
    the buffer starved before one of them on every sixth view; what fct_views should say."""
    if i % 3:
        return {"cmcd": (0, None, False)}
    for n, br in enumerate((800, 1600, 2400)):
        starved = ",bs" if i % 6 == 0 and n == 1 else ""
        query = b"CMCD=" + quote(f'br={br}{starved},ot=av,sid="{view_id}"', safe="").encode()
        lake.capture((now_ms, playback, "segment", "720p", f"{n}.m4s", 200, query, []))
    return {"cmcd": (3, 1600.0, i % 6 == 0)}


def _quantile(values: list[float], p: float) -> float:
    xs = sorted(values)
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _score(x: dict[str, Any]) -> float:
    if x["kind"] == "fail":
        return 0.0
    if x["kind"] == "exit":
        return 50.0
    startup = min(1.0, max(0.0, 1 - (x["startup"] - GOOD) / (BAD - GOOD)))
    ratio = x["stalled"] / (x["stalled"] + x["watched"])
    smooth = min(1.0, max(0.0, 1 - 10 * ratio))
    weighted = sum(b * h for b, h in x["held"]) / sum(h for _, h in x["held"])
    quality = weighted / max(x["bitrates"])
    return 100 * (0.4 * startup + 0.4 * smooth + 0.2 * quality)


@pytest.fixture(scope="module")
def lake_with_views(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    data = tmp_path_factory.mktemp("warehouse")
    store = open_store(str(data / "objects"))
    rng = random.Random(12)
    now_ms = int(time.time() * 1000)
    intake = Intake(skew_ms=3_600_000)
    views: list[dict[str, Any]] = []
    lake = Lake(store, data / "analytics")
    replay = Lake(store, data / "analytics")  # another process: its memory never saw them
    for i in range(40):
        exp, events = _view(rng, i, now_ms)
        exp["scaling"] = _scaling(events)
        view_id = f"view-{i:03d}"
        playback = PLAYBACKS[i % 2]
        viewer = f"viewer-{i % 13}"  # some viewers watch several times
        body = {
            "view_id": view_id,
            "playback_id": playback,
            "player": {"name": ["shaka", "hls.js", "dash.js"][i % 3]},
            "events": [{"id": f"e{n}"} | e for n, e in enumerate(events)],
        }
        batch, parsed, rejected = parse_batch(json.dumps(body).encode())
        assert not rejected
        assert all(isinstance(e, BeaconEvent) for e in parsed)
        rows = intake.rows(batch, parsed, now_ms, viewer=viewer, address=None, user_agent=None)
        lake.add_events(rows)
        if i % 6 == 0:
            replay.add_events(rows)  # the same batch landed twice: counts once
        cmcd = _cmcd(lake, i, view_id, playback, now_ms)
        views.append(exp | cmcd | {"view_id": view_id, "playback": playback, "viewer": viewer})
    # requests nobody's view claims: no session id, and CMCD that broke the grammar
    lake.capture((now_ms, PLAYBACKS[0], "segment", "720p", "x.m4s", 200, b"CMCD=br%3D99", []))
    broken = b"CMCD=" + quote('sid="view-000",br=', safe="").encode()
    lake.capture((now_ms, PLAYBACKS[0], "segment", "720p", "y.m4s", 200, broken, []))
    assert lake.flush() > 300
    replay.flush()
    return data, views


def test_marts_match_the_events_and_a_bad_row_fails_the_gate(
    lake_with_views: tuple[Path, list[dict]],
) -> None:
    data, views = lake_with_views
    lake = Lake(open_store(str(data / "objects")), data / "analytics")
    steps: list[str] = []
    result = build_warehouse(lake, data, on_step=lambda s: steps.append(s.status))
    assert result.ok, result.summary()
    assert {"pass", "success"} <= set(steps)  # the progress callback saw the nodes
    assert any(s.command == "freshness" and s.status == "pass" for s in result.steps)
    tests = [s for s in result.steps if s.node.startswith("test.")]
    assert len(tests) >= 15 and all(s.status == "pass" for s in tests)

    con = duckdb.connect(str(warehouse_path(data)), read_only=True)
    try:
        cur = con.execute("select * from main.fct_views order by view_id")
        names = [d[0] for d in cur.description]
        fct = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
        cur = con.execute("select * from main.qoe_daily")
        names = [d[0] for d in cur.description]
        daily = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()

    assert sorted(fct) == [v["view_id"] for v in views]
    ups = [v["scaling"][0] for v in views if v["scaling"][0] is not None]
    downs = [v["scaling"][1] for v in views if v["scaling"][1] is not None]
    assert max(ups) > 0 and max(downs) > 0 and 0 in ups  # stretched, shrunk, and neither
    for v in views:
        row = fct[v["view_id"]]
        assert row["startup_time_ms"] == v["startup"]
        assert row["rebuffer_count"] == v["stalls"]
        assert row["rebuffer_ms"] == v["stalled"]
        assert row["watch_time_s"] == v["watched"] / 1000
        assert row["playback_failed"] is (v["kind"] == "fail")
        assert row["exited_before_start"] is (v["kind"] == "exit")
        if v["bitrates"]:
            assert row["average_bitrate"] == pytest.approx(sum(v["bitrates"]) / len(v["bitrates"]))
            held = sum(h for _, h in v["held"])
            assert row["weighted_bitrate"] == pytest.approx(sum(b * h for b, h in v["held"]) / held)
        assert row["viewer_experience_score"] == pytest.approx(_score(v))
        got = (row["cmcd_requests"], row["cmcd_average_bitrate_kbps"], row["cmcd_buffer_starved"])
        assert got == v["cmcd"], v["view_id"]
        up, down = v["scaling"]
        assert row["upscale_percentage"] == (pytest.approx(up) if up is not None else None)
        assert row["downscale_percentage"] == (pytest.approx(down) if down is not None else None)

    by_day: dict[tuple[Any, str], list[dict]] = {}
    for v in views:
        day = fct[v["view_id"]]["view_date"]
        by_day.setdefault((day, v["playback"]), []).append(v)
    assert len(daily) == len(by_day)
    for d in daily:
        vs = by_day[(d["view_date"], d["playback_id"])]
        started = [v["startup"] for v in vs if v["startup"] is not None]
        watched = sum(v["watched"] for v in vs)
        stalled = sum(v["stalled"] for v in vs)
        assert d["views"] == len(vs)
        assert d["unique_viewers"] == len({v["viewer"] for v in vs})
        assert d["watch_time_s"] == pytest.approx(watched / 1000)
        assert d["startup_time_p50_ms"] == pytest.approx(_quantile(started, 0.5))
        assert d["startup_time_p95_ms"] == pytest.approx(_quantile(started, 0.95))
        assert d["rebuffer_percentage"] == pytest.approx(stalled / (stalled + watched))
        assert d["rebuffer_frequency_per_min"] == pytest.approx(
            sum(v["stalls"] for v in vs) / (watched / 60000)
        )
        assert d["exits_before_start_percentage"] == pytest.approx(
            sum(v["kind"] == "exit" for v in vs) / len(vs)
        )
        assert d["playback_failure_percentage"] == pytest.approx(
            sum(v["kind"] == "fail" for v in vs) / len(vs)
        )
        assert d["viewer_experience_score"] == pytest.approx(sum(_score(v) for v in vs) / len(vs))
        played = [v for v in vs if v["bitrates"]]
        assert d["average_bitrate"] == pytest.approx(
            sum(sum(v["bitrates"]) / len(v["bitrates"]) for v in played) / len(played)
        )
        weighted = [
            (sum(b * h for b, h in v["held"]) / sum(h for _, h in v["held"]), v["watched"])
            for v in played
        ]
        assert d["weighted_bitrate"] == pytest.approx(
            sum(w * t for w, t in weighted) / sum(t for _, t in weighted)
        )
        for n, name in enumerate(("upscale_percentage", "downscale_percentage")):
            known = [v["scaling"][n] for v in vs if v["scaling"][n] is not None]
            assert d[name] == pytest.approx(sum(known) / len(known))

    # The metrics API's numbers (its own SQL over the lake, with the marts' definitions)
    # are the marts': every metric of each day and playback id of qoe_daily.
    same = {
        "views": "views",
        "unique_viewers": "unique_viewers",
        "watch_time": "watch_time_s",
        "startup_time_p50": "startup_time_p50_ms",
        "startup_time_p95": "startup_time_p95_ms",
        "rebuffer_ratio": "rebuffer_percentage",
        "rebuffer_frequency": "rebuffer_frequency_per_min",
        "exits_before_video_start": "exits_before_start_percentage",
        "playback_failure_rate": "playback_failure_percentage",
        "average_bitrate": "average_bitrate",
        "weighted_bitrate": "weighted_bitrate",
        "viewer_experience_score": "viewer_experience_score",
    }
    assert set(same) == set(METRICS)
    for d in daily:
        day = datetime(*d["view_date"].timetuple()[:3], tzinfo=UTC).replace(tzinfo=None)
        scope = ViewScope([d["playback_id"]], ["asset"])
        [got] = breakdown(lake, scope, MetricsQuery(day, day + timedelta(days=1)))
        for ours, theirs in same.items():
            want = d[theirs]
            assert (got[ours] is None and want is None) or got[ours] == pytest.approx(
                want, rel=1e-6, abs=1e-6
            ), (ours, got[ours], want)

    # A broken row (a writer that skipped validation): an event type nobody knows.
    now_ms = int(time.time() * 1000)
    bad = dict.fromkeys(range(len(EVENT_COLUMNS)))
    bad |= {0: "x1", 1: "view-000", 2: "teleport", 3: now_ms, 4: now_ms, 5: PLAYBACKS[0]}
    lake.add_events([tuple(bad[k] for k in range(len(EVENT_COLUMNS)))])
    lake.flush()

    # The schedule (a watchdog pass) enqueues the job once per interval; a worker runs it.
    settings = Settings(
        data_dir=data, storage_url=str(data / "objects"), analytics_build_interval_seconds=3600
    )
    migrate(settings.effective_database_url)
    rt = Runtime(settings, job_table=job_table)
    assert schedule_build(rt) == 1
    assert schedule_build(rt) == 0  # one is waiting: not again
    with rt.db.session() as s:
        jobs = s.scalars(select(Job).where(Job.type == BuildAnalytics.job_type)).all()
        assert [j.state for j in jobs] == [JobState.PENDING]
        job_id = jobs[0].id
    assert run_job(rt, job_id, "test-worker") == JobState.SUCCEEDED
    assert schedule_build(rt) == 0  # the last one is younger than the interval
    with rt.db.session() as s:
        events = s.scalars(
            select(OutboxRow).where(OutboxRow.type == "analytics.quality_failed")
        ).all()
    assert len(events) == 1
    failed = events[0].data["failed"]
    assert [f["node"] for f in failed if "accepted_values" in f["node"]], failed
    assert all(f["status"] == "fail" for f in failed)

    # Built by hand, the same failure exits 1 and goes into the outbox too.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAPLANE_")}
    by_hand = subprocess.run(
        [sys.executable, "-m", "mediaplane", "analytics", "build"],
        env=env
        | {"MEDIAPLANE_DATA_DIR": str(data), "MEDIAPLANE_STORAGE_URL": str(data / "objects")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert by_hand.returncode == 1, by_hand.stdout[-3000:] + by_hand.stderr[-3000:]
    assert "accepted_values" in by_hand.stdout  # the failing check, named
    with rt.db.session() as s:
        rows = s.scalars(
            select(OutboxRow).where(OutboxRow.type == "analytics.quality_failed")
        ).all()
        assert [r.object_id for r in rows] == [job_id, "cli"]
    rt.db.dispose()


def test_a_lake_of_files_from_before_the_newer_columns_builds(tmp_path: Path) -> None:
    """An upgraded installation whose lake holds only files written before ``player_width``,
    ``player_height``, ``cdn`` and ``country`` existed (no file has them): the marts build,
    and those read as NULL."""
    lake = Lake(open_store(str(tmp_path / "objects")), tmp_path / "analytics")
    now_ms = int(time.time() * 1000)
    rng = random.Random(3)
    intake = Intake(skew_ms=3_600_000)
    for i in range(3):
        _, events = _view(rng, i, now_ms)
        body = {
            "view_id": f"old-{i}",
            "playback_id": PLAYBACKS[0],
            "player": {"name": "shaka"},
            "events": [{"id": f"e{n}"} | e for n, e in enumerate(events)],
        }
        batch, parsed, _ = parse_batch(json.dumps(body).encode())
        lake.add_events(
            intake.rows(batch, parsed, now_ms, viewer="v", address=None, user_agent=None)
        )
    lake.flush()
    # the old writer's files: today's, less the columns added since
    newer = "player_width, player_height, cdn, country"
    for path in lake.files("events"):
        duckdb.execute(
            f"COPY (SELECT * EXCLUDE ({newer}) FROM read_parquet('{path}')) "
            f"TO '{path}.old' (FORMAT parquet)"
        )
        Path(f"{path}.old").replace(path)

    result = build_warehouse(lake, tmp_path)
    assert result.ok, result.summary()
    con = duckdb.connect(str(warehouse_path(tmp_path)), read_only=True)
    try:
        got = con.execute(
            "select view_id, country, cdn, upscale_percentage from main.fct_views order by 1"
        ).fetchall()
    finally:
        con.close()
    assert got == [(f"old-{i}", None, None, None) for i in range(3)]
