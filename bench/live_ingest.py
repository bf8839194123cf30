"""Live ingest benchmark: the CPU our ingest servers spend on one 720p30 ~3 Mbit/s publisher,
against ffmpeg's own listener for the same protocol on the same stream.

What it measures
    A generated 1280x720 30 fps H.264 (3 Mbit/s, 2 s GOP) + AAC clip of ``--seconds`` is
    pushed in real time (``ffmpeg -re -c copy``) for each ``--protocol``:

    * ``rtmp``: as FLV to ``rtmp://…/live/k``, received by ``mediaplane.live.RtmpServer``;
      baseline ``ffmpeg -listen 1 -i rtmp://… -c copy -f flv /dev/null``;
    * ``srt``: as MPEG-TS to ``srt://…?streamid=k``, received by ``mediaplane.live.SrtServer``
      (libsrt's threads, the reader thread and the event loop all count); baseline
      ``ffmpeg -i srt://…?mode=listener -c copy -f mpegts``.

    Ours runs in this process with a sink that only counts bytes: the CPU seconds this
    process used during the push (getrusage), over the wall time. The baseline's CPU
    seconds come from wait4, over the same wall time. The ratio is ours / ffmpeg's.
    For RTMP also the chunk parser alone, fed the same stream from memory (chunk sizes 4096
    and 128): megabytes per second of one core, i.e. how many such streams one core parses.

Usage::

    .venv/bin/python bench/live_ingest.py [--seconds 20] [--protocol rtmp --protocol srt]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mediaplane.clips import Clip, picture, sine
from mediaplane.live import RtmpServer, SrtServer
from mediaplane.live._chunks import ChunkParser, encode_message
from mediaplane.live._flv import tag

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"
CODECS = (
    "-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M", "-maxrate", "3M", "-bufsize", "6M",
    "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
)  # fmt: skip
FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]


@dataclass(frozen=True)
class Protocol:
    """How one protocol is published, received by us, and received by ffmpeg."""

    server: type[RtmpServer] | type[SrtServer]
    container: str  # what the publisher sends: flv or mpegts
    url: str  # the publish URL, ``{port}`` filled in
    listener: list[str]  # ffmpeg's own receiver, ``{port}`` filled in, without the output


PROTOCOLS = {
    "rtmp": Protocol(
        RtmpServer,
        "flv",
        "rtmp://127.0.0.1:{port}/live/k",
        ["-listen", "1", "-timeout", "20", "-i", "rtmp://127.0.0.1:{port}/live/k"],
    ),
    "srt": Protocol(
        SrtServer,
        "mpegts",
        "srt://127.0.0.1:{port}?streamid=k",
        ["-i", "srt://127.0.0.1:{port}?mode=listener"],
    ),
}


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


def push_argv(src: Path, proto: Protocol, port: int) -> list[str]:
    return [*FFMPEG, "-re", "-i", str(src), "-c", "copy", "-f", proto.container] + [
        proto.url.format(port=port)
    ]


class CountingSink:
    def __init__(self) -> None:
        self.bytes = 0
        self.closed = asyncio.Event()

    async def write(self, data: bytes) -> None:
        self.bytes += len(data)

    async def close(self) -> None:
        self.closed.set()


async def ours(src: Path, proto: Protocol) -> tuple[float, float, int]:
    """(CPU seconds of this process, wall seconds, bytes out) for one real-time push."""
    sink = CountingSink()

    async def authorize(app: str, key: str) -> object | None:
        return key

    async def open_sink(ticket: object) -> CountingSink:
        return sink

    server = proto.server(authorize, open_sink)
    await server.start("127.0.0.1", 0)
    cpu0, t0 = _cpu_self(), time.monotonic()
    p = await asyncio.create_subprocess_exec(*push_argv(src, proto, server.port))
    rc = await asyncio.wait_for(p.wait(), timeout=600)
    await asyncio.wait_for(sink.closed.wait(), timeout=30)
    cpu, wall = _cpu_self() - cpu0, time.monotonic() - t0
    await server.close()
    if rc != 0:
        sys.exit(f"publisher failed: {rc}")
    return cpu, wall, sink.bytes


def ffmpeg_listener(src: Path, proto: Protocol) -> tuple[float, float]:
    """(CPU seconds of ffmpeg's own listener, wall seconds) for the same push."""
    port = 19000 + os.getpid() % 1000
    listen = subprocess.Popen(
        [*FFMPEG, *(a.format(port=port) for a in proto.listener)]
        + ["-c", "copy", "-f", proto.container, "-y", "/dev/null"]
    )
    time.sleep(1.0)  # let it bind
    t0 = time.monotonic()
    subprocess.run(push_argv(src, proto, port), check=True, timeout=600)
    _, status, usage = os.wait4(listen.pid, 0)
    wall = time.monotonic() - t0
    listen.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, wall


def flv_tags(path: Path) -> list[tuple[int, int, bytes]]:
    data = path.read_bytes()
    pos = 13
    out = []
    while pos + 11 <= len(data):
        kind = data[pos]
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
        out.append((kind, ts, data[pos + 11 : pos + 11 + size]))
        pos += 15 + size
    return out


def parser_rate(tags: list[tuple[int, int, bytes]], chunk_size: int) -> float:
    """MB/s of RTMP bytes through ChunkParser plus the FLV tag each message becomes."""
    wire = bytearray(encode_message(2, 1, 0, chunk_size.to_bytes(4, "big"), chunk_size=128))
    for kind, ts, body in tags:
        wire += encode_message(
            4 if kind == 8 else 6, kind, 1, body, chunk_size=chunk_size, timestamp=ts
        )
    wire_b = bytes(wire)
    parser = ChunkParser()
    t0 = time.process_time()
    out = 0
    for i in range(0, len(wire_b), 65536):
        for m in parser.feed(wire_b[i : i + 65536]):
            out += len(tag(m.type_id, m.timestamp, m.body))
    seconds = time.process_time() - t0
    assert out > 0
    return len(wire_b) / seconds / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--protocol", action="append", choices=sorted(PROTOCOLS))
    args = ap.parse_args()
    src = make_clip(args.seconds)
    mbit = src.stat().st_size * 8 / args.seconds / 1e6
    print(f"clip: 1280x720 30 fps, {args.seconds} s, {mbit:.2f} Mbit/s ({src})")
    for name in args.protocol or ["rtmp", "srt"]:
        proto = PROTOCOLS[name]
        cpu, wall, out = asyncio.run(ours(src, proto))
        print(
            f"{name} ours: {cpu:.2f} CPU s over {wall:.1f} s = "
            f"{100 * cpu / wall:.1f}% of a core ({out} B)"
        )
        base_cpu, base_wall = ffmpeg_listener(src, proto)
        print(
            f"{name} ffmpeg listener: {base_cpu:.2f} CPU s over {base_wall:.1f} s = "
            f"{100 * base_cpu / base_wall:.1f}% of a core"
        )
        print(f"{name} ratio ours / ffmpeg listener: {cpu / base_cpu:.2f}x")
        if name == "rtmp":
            tags = flv_tags(src)
            for cs in (4096, 128):
                rate = parser_rate(tags, cs)
                print(
                    f"rtmp parser from memory, chunk size {cs}: {rate:.0f} MB/s = "
                    f"{rate * 8 / mbit:.0f} such streams per core"
                )


if __name__ == "__main__":
    main()
