"""Live glass-to-glass latency per playback mode, and LL-HLS viewers one origin holds.

What it measures
    ``latency`` (default): a real ``mediaplane up`` (embedded, on loopback) with two live
    streams, one ``low`` and one ``standard`` latency, each published over RTMP by ffmpeg
    in real time (``-re``): a lavfi test picture 640x360 at 30 fps (x264 ultrafast
    zerolatency, a keyframe every 0.5 s, AAC) whose top 24 rows carry a machine-readable
    strip: a white marker block, then 24 black/white blocks, the bits of the publisher's
    wall clock in milliseconds (mod 2^24) when the frame was made (``setpts=RTCTIME``, then
    one ``drawbox`` per bit, enabled by its bit of the time). The page (on another loopback
    origin, as a site embedding the player would be) plays the stream with the pinned
    player from node_modules and, on every ``requestVideoFrameCallback``, draws the strip
    onto a canvas, reads the blocks back and records ``display time - stamp``: encoding,
    RTMP, packaging, the origin, the player's buffer and decoding all count. Modes:

    * ``ll-hls``: hls.js (``lowLatencyMode``) on the low stream's ``master.m3u8``;
    * ``ll-dash``: dash.js on the low stream's ``manifest.mpd`` (low-latency DASH:
      chunked CMAF of the segment being written);
    * ``hls``: hls.js (defaults) on the standard stream's ``master.m3u8``;
    * ``whep``: a browser RTCPeerConnection against ``POST /whep/{playback id}``, only
      when the server has that route (otherwise "WHEP: not available", no number).

    Each mode runs ``--runs`` times (a fresh page each): ``--warmup`` seconds after the
    first frame for the player to settle on its live edge, then ``--seconds`` of samples;
    a run's value is the median of its samples, the mode's the median of its runs.

    Assumption: the stamp is the wall clock when ffmpeg's filter graph made the frame;
    with ``-re`` the graph is pulled at the frame rate, so a frame is stamped at most one
    frame (33 ms) before its real-time due time (the latency reads that much high).

    ``viewers`` (``--viewers N``): the same server and a low stream; N simulated LL-HLS
    viewers (a plain asyncio HTTP/1.1 client, one keep-alive connection each) loop on a
    blocking reload (``_HLS_msn``/``_HLS_part`` of the next part) and then fetch the newest
    part. Part delivery = when the viewer has the part's last byte minus the part file's
    mtime (the packager's write; same host, same clock): the origin's wake-up of held
    reloads, the playlist and the part transfer. Reported: p50/p99/max over all parts,
    and parts fetched per viewer (a viewer that falls behind fetches fewer).

    ``publishers`` (``--publishers MAX``): 1, 2, 4, … up to MAX low-latency streams at once,
    each published over RTMP with passthrough (``ffmpeg -re -stream_loop -1 -c copy`` of a
    generated 1280x720 30 fps 3 Mbit/s H.264 + AAC clip, 2 s GOP: the server copies, never
    encodes). A count keeps up when, once every stream has a playlist (reported: after how
    long; at least ``--warmup`` seconds after the publishers started), every stream
    completes segments at real time over ``--seconds`` (at least the window's worth less
    one segment). Each count starts once the previous count's deleted streams' sessions
    have ended (``live.idle`` in the server log). Reported: the largest count that kept up.

Baseline and targets
    The issue's targets on this machine: LL-HLS <= 2.0 s median, WHEP <= 0.5 s, standard
    HLS <= 6 s (low-latency DASH has none; LL-HLS's is shown for it); p99 part delivery
    < 100 ms for the viewers. The ratio printed is median / target. Measured on a shared
    2-core machine (publishers, server, Chromium and the client share it).

Usage::

    PYTHONPATH=src .venv/bin/python bench/live_latency.py [--runs 3] [--seconds 10]
        [--warmup 6] [--modes ll-hls ll-dash hls whep]
    PYTHONPATH=src .venv/bin/python bench/live_latency.py --viewers 50 --seconds 20
    PYTHONPATH=src .venv/bin/python bench/live_latency.py --publishers 8 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from mediaplane.clips import Clip, sine

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _server  # noqa: E402
from _server import Mediaplane  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
PLAYER_JS = {
    "/hls.min.js": NODE_MODULES / "hls.js" / "dist" / "hls.min.js",
    "/dash.all.min.js": NODE_MODULES / "dashjs" / "dist" / "modern" / "umd" / "dash.all.min.js",
}
TARGETS = {"ll-hls": 2.0, "ll-dash": 2.0, "hls": 6.0, "whep": 0.5}
PART_DELIVERY_P99 = 0.100
BITS, BLOCK = 24, 24  # the strip: a marker block, then BITS blocks of BLOCK x BLOCK pixels
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",  # WHEP: a 127.0.0.1 candidate (see LOOPBACK_ONLY)
]


# --- the publisher ---------------------------------------------------------------------------


def stamp_filter(size: str = "640x360", rate: int = 30) -> str:
    """A lavfi graph: a test picture with the wall clock (ms mod 2^BITS) as a strip of
    blocks in its top rows; timestamps from 0 again for the encoder."""
    f = [
        f"testsrc2=s={size}:r={rate}",
        "settb=1/1000",
        "setpts=RTCTIME/1000",  # pts = the wall clock in ms now: what the strip encodes
        f"drawbox=x=0:y=0:w={(BITS + 1) * BLOCK}:h={BLOCK}:color=black:t=fill",
        f"drawbox=x=0:y=0:w={BLOCK}:h={BLOCK}:color=white:t=fill",  # the marker
    ]
    f += [
        f"drawbox=x={(k + 1) * BLOCK}:y=0:w={BLOCK}:h={BLOCK}:color=white:t=fill"
        f":enable='mod(floor(t*1000/{2**k}),2)'"
        for k in range(BITS)
    ]
    f.append(f"setpts=N*1000/{rate}")
    return ",".join(f)


def publisher(url: str, seconds: float) -> subprocess.Popen[bytes]:
    clip = Clip(
        seconds=seconds,
        video=stamp_filter(),
        audio=(sine(440, 48000),),
        codecs=(
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "15",
            "-keyint_min",
            "15",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            "1M",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
        ),  # fmt: skip
        extra=("-f", "flv"),
    )
    argv = clip.argv(url, realtime=True)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)


# --- the server ------------------------------------------------------------------------------


def start_mediaplane(data: Path) -> Mediaplane:
    # WebRTC on loopback only: the host offers 127.0.0.1, the page offers only its own
    return _server.start_mediaplane(data, "bench-latency-token", webrtc_ice_addresses="127.0.0.1")


@dataclass
class Stream:
    id: str
    key: str
    playback_id: str
    base: str  # …/play/{playback id}


def create_stream(mp: Mediaplane, latency_mode: str) -> Stream:
    with mp.api() as c:
        r = c.post("/api/v1/live-streams", json={"latency_mode": latency_mode})
        r.raise_for_status()
        d = r.json()["data"]
    pid = d["playback_ids"][0]["id"]
    return Stream(d["id"], d["stream_key"], pid, f"{mp.url}/play/{pid}")


def wait_playable(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"{url} never became playable")


def whep_available(mp: Mediaplane, stream: Stream) -> bool:
    """Whether the server has ``POST /whep/{playback id}`` (any answer but 404/405)."""
    with contextlib.suppress(httpx.HTTPError):
        r = httpx.post(
            f"{mp.url}/whep/{stream.playback_id}",
            content=b"",
            headers={"Content-Type": "application/sdp"},
            timeout=5,
        )
        return r.status_code not in (404, 405)
    return False


# --- the page --------------------------------------------------------------------------------

PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<video id="v" muted playsinline width="640" height="360"></video>
<script src="/hls.min.js"></script><script src="/dash.all.min.js"></script>
<script>
const MODE = %(mode)s, SRC = %(src)s, BITS = %(bits)d, BLOCK = %(block)d;
const video = document.getElementById("v");
window.stats = { lat: [], bad: 0, errors: [], player: null };
const canvas = document.createElement("canvas");
canvas.width = (BITS + 1) * BLOCK; canvas.height = BLOCK;
const ctx = canvas.getContext("2d", { willReadFrequently: true });
const WRAP = 2 ** BITS;
function onFrame(now, meta) {
  const sx = video.videoWidth / 640, sy = video.videoHeight / 360;
  if (sx > 0) {
    ctx.drawImage(video, 0, 0, canvas.width * sx, BLOCK * sy, 0, 0, canvas.width, BLOCK);
    const px = ctx.getImageData(0, 0, canvas.width, BLOCK).data;
    const at = (x) => px[((BLOCK >> 1) * canvas.width + x) * 4];
    if (at(BLOCK >> 1) > 128) {
      let stamp = 0;
      for (let k = 0; k < BITS; k++) if (at((k + 1) * BLOCK + (BLOCK >> 1)) > 128) stamp += 2 ** k;
      const shown = Math.round(performance.timeOrigin + meta.expectedDisplayTime) %% WRAP;
      let d = shown - stamp;
      if (d < -WRAP / 2) d += WRAP;
      if (d > WRAP / 2) d -= WRAP;
      stats.lat.push(d / 1000);
    } else stats.bad++;
  }
  video.requestVideoFrameCallback(onFrame);
}
video.requestVideoFrameCallback(onFrame);
if (MODE === "ll-hls" || MODE === "hls") {
  // as the studio page: catch up (up to 1.5x) when behind the target latency
  const hls = new Hls({ lowLatencyMode: MODE === "ll-hls", maxLiveSyncPlaybackRate: 1.5 });
  hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) stats.errors.push(d.details); });
  hls.loadSource(SRC); hls.attachMedia(video); video.play().catch(() => {});
  window.playerLatency = () => hls.latency;
} else if (MODE === "ll-dash") {
  const player = dashjs.MediaPlayer().create();
  player.on(dashjs.MediaPlayer.events.ERROR, (e) => stats.errors.push(String(e.error && e.error.message)));
  player.initialize(video, SRC, true);  // dash.js starts it: it must see the "play" event
  window.playerLatency = () => player.getCurrentLiveLatency();
  window.lowLatency = () => player.getLowLatencyModeEnabled();
} else if (MODE === "whep") {
  (async () => {
    // only the 127.0.0.1 candidates: no check goes anywhere but loopback
    const loopbackOnly = (sdp) => sdp.split("\\r\\n").filter(
      (l) => !l.startsWith("a=candidate:") || l.split(" ")[4] === "127.0.0.1").join("\\r\\n");
    const pc = new RTCPeerConnection();
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (e) => { video.srcObject = e.streams[0] || new MediaStream([e.track]);
                          video.play().catch(() => {}); };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((ok) => { if (pc.iceGatheringState === "complete") ok();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok();
      setTimeout(ok, 2000); });
    const r = await fetch(SRC, { method: "POST", body: loopbackOnly(pc.localDescription.sdp),
                                 headers: { "Content-Type": "application/sdp" } });
    if (r.status !== 201) { stats.errors.push("WHEP answered " + r.status); return; }
    await pc.setRemoteDescription({ type: "answer", sdp: await r.text() });
  })().catch((e) => stats.errors.push(String(e)));
  window.playerLatency = () => null;
}
</script></body></html>
"""


class Site:
    """The page and the player JS on their own loopback port (another origin)."""

    def __init__(self) -> None:
        self.files = {p: (f.read_bytes(), "text/javascript") for p, f in PLAYER_JS.items()}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, ctype = files.get(self.path.split("?", 1)[0], (b"", "text/plain"))
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def page(self, mode: str, src: str) -> str:
        html = PAGE % {
            "mode": json.dumps(mode),
            "src": json.dumps(src),
            "bits": BITS,
            "block": BLOCK,
        }
        self.files[f"/{mode}.html"] = (html.encode(), "text/html; charset=utf-8")
        return f"{self.url}/{mode}.html"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def measure(browser: Any, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run: a fresh page; samples after the warm-up; the median of them."""
    tab = await browser.new_page()
    try:
        await tab.goto(url)
        deadline = time.monotonic() + 40
        while not await tab.evaluate("window.stats.lat.length > 0"):
            errors = await tab.evaluate("window.stats.errors")
            if errors or time.monotonic() > deadline:
                return {"median": None, "errors": errors or ["no stamped frame in 40 s"]}
            await asyncio.sleep(0.2)
        await asyncio.sleep(args.warmup)
        await tab.evaluate("window.stats.lat = []")
        await asyncio.sleep(args.seconds)
        stats = await tab.evaluate("window.stats")
        own = await tab.evaluate("window.playerLatency ? window.playerLatency() : null")
        low = await tab.evaluate("window.lowLatency ? window.lowLatency() : null")
    finally:
        await tab.close()
    lat = stats["lat"]
    return {
        "median": round(statistics.median(lat), 3) if lat else None,
        "min": round(min(lat), 3) if lat else None,
        "max": round(max(lat), 3) if lat else None,
        "frames": len(lat),
        "unreadable": stats["bad"],
        "player_latency": None if own is None else round(own, 3),
        "low_latency_mode": low,
        "errors": stats["errors"][:3],
    }


async def latency(args: argparse.Namespace, mp: Mediaplane) -> int:
    from playwright.async_api import async_playwright

    low, std = create_stream(mp, "low"), create_stream(mp, "standard")
    modes = {
        "ll-hls": (low, f"{low.base}/master.m3u8"),
        "ll-dash": (low, f"{low.base}/manifest.mpd"),
        "hls": (std, f"{std.base}/master.m3u8"),
        "whep": (low, f"{mp.url}/whep/{low.playback_id}"),
    }
    wanted = [m for m in modes if m in args.modes]
    budget = 60 + len(wanted) * args.runs * (args.warmup + args.seconds + 15)
    pubs = {
        s.id: publisher(f"{mp.rtmp}/{s.key}", budget) for s in {low.id: low, std.id: std}.values()
    }
    site = Site()
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        wait_playable(f"{low.base}/master.m3u8")
        wait_playable(f"{std.base}/master.m3u8")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
            )
            for mode in wanted:
                stream, src = modes[mode]
                if mode == "whep" and not whep_available(mp, stream):
                    print("WHEP: not available (the server has no POST /whep/{playback id})")
                    continue
                results[mode] = []
                for run in range(args.runs):
                    r = await measure(browser, site.page(mode, src), args)
                    results[mode].append(r)
                    print(json.dumps({"mode": mode, "run": run + 1, **r}), flush=True)
            await browser.close()
    finally:
        site.close()
        for p in pubs.values():
            p.kill()
            p.wait(timeout=10)
    ok = True
    print(f"\nglass-to-glass latency, median of {args.runs} runs ({args.seconds:g} s each):")
    for mode, runs in results.items():
        medians = [r["median"] for r in runs if r["median"] is not None]
        if not medians:
            ok = False
            print(f"  {mode:8} no playback: {runs[0]['errors']}")
            continue
        m = statistics.median(medians)
        target = TARGETS[mode]
        note = " (no target in the issue; LL-HLS's)" if mode == "ll-dash" else ""
        print(
            f"  {mode:8} {m:6.3f} s  runs {medians}  target {target} s{note}"
            f"  ratio {m / target:.2f}  {'ok' if m <= target else 'OVER'}"
        )
    return 0 if ok else 1


# --- LL-HLS viewers --------------------------------------------------------------------------


class Conn:
    """A minimal HTTP/1.1 keep-alive client (Content-Length answers only): cheap enough
    that hundreds of viewers fit next to the server on a small machine."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(v)
            for k, _, v in (ln.partition(":") for ln in lines[1:])
            if k.lower() == "content-length"
        )
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def viewer(
    url: httpx.URL, folder: Path, until: float, delays: list[float], counts: list[int]
) -> None:
    conn = Conn(url.host, url.port or 80)
    base = url.path.rsplit("/", 1)[0]
    got = 0
    try:
        status, body = await conn.get(url.path)
        msn, part = _last_part(body)
        while time.monotonic() < until:
            status, body = await conn.get(f"{url.path}?_HLS_msn={msn}&_HLS_part={part + 1}")
            if status != 200:
                await asyncio.sleep(0.1)
                continue
            msn, part = _last_part(body)
            name = f"{msn}.{part}.m4s"
            status, _ = await conn.get(f"{base}/{name}")
            done = time.time_ns()
            with contextlib.suppress(OSError):
                delays.append((done - (folder / name).stat().st_mtime_ns) / 1e9)
                got += 1
    finally:
        counts.append(got)
        conn.close()


def _last_part(playlist: bytes) -> tuple[int, int]:
    uri = [ln for ln in playlist.decode().splitlines() if ln.startswith("#EXT-X-PART:")][-1]
    name = uri.split('URI="', 1)[1].split('"', 1)[0]
    msn, part, _ = name.split(".")
    return int(msn), int(part)


async def viewers(args: argparse.Namespace, mp: Mediaplane) -> int:
    low = create_stream(mp, "low")
    pub = publisher(f"{mp.rtmp}/{low.key}", args.seconds + 60)
    try:
        wait_playable(f"{low.base}/master.m3u8")
        master = (await asyncio.to_thread(httpx.get, f"{low.base}/master.m3u8")).text
        video = next(ln for ln in master.splitlines() if ln and not ln.startswith("#"))
        session, rung = video.split("/")[:2]
        folder = mp.data / "live" / low.id / session / rung
        url = httpx.URL(f"{low.base}/{video}")
        delays: list[float] = []
        counts: list[int] = []
        until = time.monotonic() + args.seconds
        await asyncio.gather(
            *(viewer(url, folder, until, delays, counts) for _ in range(args.viewers))
        )
    finally:
        pub.kill()
        pub.wait(timeout=10)
    if not delays:
        print("no part was delivered")
        return 1
    delays.sort()
    p = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]  # noqa: E731
    print(
        f"{args.viewers} LL-HLS viewers, {args.seconds:g} s: {len(delays)} parts;"
        f" delivery after the packager's write p50 {p(0.5) * 1000:.1f} ms,"
        f" p99 {p(0.99) * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms"
        f" (target p99 < {PART_DELIVERY_P99 * 1000:.0f} ms, ratio {p(0.99) / PART_DELIVERY_P99:.2f});"
        f" parts per viewer min {min(counts)} max {max(counts)}"
    )
    return 0 if p(0.99) < PART_DELIVERY_P99 else 1


# --- passthrough publishers ------------------------------------------------------------------


def clip_720p() -> Path:
    from mediaplane.clips import AAC, Clip, picture, sine

    codecs = (
        "-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M", "-maxrate", "3M",
        "-bufsize", "6M", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
        "-pix_fmt", "yuv420p", *AAC,
    )  # fmt: skip
    clip = Clip(seconds=20, video=picture("1280x720", 30), audio=(sine(),), codecs=codecs)
    return clip.make(ROOT / ".cache" / "bench" / "live-720p-20s.mp4", timeout=600)


def _segments(mp: Mediaplane, stream: Stream) -> int | None:
    """The newest complete video segment number of ``stream`` (from the packager's state)."""
    try:
        master = httpx.get(f"{stream.base}/master.m3u8", timeout=5)
    except httpx.HTTPError:
        return None
    if master.status_code != 200:
        return None
    video = next(ln for ln in master.text.splitlines() if ln and not ln.startswith("#"))
    session, rung = video.split("/")[:2]
    state = mp.data / "live" / stream.id / session / rung / "state.json"
    try:
        return int(json.loads(state.read_bytes())["msn"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _all_live(mp: Mediaplane, streams: list[Stream], deadline: float) -> float | None:
    """When every stream has a playlist (its packager's state), or None by ``deadline``: a
    slow start is reported apart from keeping up (the window starts after it)."""
    waiting = list(streams)
    while waiting and time.monotonic() < deadline:
        waiting = [s for s in waiting if _segments(mp, s) is None]
        if waiting:
            time.sleep(0.2)
    return None if waiting else time.monotonic()


def _until_idle(mp: Mediaplane, ids: set[str], deadline: float) -> None:
    """Wait until the server logged ``live.idle`` for every stream of ``ids``."""
    while time.monotonic() < deadline:
        done = set()
        for line in (mp.data / "server.log").read_text(errors="replace").splitlines():
            if '"live.idle"' in line:
                with contextlib.suppress(ValueError):
                    done.add(json.loads(line).get("live_stream_id"))
        if ids <= done:
            return
        time.sleep(0.3)
    print(f"(sessions of deleted streams still on after 60 s: {sorted(ids)})", flush=True)


def publishers(args: argparse.Namespace, mp: Mediaplane) -> int:
    clip = clip_720p()
    best = 0
    count = 1
    while count <= args.publishers:
        streams = [create_stream(mp, "low") for _ in range(count)]
        argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
        argv += ["-stream_loop", "-1", "-i", str(clip), "-c", "copy", "-f", "flv"]
        pubs = [
            subprocess.Popen([*argv, f"{mp.rtmp}/{s.key}"], stdin=subprocess.DEVNULL)
            for s in streams
        ]
        spawned = time.monotonic()
        try:
            live = _all_live(mp, streams, spawned + 60)
            time.sleep(max(0.0, spawned + args.warmup - time.monotonic()))
            first = [_segments(mp, s) for s in streams]
            time.sleep(args.seconds)
            last = [_segments(mp, s) for s in streams]
        finally:
            for p in pubs:
                p.kill()
                p.wait(timeout=10)
            with mp.api() as c:
                for s in streams:
                    c.delete(f"/api/v1/live-streams/{s.id}")
        # The next count starts on a host these sessions have left (their packagers gone).
        _until_idle(mp, {s.id for s in streams}, time.monotonic() + 60)
        need = args.seconds / 2.0 - 1  # 2 s segments
        made = [
            (b - a) if a is not None and b is not None else -1
            for a, b in zip(first, last, strict=True)
        ]
        kept = all(m >= need for m in made)
        started = "never" if live is None else f"{live - spawned:.1f} s"
        print(
            f"{count} passthrough 720p publishers: segments in {args.seconds:g} s {made}"
            f" (real time: {need + 1:g}) {'kept up' if kept else 'FELL BEHIND'};"
            f" every playlist there after {started}",
            flush=True,
        )
        if not kept:
            break
        best = count
        count *= 2
    behind = f"; {count} fell behind" if count <= args.publishers else ""
    print(
        f"passthrough 720p publishers one host kept live: {best} (of up to {args.publishers}{behind})"
    )
    return 0 if best else 1


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10, help="samples per run")
    parser.add_argument("--warmup", type=float, default=6, help="seconds after the first frame")
    parser.add_argument("--modes", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--viewers", type=int, default=0, help="LL-HLS viewer load instead")
    parser.add_argument("--publishers", type=int, default=0, help="publisher count instead")
    args = parser.parse_args()
    missing = [str(p) for p in PLAYER_JS.values() if not p.is_file()]
    if missing or shutil.which("chromium") is None or shutil.which("ffmpeg") is None:
        print(f"needs ffmpeg, chromium and the player JS (npm ci): missing {missing}")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        mp = start_mediaplane(Path(tmp))
        try:
            if args.publishers:
                return await asyncio.to_thread(publishers, args, mp)
            return await (viewers(args, mp) if args.viewers else latency(args, mp))
        finally:
            mp.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
