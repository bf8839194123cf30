"""Content-protection benchmark: what cbcs encryption costs in packaging and in upload→ready.

What it measures
    1. Upload→ready: bench/vod_ready.py's generated 1080p30 clip (``--seconds``, 60 by
       default) is uploaded to one real ``mediaplane up`` twice, clear and with
       ``protection=cbcs``, one after the other (each after the machine is quiet): seconds
       from upload complete to the whole ladder published (progress 100). The protected
       run packages through the same code path with raw keys from the key store, and
       publishes no clear preview, so this is what a creator waits longer.
    2. Packaging throughput, on what the pipeline packages: the clip's ladder encoded as the
       worker encodes it (``plan_ladder`` + ``encode_ladder_argv``, same preset: one
       progressive MP4 per rung and per audio stream), packaged by the pipeline's own step
       (:func:`mediaplane.pipeline._package.package`, the call ``mediaplane up`` makes, with
       per-track-type keys as ``encryption_for`` labels them), in MB/s of input: cbcs, and
       clear for reference. Also, for the before/after: the same cbcs packaging as one
       packager process for the whole ladder (how it ran before renditions were packaged
       side by side). Each side's CPU seconds are printed too: the packager's CPU per MB is
       what bounds it, whatever the cores; and the ceiling that side by side can reach with
       a free core for every rendition (the ladder's bytes over the time of its largest
       rendition packaged alone).

Baselines
    1. the same clip uploaded clear, same server, same run (target: protected ≤ +10 %);
    2. ``cp -r`` of the same input files, same run (target: cbcs packaging ≥ 0.3× cp's
       MB/s). Both read from the page cache (the inputs were just written), so cp is the
       cost of moving the bytes and nothing else.

Usage::

    .venv/bin/python bench/encrypt.py [--seconds 60] [--preset veryfast] [--repeat 3]
                                      [--skip-ready]   # packaging only
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vod_ready import CACHE, PRESET, Server, make_source, wait_quiet  # noqa: E402

from mediaplane.config import Settings  # noqa: E402
from mediaplane.media import (  # noqa: E402
    Encryption,
    MediaInfo,
    PackagerInput,
    Rung,
    Toolchain,
    TrackKey,
    plan_ladder,
    probe,
)
from mediaplane.media import ffmpeg as ff  # noqa: E402
from mediaplane.media._package import usable_cores  # noqa: E402
from mediaplane.pipeline._package import (  # noqa: E402
    audio_inputs,
    package,
    packaging_options,
    video_inputs,
)
from mediaplane.protect._keys import track_type_for  # noqa: E402

TARGET_MBPS_RATIO = 0.3
TARGET_READY_OVERHEAD = 0.10


def _ready_seconds(
    server: Server, source: Path, protection: str, timeout: float
) -> tuple[str, float]:
    """(asset id, seconds from upload complete to every rendition published)."""
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=600) as c:
        with source.open("rb") as f:
            r = c.post(
                "/api/v1/assets",
                files={"file": (source.name, f, "video/mp4")},
                data={"title": f"bench {protection}", "protection": protection},
            )
        t0 = time.monotonic()
        if r.status_code != 201:
            raise RuntimeError(f"upload failed: {r.status_code} {r.text}")
        asset_id: str = r.json()["data"]["id"]
        while True:
            data: dict[str, Any] = c.get(f"/api/v1/assets/{asset_id}").json()["data"]
            if data["status"] == "ready" and data["progress"] == 100:
                return asset_id, time.monotonic() - t0
            if data["status"] == "errored":
                raise RuntimeError(f"asset errored: {data['errors']}\n{server.log()}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"not ready after {timeout:.0f} s\n{server.log()}")
            time.sleep(0.1)


def _encoded_ladder(
    tools: Toolchain, source: Path, info: MediaInfo, rungs: list[Rung], preset: str, into: Path
) -> list[PackagerInput]:
    """The ladder as the worker encodes it (one pass), and the packager inputs the
    pipeline makes of it (every rung, then the audio streams)."""
    into.mkdir(parents=True)
    argv = ff.encode_ladder_argv(
        tools, ff.Source(source, "mov"), into, rungs, audio=info.audio, preset=preset,
        progress=False,
    )  # fmt: skip
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    outputs = {p.stem: p for p in into.glob("*.mp4")}
    return [*video_inputs(rungs, outputs), *audio_inputs(info, outputs)]


def _keys(settings: Settings, inputs: list[PackagerInput], rungs: list[Rung]) -> Encryption:
    """Fresh keys labelled as ``encryption_for`` labels them (per track type or one)."""
    heights = {r.name: r.height for r in rungs}
    per_track = settings.protection_keys == "track"
    made: dict[str, TrackKey] = {}
    keys = {}
    for i in inputs:
        t = track_type_for(i.kind, heights.get(i.rendition_id), per_track)
        keys[i.rendition_id] = made.setdefault(
            t, TrackKey(t.upper(), os.urandom(16), os.urandom(16))
        )
    return Encryption("cbcs", keys)


def _one_process(
    tools: Toolchain,
    settings: Settings,
    inputs: list[PackagerInput],
    out: Path,
    encryption: Encryption,
) -> None:
    """The whole ladder in one packager process (the path before renditions ran side by
    side): the same argv builder, keys in a flag file."""
    out.mkdir(parents=True)
    key_file = out.parent / f".{out.name}.keys"
    key_file.write_text(ff.packager_key_flags(encryption.labels.values()))
    argv = ff.packager_argv(
        tools.packager, inputs, out, segment_seconds=settings.segment_seconds,
        mpd_output=out / "packager.mpd", encryption=encryption, key_file=key_file,
    )  # fmt: skip
    try:
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    finally:
        key_file.unlink()


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--preset", default=PRESET)
    ap.add_argument("--repeat", type=int, default=3, help="packaging runs (best is kept)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--quiet-wait", type=float, default=60)
    ap.add_argument("--skip-ready", action="store_true", help="packaging throughput only")
    args = ap.parse_args()

    source = make_source(args.seconds)
    data_dir = Path(tempfile.mkdtemp(prefix="encrypt-", dir=CACHE))
    ready: dict[str, float] = {}
    if not args.skip_ready:
        server = Server.start(data_dir, args.preset)
        try:
            time.sleep(2.0)
            for protection in ("none", "cbcs"):
                wait_quiet(args.quiet_wait)
                _, seconds = _ready_seconds(server, source, protection, args.timeout)
                ready[protection] = seconds
                print(f"upload→ready {protection:>5}: {seconds:7.2f} s", flush=True)
        finally:
            server.stop()

    settings = Settings()
    tools = Toolchain.discover(settings)
    info = probe(tools, source, settings)
    rungs = plan_ladder(info.width, info.height, info.fps or Fraction(30), settings.segment_seconds)
    work = data_dir / "package"
    inputs = _encoded_ladder(tools, source, info, rungs, args.preset, work / "inputs")
    total = sum(i.path.stat().st_size for i in inputs)
    encryption = _keys(settings, inputs, rungs)
    largest = max(inputs, key=lambda i: i.path.stat().st_size)
    sides = {
        "cp": lambda out: subprocess.run(["cp", "-r", str(work / "inputs"), str(out)], check=True),
        "clear": lambda out: package(tools, settings, inputs, out, info.duration),
        "cbcs": lambda out: package(tools, settings, inputs, out, info.duration, encryption),
        "cbcs, one process": lambda out: _one_process(tools, settings, inputs, out, encryption),
        "cbcs, largest alone": lambda out: package(
            tools, settings, [largest], out, info.duration, encryption
        ),
    }
    runs: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    for k in range(args.repeat):
        for name, side in sides.items():
            wait_quiet(args.quiet_wait)
            out = work / f"{name.replace(' ', '').replace(',', '-')}-{k}"
            c, t = _children_cpu(), time.perf_counter()
            side(out)
            runs[name].append(time.perf_counter() - t)
            cpu[name].append(_children_cpu() - c)
            shutil.rmtree(out)
    mb = total / 1e6
    best = {name: min(range(args.repeat), key=lambda i, n=name: runs[n][i]) for name in sides}
    rate = {name: mb / runs[name][best[name]] for name in sides}
    ratio = rate["cbcs"] / rate["cp"]
    print(
        f"\nladder: {len(inputs)} renditions, {mb:.1f} MB ({args.seconds} s 1080p30, "
        f"{args.preset}); {usable_cores()} usable cores; packaging timeout "
        f"{packaging_options(settings, info.duration).timeout_seconds:.0f} s"
    )
    for name in sides:
        if name == "cbcs, largest alone":
            continue
        i = best[name]
        print(
            f"  {name:>17}: {rate[name]:8.1f} MB/s  (best of {args.repeat}: {runs[name][i]:.3f} s,"
            f" {cpu[name][i]:.2f} CPU s = {mb / max(cpu[name][i], 1e-9):.0f} MB per CPU s)"
        )
    alone = runs["cbcs, largest alone"][best["cbcs, largest alone"]]
    print(
        f"  ceiling with a free core per rendition: {mb / alone:8.1f} MB/s = "
        f"{mb / alone / rate['cp']:.3f}× cp (the largest rendition, "
        f"{largest.path.stat().st_size / 1e6:.1f} MB, packaged alone in {alone:.3f} s)"
    )
    before = rate["cbcs, one process"] / rate["cp"]
    print(f"cbcs packaging / cp, one packager process (before): {before:.3f}×")
    print(
        f"cbcs packaging / cp (the pipeline's path): {ratio:.3f}× (target ≥ {TARGET_MBPS_RATIO}×:"
        f" {ratio / TARGET_MBPS_RATIO:.0%} of it) {'PASS' if ratio >= TARGET_MBPS_RATIO else 'MISS'}"
    )
    if ready:
        overhead = ready["cbcs"] / ready["none"] - 1
        print(
            f"upload→ready, cbcs vs clear: {overhead * 100:+.1f} % (target ≤ "
            f"+{TARGET_READY_OVERHEAD * 100:.0f} %) "
            f"{'PASS' if overhead <= TARGET_READY_OVERHEAD else 'MISS'}"
        )
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
