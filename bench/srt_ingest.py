"""SRT ingest benchmark: the CPU our libsrt-based server spends on one 720p30 ~3 Mbit/s
publisher, against ffmpeg's own SRT listener on the same stream.

What it measures
    The generated 1280x720 30 fps H.264 (3 Mbit/s, 2 s GOP) + AAC clip of
    ``bench/rtmp_ingest.py`` (same cache file) is pushed in real time
    (``ffmpeg -re -c copy -f mpegts srt://…?streamid=k``) to
    1. ``mediaplane.live.SrtServer`` in this process, with a sink that only counts bytes:
       the CPU seconds this process used during the push (getrusage: libsrt's threads, the
       reader thread and the event loop), over the wall time;
    2. the baseline, ``ffmpeg -i srt://…?mode=listener -c copy -f mpegts /dev/null``: its CPU
       seconds (wait4), over the same wall time.
    Both print the MPEG-TS bytes they received.

Usage::

    .venv/bin/python bench/srt_ingest.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from mediaplane.clips import Clip, picture, sine
from mediaplane.live import SrtServer

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"
CODECS = (
    "-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M", "-maxrate", "3M", "-bufsize", "6M",
    "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
)  # fmt: skip


def make_clip(seconds: int) -> Path:
    clip = Clip(
        seconds=seconds,
        video=picture("1280x720", 30, "testsrc2") + ",noise=alls=12:allf=t",
        audio=(sine(440, 48000),),
        codecs=CODECS,
    )
    return clip.make(CACHE / f"rtmp-720p30-3M-{seconds}s.flv", timeout=1800)


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def push_argv(src: Path, url: str) -> list[str]:
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i", str(src)] + [
        "-c", "copy", "-f", "mpegts", url,
    ]  # fmt: skip


class CountingSink:
    def __init__(self) -> None:
        self.bytes = 0
        self.closed = asyncio.Event()

    async def write(self, data: bytes) -> None:
        self.bytes += len(data)

    async def close(self) -> None:
        self.closed.set()


async def ours(src: Path) -> tuple[float, float, int]:
    """(CPU seconds of this process, wall seconds, TS bytes out) for one real-time push."""
    sink = CountingSink()

    async def authorize(app: str, key: str) -> object | None:
        return key

    async def open_sink(ticket: object) -> CountingSink:
        return sink

    server = SrtServer(authorize, open_sink)
    await server.start("127.0.0.1", 0)
    cpu0, t0 = _cpu_self(), time.monotonic()
    p = await asyncio.create_subprocess_exec(
        *push_argv(src, f"srt://127.0.0.1:{server.port}?streamid=k")
    )
    rc = await asyncio.wait_for(p.wait(), timeout=600)
    await asyncio.wait_for(sink.closed.wait(), timeout=30)
    cpu, wall = _cpu_self() - cpu0, time.monotonic() - t0
    await server.close()
    if rc != 0:
        sys.exit(f"publisher failed: {rc}")
    return cpu, wall, sink.bytes


def ffmpeg_listener(src: Path, out: Path) -> tuple[float, float, int]:
    """(CPU seconds of ffmpeg's SRT listener, wall seconds, TS bytes) for the same push."""
    port = 19000 + os.getpid() % 1000
    listen = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
        + ["-i", f"srt://127.0.0.1:{port}?mode=listener", "-c", "copy", "-f", "mpegts", "-y"]
        + [str(out)]
    )
    time.sleep(1.0)  # let it bind
    t0 = time.monotonic()
    subprocess.run(push_argv(src, f"srt://127.0.0.1:{port}?streamid=k"), check=True, timeout=600)
    _, status, usage = os.wait4(listen.pid, 0)
    wall = time.monotonic() - t0
    listen.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, wall, out.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    src = make_clip(args.seconds)
    mbit = src.stat().st_size * 8 / args.seconds / 1e6
    print(f"clip: 1280x720 30 fps, {args.seconds} s, {mbit:.2f} Mbit/s ({src})")
    cpu, wall, out = asyncio.run(ours(src))
    print(
        f"ours:   {cpu:.2f} CPU s over {wall:.1f} s = {100 * cpu / wall:.1f}% of a core ({out} B)"
    )
    base_cpu, base_wall, base_out = ffmpeg_listener(src, CACHE / "srt-listener.ts")
    print(
        f"ffmpeg listener: {base_cpu:.2f} CPU s over {base_wall:.1f} s = "
        f"{100 * base_cpu / base_wall:.1f}% of a core ({base_out} B of TS it remuxed)"
    )
    print(f"ratio ours / ffmpeg listener: {cpu / base_cpu:.2f}x")


if __name__ == "__main__":
    main()
