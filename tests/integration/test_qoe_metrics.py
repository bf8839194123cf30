"""The metrics API over beacons posted to the shared server of each backend (real intake,
real lake in its object store, real DuckDB): every metric, overall and broken down by
player, browser, OS, rendition and time (through the API, and every metric × dimension
through the same code over the server's lake), matches what this test computes itself
from the views it generated; ranges read only their partitions (an older partition, landed through
a Lake of its own, counts only when asked for); bad requests are 400s."""

from __future__ import annotations

import csv
import io
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.analytics import (
    METRICS,
    Intake,
    Lake,
    MetricsQuery,
    ViewScope,
    breakdown,
    parse_batch,
)
from tests.support import Server, make_clip, until

GOOD, BAD = 1000, 10000  # the dbt project's startup_good_ms / startup_bad_ms vars
#: (User-Agent, browser, OS): what the dashboard's small parser must make of them.
AGENTS = [
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Chrome",
        "Linux",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Firefox",
        "Windows",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/18.1 Safari/605.1.15",
        "Safari",
        "macOS",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "Edge",
        "Windows",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Safari",
        "iOS",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        "Chrome",
        "Android",
    ),
]
PLAYERS = ["hls.js", "shaka-player", "dash.js"]
RATES = {"240p": 400_000, "480p": 1_200_000, "720p": 2_800_000}
VIEWS = 18
#: The hosts the views' media came from (a multi-CDN setup).
CDNS = ("cdn-a.example.net", "cdn-b.example.org:8443")


def _view(rng: random.Random, i: int, now_ms: int) -> tuple[dict[str, Any], list[dict]]:
    """One view's events and what this test expects of it."""
    start = now_ms - rng.randint(20_000, 200_000)
    kind = {4: "exit", 9: "fail"}.get(i % 10, "ok")
    agent, browser, os_name = AGENTS[i % len(AGENTS)]
    exp: dict[str, Any] = {
        "kind": kind,
        "start": start,
        "player": PLAYERS[i % 3],
        "agent": agent,
        "browser": browser,
        "os": os_name,
        "viewer": f"viewer-{i % 7}",
        "cdn": None,  # the host of its media, once a heartbeat said it
        "startup": None,
        "stalls": 0,
        "stalled": 0,
        "watched": 0,
        "samples": [],  # (ts, bitrate, rendition)
    }
    events: list[dict[str, Any]] = [{"type": "view_start", "ts": start}]
    if kind == "fail":
        events.append(
            {"type": "error", "ts": start + 300, "code": "manifestLoadError", "fatal": True}
        )
        return exp | {"last": start + 300}, events
    if kind == "exit":
        events.append({"type": "pause", "ts": start + 700})
        return exp | {"last": start + 700}, events
    startup = rng.randint(400, 11_000)
    t = start + startup
    exp["startup"] = startup
    events.append({"type": "first_frame", "ts": t, "startup_ms": startup})
    rendition = rng.choice(list(RATES))
    events.append(
        {"type": "rendition_switch", "ts": t, "rendition": rendition, "bitrate": RATES[rendition]}
    )
    exp["samples"].append((t, RATES[rendition], rendition))
    for beat in range(rng.randint(1, 4)):
        if beat == 1 and i % 3 == 0:  # a stall, then the player steps down
            stall = rng.randint(300, 3000)
            events.append({"type": "rebuffer_start", "ts": t + 100})
            events.append({"type": "rebuffer_end", "ts": t + 100 + stall, "duration_ms": stall})
            exp["stalls"] += 1
            exp["stalled"] += stall
            t += 100 + stall
            rendition = "240p"
            events.append(
                {
                    "type": "rendition_switch",
                    "ts": t,
                    "rendition": rendition,
                    "bitrate": RATES[rendition],
                }
            )
            exp["samples"].append((t, RATES[rendition], rendition))
        t += rng.randint(3_000, 9_000)
        exp["watched"] += 4_000 + beat
        exp["cdn"] = CDNS[i % len(CDNS)]
        events.append(
            {
                "type": "heartbeat",
                "ts": t,
                "rendition": rendition,
                "bitrate": RATES[rendition],
                "watched_ms": exp["watched"],
                "cdn": exp["cdn"],
            }
        )
        exp["samples"].append((t, RATES[rendition], rendition))
    t += 50
    events.append({"type": "end", "ts": t, "watched_ms": exp["watched"]})
    return exp | {"last": t}, events


def _held(v: dict[str, Any]) -> list[tuple[int, str, int]]:
    """(bitrate, rendition, ms it played) of each sample: until the next, the last until the
    view's last event."""
    s = v["samples"]
    if not s:
        return []
    ends = [x[0] for x in s[1:]] + [v["last"]]
    return [(b, r, e - t) for (t, b, r), e in zip(s, ends, strict=True)]


def _rendition(v: dict[str, Any]) -> str | None:
    by: dict[str, int] = {}
    for _, r, ms in _held(v):
        by[r] = by.get(r, 0) + ms
    return max(by, key=lambda r: by[r]) if by else None


def _weighted(v: dict[str, Any]) -> float | None:
    held = _held(v)
    total = sum(ms for _, _, ms in held)
    return sum(b * ms for b, _, ms in held) / total if total else None


def _score(v: dict[str, Any]) -> float:
    if v["kind"] == "fail":
        return 0.0
    if v["kind"] == "exit":
        return 50.0
    startup = min(1.0, max(0.0, 1 - (v["startup"] - GOOD) / (BAD - GOOD)))
    smooth = min(1.0, max(0.0, 1 - 10 * v["stalled"] / (v["stalled"] + v["watched"])))
    quality = (_weighted(v) or 0) / max(b for _, b, _ in v["samples"])
    return 100 * (0.4 * startup + 0.4 * smooth + 0.2 * quality)


def _quantile(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def expected(vs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every metric of a group of views, computed here."""
    watched = sum(v["watched"] for v in vs)
    stalled = sum(v["stalled"] for v in vs)
    rated = [v for v in vs if v["samples"]]
    weighted = [(w, v["watched"]) for v in vs if (w := _weighted(v)) is not None]
    started = [v["startup"] for v in vs if v["startup"] is not None]
    return {
        "views": len(vs),
        "unique_viewers": len({v["viewer"] for v in vs}),
        "watch_time": watched / 1000,
        "startup_time_p50": _quantile(started, 0.5),
        "startup_time_p95": _quantile(started, 0.95),
        "rebuffer_ratio": _ratio(stalled, stalled + watched),
        "rebuffer_frequency": _ratio(sum(v["stalls"] for v in vs), watched / 60000),
        "exits_before_video_start": sum(v["kind"] == "exit" for v in vs) / len(vs),
        "playback_failure_rate": sum(v["kind"] == "fail" for v in vs) / len(vs),
        "average_bitrate": (
            sum(sum(b for _, b, _ in v["samples"]) / len(v["samples"]) for v in rated) / len(rated)
            if rated
            else None
        ),
        "weighted_bitrate": _ratio(
            sum(w * ms for w, ms in weighted), sum(ms for _, ms in weighted)
        ),
        "viewer_experience_score": sum(_score(v) for v in vs) / len(vs),
    }


def _close(got: Any, want: Any) -> bool:
    if want is None or got is None:
        return got is want
    return bool(got == pytest.approx(want, rel=1e-5, abs=1e-5))


def _batch(view_id: str, playback_id: str, v: dict[str, Any], events: list[dict]) -> dict:
    return {
        "view_id": view_id,
        "playback_id": playback_id,
        "player": {"name": v["player"], "version": "1.0.0"},
        "viewer_id": v["viewer"],
        "sent_at": int(time.time() * 1000),
        "events": [{"id": f"e{n}"} | e for n, e in enumerate(events)],
    }


@pytest.fixture(scope="module")
def posted(server: Server) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An asset and the views posted for it (landed: the API counts every one)."""
    asset = server.upload(make_clip("metrics-1s.mp4", seconds=1, size="320x180"), title="metrics")
    pid = asset["playback_ids"][0]["id"]
    rng = random.Random(20261202)
    now = int(time.time() * 1000)
    views = []
    for i in range(VIEWS):
        v, events = _view(rng, i, now)
        body = _batch(f"m-{uuid.uuid4().hex[:12]}-{i}", pid, v, events)
        r = httpx.post(
            server.url + "/api/v1/beacons",
            content=json.dumps(body).encode(),
            headers={"Content-Type": "text/plain", "User-Agent": v["agent"]},
        )
        assert r.status_code == 202 and r.json()["data"]["accepted"] == len(events), r.text
        views.append(v)
    with server.client() as c:

        def landed() -> bool | None:
            r = c.get("/api/v1/data/metrics/views", params={"asset_id": asset["id"]})
            assert r.status_code == 200, r.text
            return True if r.json()["data"]["rows"][0]["value"] == VIEWS else None

        until("the views in the metrics API", landed, timeout=30)
    return asset, views


def _metric(c: httpx.Client, metric: str, **params: Any) -> dict[str, Any]:
    r = c.get(f"/api/v1/data/metrics/{metric}", params=params)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


DIMS: dict[str, Any] = {
    "player": lambda v: v["player"],
    "browser": lambda v: v["browser"],
    "os": lambda v: v["os"],
    "rendition": _rendition,
    "cdn": lambda v: v["cdn"],
    # no trusted country header on the shared server: every view's country is unknown
    "country": lambda v: None,
}


def _groups(views: list[dict[str, Any]], dim: str) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict]] = {}
    for v in views:
        groups.setdefault(DIMS[dim](v), []).append(v)
    return groups


def test_every_metric_overall_and_by_each_dimension_matches_the_views_posted(
    server: Server, posted: tuple[dict[str, Any], list[dict[str, Any]]], tmp_path: Path
) -> None:
    asset, views = posted
    with server.client() as c:
        for metric in METRICS:  # the API: every metric overall
            got = _metric(c, metric, asset_id=asset["id"])
            assert got["metric"] == metric and got["unit"] and got["definition"]
            [row] = got["rows"]
            assert row["views"] == VIEWS, got
            assert _close(row["value"], expected(views)[metric]), (metric, row, expected(views))
        for metric in ("startup_time_p95", "viewer_experience_score"):  # and by each dimension
            for dim in DIMS:
                groups = _groups(views, dim)
                rows = _metric(c, metric, asset_id=asset["id"], group_by=dim)["rows"]
                assert {r["group"] for r in rows} == set(groups), (dim, rows)
                for r in rows:
                    want = expected(groups[r["group"]])
                    assert r["views"] == want["views"], (dim, r)
                    assert _close(r["value"], want[metric]), (metric, dim, r, want[metric])
    # every metric by every dimension, as the API computes them, over the server's lake
    # (its object store, read by a Lake of this process)
    lake = Lake(server.store(), tmp_path / "reader")
    scope = ViewScope([asset["playback_ids"][0]["id"]], [asset["id"]])
    for dim in DIMS:
        groups = _groups(views, dim)
        rows = breakdown(lake, scope, MetricsQuery.parse(None, None, dim, None))
        assert {r["group"] for r in rows} == set(groups), (dim, rows)
        for r in rows:
            want = expected(groups[r["group"]])
            for metric in METRICS:
                assert _close(r[metric], want[metric]), (metric, dim, r, want[metric])


def test_time_series_and_ranges(
    server: Server, posted: tuple[dict[str, Any], list[dict[str, Any]]], tmp_path: Path
) -> None:
    asset, views = posted
    now = datetime.now(UTC).replace(tzinfo=None)
    frm = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    to = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    with server.client() as c:
        got = _metric(
            c, "views", asset_id=asset["id"], group_by="time", interval="hour",
            **{"from": frm.isoformat() + "Z", "to": to.isoformat() + "Z"},
        )  # fmt: skip
        want: dict[str, int] = {}
        for v in views:
            hour = datetime.fromtimestamp(v["start"] / 1000, UTC).strftime("%Y-%m-%dT%H:00:00Z")
            want[hour] = want.get(hour, 0) + 1
        buckets = [(frm + timedelta(hours=h)).strftime("%Y-%m-%dT%H:00:00Z") for h in range(4)]
        assert [r["group"] for r in got["rows"]] == buckets  # every bucket, the empty ones too
        assert {r["group"]: r["value"] for r in got["rows"]} == {b: want.get(b, 0) for b in buckets}

        # a range that starts in the middle: only the views that started in it
        starts = sorted(v["start"] for v in views)
        cut = datetime.fromtimestamp(starts[VIEWS // 2] / 1000, UTC).isoformat()
        later = [v for v in views if v["start"] >= starts[VIEWS // 2]]
        got = _metric(c, "watch_time", asset_id=asset["id"], **{"from": cut})
        assert got["rows"][0]["views"] == len(later)
        assert _close(got["rows"][0]["value"], expected(later)["watch_time"])

        # a view a month ago lands in its own date partition (through a Lake of this
        # process, as another web process would): the default range (7 days) leaves it out,
        # its day counts it
        old = now - timedelta(days=30)
        old_ms = int(old.replace(tzinfo=UTC).timestamp() * 1000)
        v, events = _view(random.Random(5), 0, old_ms)
        body = _batch("m-old-" + uuid.uuid4().hex[:8], asset["playback_ids"][0]["id"], v, events)
        batch, parsed, _ = parse_batch(json.dumps(body | {"sent_at": old_ms}).encode())
        lake = Lake(server.store(), tmp_path / "lake")
        lake.add_events(
            Intake(skew_ms=3_600_000).rows(
                batch, parsed, old_ms, viewer="old", address=None, user_agent=AGENTS[0][0]
            )
        )
        assert lake.flush() == len(events)
        assert _metric(c, "views", asset_id=asset["id"])["rows"][0]["value"] == VIEWS
        day = datetime.fromtimestamp(v["start"] / 1000, UTC).strftime("%Y-%m-%d")
        got = _metric(c, "views", asset_id=asset["id"], group_by="date", **{"from": day, "to": day})
        assert got["rows"] == [{"group": day, "value": 1, "views": 1}]
        got = _metric(c, "startup_time_p50", asset_id=asset["id"], **{"from": day, "to": day})
        assert _close(got["rows"][0]["value"], v["startup"])


def test_csv_bad_requests_and_access(
    server: Server, posted: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    asset, views = posted
    with server.client() as c:
        r = c.get(
            "/api/v1/data/metrics/startup_time_p50",
            params={"asset_id": asset["id"], "group_by": "player", "format": "csv"},
        )
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        table = list(csv.reader(io.StringIO(r.text)))
        assert table[0] == ["player", "startup_time_p50", "views"]
        by_player = {row[0]: row for row in table[1:]}
        for player in PLAYERS:
            vs = [v for v in views if v["player"] == player]
            assert int(by_player[player][2]) == len(vs)
            assert _close(float(by_player[player][1]), expected(vs)["startup_time_p50"])

        # the overview (every asset the caller may read) has this asset as a group
        rows = _metric(c, "views", group_by="asset")["rows"]
        assert {"group": asset["id"], "value": VIEWS, "views": VIEWS} in rows

        for path, params, code in [
            ("nope", {}, "unknown_metric"),
            ("views", {"group_by": "planet"}, "invalid_query"),
            ("views", {"group_by": "player", "interval": "hour"}, "invalid_query"),
            ("views", {"from": "2026-02-30"}, "invalid_query"),
            ("views", {"from": "2026-03-02", "to": "2026-03-01"}, "invalid_query"),
        ]:
            r = c.get(f"/api/v1/data/metrics/{path}", params={"asset_id": asset["id"], **params})
            assert r.status_code == 400 and r.json()["error"]["code"] == code, (path, r.text)
        assert c.get("/api/v1/data/metrics/views?asset_id=nope").status_code == 404
    assert httpx.get(server.url + "/api/v1/data/metrics/views").status_code == 401
