"""Content-protection benchmark: what cbcs encryption costs in packaging and in upload→ready.

What it measures
    1. Upload→ready: bench/vod_ready.py's generated 1080p30 clip (``--seconds``, 60 by
       default) is uploaded to one real ``mediaplane up`` twice, clear and with
       ``protection=cbcs``, one after the other (each after the machine is quiet): seconds
       from upload complete to the whole ladder published (progress 100). The protected
       run packages through the same code path with raw keys from the key store, and
       publishes no clear preview, so this is what a creator waits longer.
    2. Packaging throughput: the clear asset's ladder (every rendition's stored CMAF
       segments joined back into one MP4 each: the encodes' bytes) packaged with
       ``Encryption("cbcs", …)`` by the same ShakaPackager the pipeline uses, in MB/s of
       input; and clear, for reference.

Baselines
    1. the same clip uploaded clear, same server, same run (target: protected ≤ +10 %);
    2. ``cp`` of the same input files, same run (target: cbcs packaging ≥ 0.3× cp's MB/s).
       Both read from the page cache (the inputs were just written), so cp is the cost of
       moving the bytes and nothing else.

Usage::

    .venv/bin/python bench/encrypt.py [--seconds 60] [--preset veryfast] [--repeat 3]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vod_ready import CACHE, PRESET, Server, make_source, wait_quiet  # noqa: E402

from mediaplane.config import Settings  # noqa: E402
from mediaplane.media import (  # noqa: E402
    Encryption,
    PackagerInput,
    PackagingOptions,
    ShakaPackager,
    Toolchain,
    TrackKey,
)

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


def _ladder_inputs(data_dir: Path, asset_id: str, into: Path) -> list[PackagerInput]:
    """The asset's stored renditions joined back into one fragmented MP4 each."""
    cmaf = data_dir / "objects" / "assets" / asset_id / "cmaf"
    into.mkdir(parents=True)
    inputs = []
    for folder in sorted(p for p in cmaf.iterdir() if p.is_dir() and p.name != "preview"):
        numbers = sorted(int(p.stem) for p in folder.glob("*.m4s"))
        out = into / f"{folder.name}.mp4"
        with out.open("wb") as f:
            f.write((folder / "init.mp4").read_bytes())
            for n in numbers:
                f.write((folder / f"{n}.m4s").read_bytes())
        kind = "audio" if folder.name.startswith("audio") else "video"
        inputs.append(PackagerInput(out, kind, folder.name))  # type: ignore[arg-type]
    return inputs


def _keys(inputs: list[PackagerInput]) -> Encryption:
    by_label: dict[str, TrackKey] = {}
    keys = {}
    for i in inputs:
        label = "AUDIO" if i.kind == "audio" else "VIDEO"
        key = by_label.setdefault(
            label, TrackKey(label, secrets.token_bytes(16), secrets.token_bytes(16))
        )
        keys[i.rendition_id] = key
    return Encryption("cbcs", keys)


def _best(times: list[float]) -> float:
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--preset", default=PRESET)
    ap.add_argument("--repeat", type=int, default=3, help="packaging runs (best is kept)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--quiet-wait", type=float, default=60)
    args = ap.parse_args()

    source = make_source(args.seconds)
    data_dir = Path(tempfile.mkdtemp(prefix="encrypt-", dir=CACHE))
    server = Server.start(data_dir, args.preset)
    try:
        time.sleep(2.0)
        ready: dict[str, float] = {}
        clear_id = ""
        for protection in ("none", "cbcs"):
            wait_quiet(args.quiet_wait)
            asset_id, seconds = _ready_seconds(server, source, protection, args.timeout)
            ready[protection] = seconds
            clear_id = clear_id or asset_id
            print(f"upload→ready {protection:>5}: {seconds:7.2f} s", flush=True)
    finally:
        server.stop()

    work = data_dir / "package"
    inputs = _ladder_inputs(data_dir, clear_id, work / "inputs")
    total = sum(i.path.stat().st_size for i in inputs)
    settings = Settings()
    packager = ShakaPackager(Toolchain.discover(settings).packager)
    options = PackagingOptions(segment_seconds=settings.segment_seconds, timeout_seconds=1800)
    encryption = _keys(inputs)
    runs: dict[str, list[float]] = {"cp": [], "clear": [], "cbcs": []}
    for k in range(args.repeat):
        wait_quiet(args.quiet_wait)
        dest = work / f"cp-{k}"
        t = time.perf_counter()
        subprocess.run(["cp", "-r", str(work / "inputs"), str(dest)], check=True)
        runs["cp"].append(time.perf_counter() - t)
        for name, enc in (("clear", None), ("cbcs", encryption)):
            out = work / f"{name}-{k}"
            t = time.perf_counter()
            packager.package(inputs, out, options, enc)
            runs[name].append(time.perf_counter() - t)
            shutil.rmtree(out)
        shutil.rmtree(dest)
    mb = total / 1e6
    rate = {name: mb / _best(ts) for name, ts in runs.items()}
    ratio = rate["cbcs"] / rate["cp"]
    overhead = ready["cbcs"] / ready["none"] - 1
    print(
        f"\nladder: {len(inputs)} renditions, {mb:.1f} MB ({args.seconds} s 1080p30, {args.preset})"
    )
    for name in ("cp", "clear", "cbcs"):
        print(
            f"  {name:>5}: {rate[name]:8.1f} MB/s  (best of {args.repeat}: {_best(runs[name]):.3f} s)"
        )
    print(
        f"cbcs packaging / cp: {ratio:.3f}× (target ≥ {TARGET_MBPS_RATIO}) "
        f"{'PASS' if ratio >= TARGET_MBPS_RATIO else 'MISS'}"
    )
    print(
        f"upload→ready, cbcs vs clear: {overhead * 100:+.1f} % (target ≤ +{TARGET_READY_OVERHEAD * 100:.0f} %) "
        f"{'PASS' if overhead <= TARGET_READY_OVERHEAD else 'MISS'}"
    )
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
