"""LL-HLS part duration: hls.js latency and stalls on LivePackager output, per part target.

What it measures
    ffmpeg publishes a live lavfi clock (640x360 at 30 fps, x264 ultrafast zerolatency, a
    keyframe every ``--gop`` frames, AAC) as FLV; :class:`mediaplane.live.LivePackager`
    packages it (segments of 2 s, parts of each ``--parts`` target) as the RTMP server would
    feed it (4 KiB writes); a small loopback origin in this process serves the files with
    blocking playlist reload read from ``state.json`` (as the real origin is to); the system
    Chromium plays ``master.m3u8`` with hls.js (node_modules, ``lowLatencyMode``,
    ``maxLiveSyncPlaybackRate`` from ``--catch-up``) for ``--seconds``. Reported per part
    target: latency = wall clock minus the EXT-X-PROGRAM-DATE-TIME of the frame shown (PDT
    is when the FLV bytes came in, so the encoder is not counted), sampled every 0.5 s after
    the first 2 s (median, max); hls.js's own ``latency`` and ``targetLatency``; ``waiting``
    events after playback began and hls.js buffer-stall errors.

Baseline
    1.0 s parts, measured in the same run: ratio = latency / latency with 1.0 s parts.

Target
    None enforced: the issue asks to choose the part target by measurement (LL-HLS glass
    to glass <= 2.0 s). Exit status 1 when a run never started playing.

Usage::

    PYTHONPATH=src .venv/bin/python bench/live_parts.py [--seconds 60] [--parts 0.2 0.333 0.5 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mediaplane.live import LivePackager  # noqa: E402

HLSJS = ROOT / "node_modules" / "hls.js" / "dist" / "hls.min.js"
BASELINE_PART = 1.0
SEGMENT = 2.0
PAGE = """<!doctype html><video id=v muted autoplay playsinline></video>
<script src="/hls.js"></script><script>
const v = document.getElementById('v');
window.stats = {waiting: 0, stalled: 0, playing: false, lat: [], hls: null, errors: []};
const hls = new Hls({lowLatencyMode: true, backBufferLength: 10, maxLiveSyncPlaybackRate: RATE});
hls.on(Hls.Events.ERROR, (e, d) => d.details === 'bufferStalledError'
  ? stats.stalled++ : stats.errors.push(d.details));
v.addEventListener('playing', () => { stats.playing = true; });
v.addEventListener('waiting', () => { if (stats.playing) stats.waiting++; });
hls.loadSource('/master.m3u8'); hls.attachMedia(v); v.play().catch(() => {});
setInterval(() => { if (stats.playing && hls.playingDate) {
  stats.lat.push((Date.now() - hls.playingDate.getTime()) / 1000);
  stats.hls = [hls.latency, hls.targetLatency]; } }, 500);
</script>"""


class Origin:
    """GET only, keep-alive; ``_HLS_msn``/``_HLS_part`` held until state.json reaches them."""

    def __init__(self, root: Path, page: bytes, hlsjs: Path) -> None:
        self.root = root
        self.page = page
        self.hlsjs = hlsjs

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                while await reader.readline() not in (b"\r\n", b"\n", b""):
                    pass
                status, body, ctype = await self.get(line.split()[1].decode())
                head = (
                    f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
                    f"Content-Type: {ctype}\r\nCache-Control: no-cache\r\n\r\n"
                )
                writer.write(head.encode() + body)
                await writer.drain()
        except (ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    async def get(self, target: str) -> tuple[str, bytes, str]:
        url = urlsplit(target)
        if url.path == "/":
            return "200 OK", self.page, "text/html"
        if url.path == "/hls.js":
            return "200 OK", self.hlsjs.read_bytes(), "application/javascript"
        file = self.root / url.path.lstrip("/")
        if not file.resolve().is_relative_to(self.root.resolve()):
            return "404 Not Found", b"", "text/plain"
        query = parse_qs(url.query)
        if url.path.endswith("index.m3u8") and "_HLS_msn" in query:
            want = (int(query["_HLS_msn"][0]), int(query.get("_HLS_part", ["-1"])[0]))
            state = file.with_name("state.json")
            deadline = time.monotonic() + 6.0
            while time.monotonic() < deadline:
                s = json.loads(state.read_text()) if state.exists() else None
                if s and (s["ended"] or (s["msn"], s["part"]) >= want):
                    break
                await asyncio.sleep(0.01)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            return "404 Not Found", b"", "text/plain"
        kind = "application/vnd.apple.mpegurl" if url.path.endswith(".m3u8") else "video/mp4"
        return "200 OK", data, kind


async def run(part: float, args: argparse.Namespace, work: Path) -> dict[str, object]:
    from playwright.async_api import async_playwright

    out = work / f"part-{part}"
    packager = LivePackager(
        out, latency_mode="low", part_target=part, segment_target=SEGMENT, dvr_window_seconds=30
    )
    page = PAGE.replace("RATE", str(args.catch_up)).encode()
    server = await asyncio.start_server(Origin(out, page, args.hlsjs).handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    publisher = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-g", str(args.gop), "-keyint_min", str(args.gop), "-sc_threshold", "0",
        "-pix_fmt", "yuv420p", "-b:v", "800k", "-c:a", "aac", "-b:a", "96k",
        "-t", str(args.seconds + 15), "-f", "flv", "pipe:1",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip

    async def publish() -> None:
        assert publisher.stdout is not None
        while data := await publisher.stdout.read(4096):
            await packager.write(data)

    async with asyncio.TaskGroup() as tg:
        feeding = tg.create_task(publish())
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=shutil.which("chromium"),
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--autoplay-policy=no-user-gesture-required",
                ],
            )
            while not (out / "master.m3u8").exists():  # noqa: ASYNC110 - another writer
                await asyncio.sleep(0.1)
            tab = await browser.new_page()
            await tab.goto(f"http://127.0.0.1:{port}/")
            await asyncio.sleep(args.seconds)
            stats = await tab.evaluate("window.stats")
            await browser.close()
        publisher.kill()
        await publisher.wait()
        await feeding
    await packager.close()
    server.close()
    lat = stats["lat"][4:]
    return {
        "part": part,
        "playing": stats["playing"],
        "latency_median": round(statistics.median(lat), 3) if lat else None,
        "latency_max": round(max(lat), 3) if lat else None,
        "hls_latency_target": [round(x, 3) for x in stats["hls"]] if stats["hls"] else None,
        "waiting": stats["waiting"],
        "stalls": stats["stalled"],
        "errors": stats["errors"][:5],
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--gop", type=int, default=30, help="frames between keyframes")
    parser.add_argument("--catch-up", type=float, default=1.5, help="maxLiveSyncPlaybackRate")
    parser.add_argument("--parts", type=float, nargs="+", default=[0.2, 0.333, 0.5])
    parser.add_argument("--hlsjs", type=Path, default=HLSJS, help="hls.min.js to serve")
    args = parser.parse_args()
    if not args.hlsjs.is_file() or shutil.which("chromium") is None:
        print(f"needs {args.hlsjs} (npm ci) and chromium on PATH")
        return 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for part in [BASELINE_PART, *(p for p in args.parts if p != BASELINE_PART)]:
            result = await run(part, args, Path(tmp))
            results.append(result)
            print(json.dumps(result), flush=True)
    base = results[0]["latency_median"]
    for r in results:
        lat = r["latency_median"]
        ratio = f"{lat / base:.2f}" if isinstance(lat, float) and isinstance(base, float) else "-"
        print(
            f"part {r['part']:>5} s: latency {lat} s (ratio to {BASELINE_PART} s parts {ratio}),"
            f" waiting {r['waiting']}, stalls {r['stalls']}"
        )
    return 0 if all(r["playing"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
