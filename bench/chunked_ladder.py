"""Chunked-ladder benchmark: the upper rungs as chunk jobs across workers, against the
one-pass ladder and raw ffmpeg.

What it measures
    bench/vod_ready.py's generated 1080p30 clip (``--seconds``, 60 by default) goes through a
    real ``mediaplane up`` twice: once with the ladder in one pass (``chunked_encoding=off``,
    the embedded default) and once chunked (``on``: the lowest rung and audio on the
    processing job, every upper rung as chunk jobs of ``--chunk-seconds``, run by a worker
    pool of ``--workers`` processes). For each: seconds from upload complete to the whole
    ladder published, and the CPU seconds the server tree used meanwhile. For the chunked run
    also: when each rung joined the master playlist, every job's run time (from the jobs
    table), and the fleet estimate.

Baseline
    Raw ffmpeg producing the same ladder in one command (vod_ready's baseline), same run.

Fleet estimate
    On a fleet with a free worker for every chunk, the ladder is done when the slowest of
    (the processing job) and (each rung's slowest chunk + its stitch) is: that critical path,
    from the measured job run times, is printed as the fleet time. The run times are measured
    here, on a machine the concurrent jobs share, so they overstate what one job takes on a
    machine of its own: the estimate is pessimistic.

Usage::

    .venv/bin/python bench/chunked_ladder.py [--seconds 60] [--chunk-seconds 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vod_ready import (  # noqa: E402
    CACHE,
    PRESET,
    Server,
    _ladder_published,
    _tree_cpu,
    _tree_delta,
    make_source,
    run_baseline,
    wait_quiet,
)

from mediaplane.config import Settings  # noqa: E402
from mediaplane.media import Rung, Toolchain, plan_ladder, probe  # noqa: E402


@dataclass
class Run:
    seconds: float  # upload complete -> whole ladder published (seen by a poll)
    playable: float  # upload complete -> first "ready"
    cpu: float  # CPU seconds of the server tree meanwhile
    joined: list[tuple[float, list[str]]] = field(default_factory=list)  # (s, master variants)
    jobs: list[tuple[str, str, float]] = field(default_factory=list)  # (type, rung, run s)


def _variants(c: httpx.Client, playback_id: str) -> list[str]:
    r = c.get(f"/play/{playback_id}/master.m3u8")
    if r.status_code != 200:
        return []
    return [ln.split("/")[0] for ln in r.text.splitlines() if ln.endswith("/media.m3u8")]


def run_server(source: Path, rungs: list[Rung], settings: dict[str, str], preset: str) -> Run:
    data_dir = Path(tempfile.mkdtemp(prefix="chunked-", dir=CACHE))
    server = Server.start(data_dir, preset, settings)
    try:
        time.sleep(2.0)
        wait_quiet(30)
        headers = {"Authorization": f"Bearer {server.token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=600) as c:
            with source.open("rb") as f:
                r = c.post("/api/v1/assets", files={"file": (source.name, f)}, data={"title": "b"})
            t0 = time.monotonic()
            tree0 = _tree_cpu(server.proc.pid)
            r.raise_for_status()
            asset = r.json()["data"]
            pid = asset["playback_ids"][0]["id"]
            playable: float | None = None
            joined: list[tuple[float, list[str]]] = []
            while True:
                time.sleep(0.1)
                data = c.get(f"/api/v1/assets/{asset['id']}").json()["data"]
                now = time.monotonic() - t0
                if data["status"] == "errored":
                    raise RuntimeError(f"errored: {data['errors']}\n{server.log()}")
                if data["status"] == "ready":
                    playable = now if playable is None else playable
                    variants = _variants(c, pid)
                    if not joined or joined[-1][1] != variants:
                        joined.append((now, variants))
                if _ladder_published(data, rungs):
                    cpu = sum(_tree_delta(tree0, _tree_cpu(server.proc.pid)).values())
                    break
                if now > 1800:
                    raise RuntimeError(f"not done after 1800 s\n{server.log()}")
        assert playable is not None
        jobs = []
        with sqlite3.connect(data_dir / "mediaplane.sqlite") as db:
            for jtype, payload, run_s in db.execute(
                "SELECT type, payload, run_seconds FROM jobs WHERE state = 'succeeded'"
            ):
                rung = json.loads(payload).get("rung", {}).get("name", "")
                jobs.append((jtype, rung, float(run_s or 0.0)))
        return Run(now, playable, cpu, joined, jobs)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def fleet_estimate(jobs: list[tuple[str, str, float]]) -> float:
    """The critical path with one worker per job: see the module docstring."""
    process = max((s for t, _, s in jobs if t == "asset.process"), default=0.0)
    chunk: dict[str, float] = defaultdict(float)
    stitch: dict[str, float] = defaultdict(float)
    for t, rung, s in jobs:
        if t == "asset.encode_chunk":
            chunk[rung] = max(chunk[rung], s)
        elif t == "asset.stitch_rung":
            stitch[rung] = s
    return max([process, *(chunk[r] + stitch[r] for r in chunk)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--chunk-seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2, help="worker pool size (chunked run)")
    ap.add_argument("--preset", default=PRESET)
    args = ap.parse_args(argv)

    source = make_source(args.seconds)
    settings = Settings(x264_preset=args.preset)
    tools = Toolchain.discover(settings)
    info = probe(tools, source, settings)
    rungs = plan_ladder(info.width, info.height, info.fps, settings.segment_seconds)

    print(f"source {source.name}: {info.duration:.1f} s, ladder {[r.name for r in rungs]}")
    base = run_baseline(tools, source, rungs, info.audio, args.preset, False, 30)
    print(f"raw ffmpeg one-command ladder   {base.seconds:7.2f} s")
    one = run_server(source, rungs, {"chunked_encoding": "off"}, args.preset)
    print(
        f"Mediaplane one pass             {one.seconds:7.2f} s  CPU {one.cpu:7.1f} s  "
        f"(playable after {one.playable:.2f} s)"
    )
    chunked = run_server(
        source,
        rungs,
        {
            "chunked_encoding": "on",
            "encode_chunk_seconds": str(args.chunk_seconds),
            "worker_concurrency": str(args.workers),
        },
        args.preset,
    )
    print(
        f"Mediaplane chunked, {args.workers} workers  {chunked.seconds:7.2f} s  "
        f"CPU {chunked.cpu:7.1f} s  (playable after {chunked.playable:.2f} s)"
    )
    for at, variants in chunked.joined:
        print(f"    {at:7.2f} s  master lists {', '.join(variants)}")
    counts: dict[str, int] = defaultdict(int)
    for t, _, _ in chunked.jobs:
        counts[t] += 1
    print(f"    jobs: {dict(counts)}")
    fleet = fleet_estimate(chunked.jobs)
    print(f"fleet estimate (a worker per chunk job)  {fleet:7.2f} s")
    print()
    print(f"ratio one pass / raw ffmpeg          {one.seconds / base.seconds:6.3f}")
    print(f"ratio chunked / raw ffmpeg           {chunked.seconds / base.seconds:6.3f}")
    print(f"CPU ratio chunked / one pass         {chunked.cpu / one.cpu:6.3f}")
    print(f"ratio fleet estimate / raw ffmpeg    {fleet / base.seconds:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
