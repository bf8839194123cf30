"""CPU cost of the live packager's transcode (input not H.264/AAC, or a GOP too long).

What it measures
    One :class:`mediaplane.live.LivePackager` (low latency, 2 s segments, 0.5 s parts) per
    case, fed a generated 1280x720 30 fps clip with picture noise (so the encoder has work)
    as fast as it takes it, in SRT-sized (1316-byte) writes. The CPU time of its ffmpeg
    (user + system, from ``getrusage(RUSAGE_CHILDREN)`` once it is reaped) is divided by
    the clip's media seconds: CPU seconds per second of 720p, i.e. cores one such stream
    keeps busy in real time. Cases:

    * ``passthrough`` (the baseline): H.264 (2 s GOP) + AAC in MPEG-TS, copied;
    * ``hevc+opus``: HEVC + Opus in MPEG-TS, both transcoded (H.264 + AAC);
    * ``h264-gop10``: H.264 with a 10 s GOP + AAC in FLV (RTMP), the video transcoded;
    * ``aac-only``: H.264 (2 s GOP) + MP2 in MPEG-TS, only the audio transcoded.

    Each transcode case runs at the server's default x264 preset (``veryfast``) and at
    ``ultrafast``. Printed: CPU s per media s, the ratio to passthrough, and the speed
    (media seconds per wall second, while it is fed as fast as it takes it: above 1 keeps
    up with a live publisher on this machine).

Usage::

    PYTHONPATH=src .venv/bin/python bench/live_transcode.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import tempfile
import time
from pathlib import Path

from mediaplane.clips import AAC, H264, Clip, picture, sine
from mediaplane.live import LivePackager

CACHE = Path(".cache/bench-media")
WRITE = 1316


def make(name: str, codecs: tuple[str, ...], container: str, seconds: int) -> Path:
    return Clip(
        seconds=seconds,
        video=picture("1280x720", 30) + ",noise=alls=12:allf=t",
        audio=(sine(440, 48000),),
        codecs=codecs,
        extra=("-f", container),
    ).make(CACHE / f"transcode-{name}-{seconds}s.{container}", timeout=1800)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


async def run(src: Path, container: str, preset: str) -> tuple[float, float, str]:
    """(CPU seconds of the packager's ffmpeg, wall seconds, mode) for one clip."""
    data = src.read_bytes()  # noqa: ASYNC240 - before the clock starts
    out = Path(tempfile.mkdtemp(prefix="live-transcode-"))
    packager = LivePackager(
        out,
        latency_mode="low",
        part_target=0.5,
        segment_target=2.0,
        dvr_window_seconds=60,
        input_format="mpegts" if container == "mpegts" else "flv",
        x264_preset=preset,
    )
    cpu0, t0 = _children_cpu(), time.monotonic()
    try:
        for i in range(0, len(data), WRITE):
            await packager.write(data[i : i + WRITE])
        await packager.close()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return _children_cpu() - cpu0, time.monotonic() - t0, packager.health()["mode"]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=20, help="media seconds per clip")
    args = ap.parse_args()
    s = args.seconds
    gop2 = (*H264, "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-b:v", "3M")
    gop10 = (*H264, "-g", "300", "-keyint_min", "300", "-sc_threshold", "0", "-b:v", "3M")
    hevc = ("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error")
    clips = {
        "passthrough": (make("h264-aac", (*gop2, *AAC), "mpegts", s), "mpegts"),
        "hevc+opus": (make("hevc-opus", (*hevc, "-c:a", "libopus"), "mpegts", s), "mpegts"),
        "h264-gop10": (make("h264-gop10", (*gop10, *AAC), "flv", s), "flv"),
        "aac-only": (make("h264-mp2", (*gop2, "-c:a", "mp2"), "mpegts", s), "mpegts"),
    }
    base_cpu, base_wall, mode = await run(*clips["passthrough"], "veryfast")
    assert mode == "passthrough", mode
    print(f"720p30, {s} s per clip; CPU seconds per media second (cores busy in real time)")
    print(
        f"{'passthrough':<12} {'-':<9} {base_cpu / s:6.3f} cpu-s/s   1.0x baseline"
        f"   speed {s / base_wall:5.1f}x"
    )
    for name in ("hevc+opus", "h264-gop10", "aac-only"):
        for preset in ("veryfast", "ultrafast"):
            if name == "aac-only" and preset == "ultrafast":
                continue  # no video encode
            cpu, wall, mode = await run(*clips[name], preset)
            assert mode == "transcode", (name, mode)
            print(
                f"{name:<12} {preset:<9} {cpu / s:6.3f} cpu-s/s "
                f"{cpu / max(base_cpu, 1e-3):6.1f}x baseline   speed {s / wall:5.1f}x"
            )


if __name__ == "__main__":
    asyncio.run(main())
