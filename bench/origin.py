"""Origin throughput benchmark: Mediaplane's /play routes against nginx serving the same bytes.

What it measures
    A generated 1080p30 clip (``--seconds`` long, 8 by default: lavfi ``testsrc2`` + sine,
    cached under ``.cache/bench/``) is uploaded to a real ``mediaplane up`` (embedded SQLite,
    broker and local object store) started with ``MEDIAPLANE_WEB_WORKERS=2`` (``--workers``)
    and logging JSON to a file, as it would in production. Once every rung is packaged, wrk
    (``-t2 -c64``, ``--duration`` seconds each, after a short warm-up) requests from it:

    * ``segment``: the packaged CMAF segment whose size is nearest 1.2 MiB (a 1080p segment);
    * ``media``:   that rendition's HLS media playlist (``/play/{id}/{rendition}/media.m3u8``);
    * ``master``:  the HLS master playlist.

Baseline
    nginx (from the OS packages) with the same number of worker processes, on another loopback
    port, in the same run, serving the *same bytes* as static files: the segment is a hard link
    to the object Mediaplane sends, the playlists are the bodies Mediaplane rendered, written to
    files under the same URL paths. nginx runs with sendfile, keep-alive and no access log.
    Each target is measured back to back (nginx, then Mediaplane) so load from other work on a
    shared machine hits both sides alike; ``--rounds`` repeats the pair and takes medians.

Target
    ratio = Mediaplane req/s / nginx req/s: >= 0.5 for segments, >= 0.15 for playlists
    (per-viewer playlists: Python renders what differs per viewer). p99 latency at 64
    connections is printed for both sides.

Usage::

    PYTHONPATH=src .venv/bin/python bench/origin.py [--duration 10] [--rounds 1] [--keep]

Needs ``wrk`` and ``nginx`` on PATH (Debian: ``apt-get install wrk nginx-light``). Exit status
0 when every ratio meets its goal, 1 when not.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from mediaplane.clips import AAC, Clip, picture, sine

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _server  # noqa: E402
from _server import Mediaplane, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
SEGMENT_TARGET = int(1.2 * 1024 * 1024)
GOALS = {"segment": 0.5, "media": 0.15, "master": 0.15}


def make_clip(seconds: int) -> Path:
    clip = Clip(
        seconds=seconds,
        video=picture("1920x1080", 30),
        audio=(sine(440, 48000),),
        codecs=("-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p")
        + AAC,
    )
    return clip.make(CACHE / f"origin-1080p-{seconds}s.mp4", timeout=600)


def start_mediaplane(data: Path, workers: int) -> Mediaplane:
    return _server.start_mediaplane(
        data, "bench-origin-token", web_workers=str(workers), x264_preset="ultrafast"
    )


def ingest(mp: Mediaplane, clip: Path) -> tuple[str, str]:
    """Upload ``clip``, wait until every rung is packaged; (asset id, playback id)."""
    auth = {"Authorization": f"Bearer {mp.token}"}
    with httpx.Client(base_url=mp.url, headers=auth, timeout=120) as c:
        with clip.open("rb") as f:
            r = c.post("/api/v1/assets", files={"file": (clip.name, f)}, data={"title": "bench"})
        r.raise_for_status()
        asset = r.json()["data"]
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            asset = c.get(f"/api/v1/assets/{asset['id']}").json()["data"]
            if asset["status"] == "errored":
                raise SystemExit(f"asset errored: {asset}")
            if asset["status"] == "ready" and asset["progress"] == 100:
                return str(asset["id"]), str(asset["playback_ids"][0]["id"])
            time.sleep(0.5)
    raise SystemExit("asset did not become ready")


NGINX_CONF = """\
{user}
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/iso.segment m4s;
    }}
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        add_header Cache-Control "public, max-age=60";
        add_header Access-Control-Allow-Origin "*";
    }}
}}
"""


@contextlib.contextmanager
def nginx(workdir: Path, workers: int) -> Iterator[str]:
    port = free_port()
    (workdir / "tmp").mkdir(exist_ok=True)
    conf = workdir / "nginx.conf"
    # Workers read the same files Mediaplane does (mode 0600 is fine): run them as this user.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(user=user, workers=workers, dir=workdir, port=port))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "stderr.log").open("wb"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"nginx failed: {(workdir / 'error.log').read_text()}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass(frozen=True)
class WrkResult:
    rps: float
    mib_s: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_SIZES = {"B": 1 / 1024**2, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}


def wrk(url: str, duration: int) -> WrkResult:
    subprocess.run(["wrk", "-t2", "-c64", "-d2s", url], capture_output=True, check=True)
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    tm = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(\w+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*?read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps,
        float(tm.group(1)) * _SIZES[tm.group(2)] if tm else 0.0,
        float(p99.group(1)) * _UNITS[p99.group(2)] if p99 else float("nan"),
        (int(bad.group(1)) if bad else 0) + (sum(map(int, errs.groups())) if errs else 0),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=8, help="length of the generated clip")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="processes on each side")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} not found: apt-get install wrk nginx-light")
    clip = make_clip(args.seconds)
    tmp = Path(tempfile.mkdtemp(prefix="bench-origin-"))
    (tmp / "mediaplane").mkdir()
    mp = start_mediaplane(tmp / "mediaplane", args.workers)
    try:
        asset_id, pid = ingest(mp, clip)
        cmaf = tmp / "mediaplane" / "objects" / "assets" / asset_id / "cmaf"
        segs = sorted(
            cmaf.glob("*/[0-9]*.m4s"), key=lambda p: abs(p.stat().st_size - SEGMENT_TARGET)
        )
        seg = segs[0]
        rid = seg.parent.name
        paths = {
            "segment": f"/play/{pid}/{rid}/{seg.name}",
            "media": f"/play/{pid}/{rid}/media.m3u8",
            "master": f"/play/{pid}/master.m3u8",
        }
        www = tmp / "nginx" / "www"
        for name, path in paths.items():
            dest = www / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if name == "segment":
                os.link(seg, dest)
            else:
                r = httpx.get(mp.url + path, timeout=10)
                r.raise_for_status()
                dest.write_bytes(r.content)
        print(
            f"segment {paths['segment']}: {seg.stat().st_size / 1024**2:.2f} MiB; "
            f"{args.workers} processes each; wrk -t2 -c64 -d{args.duration}s; "
            f"{os.cpu_count()} CPUs (shared: pairs run back to back)"
        )
        if args.serve:  # for profiling: leave both servers up until interrupted
            with nginx(tmp / "nginx", args.workers) as ngx:
                print(ngx, mp.url, paths, flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    time.sleep(3600)
            return 0
        results: dict[str, list[tuple[WrkResult, WrkResult]]] = {k: [] for k in paths}
        with nginx(tmp / "nginx", args.workers) as ngx:
            for name, path in paths.items():
                a, b = httpx.get(ngx + path), httpx.get(mp.url + path)
                if a.content != b.content:
                    raise SystemExit(
                        f"{name}: nginx ({a.status_code}, {len(a.content)} B) and Mediaplane"
                        f" ({b.status_code}, {len(b.content)} B) bodies differ"
                    )
            for _ in range(args.rounds):
                for name, path in paths.items():
                    base = wrk(ngx + path, args.duration)
                    ours = wrk(mp.url + path, args.duration)
                    results[name].append((base, ours))
        ok = True
        print(f"{'':8} {'side':10} {'req/s':>9} {'MiB/s':>8} {'p99 ms':>8} {'errors':>6}")
        for name, pairs in results.items():
            for side, idx in (("nginx", 0), ("mediaplane", 1)):
                rs = [p[idx] for p in pairs]
                print(
                    f"{name:8} {side:10} {statistics.median(r.rps for r in rs):9.0f} "
                    f"{statistics.median(r.mib_s for r in rs):8.1f} "
                    f"{statistics.median(r.p99_ms for r in rs):8.2f} {sum(r.errors for r in rs):6d}"
                )
            ratio = statistics.median(o.rps / b.rps for b, o in pairs)
            met = ratio >= GOALS[name] and not any(o.errors for _, o in pairs)
            ok &= met
            print(
                f"{name:8} ratio {ratio:.2f}x nginx (goal >= {GOALS[name]}x): {'met' if met else 'NOT met'}"
            )
        return 0 if ok else 1
    finally:
        mp.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
