"""WHEP glass-to-glass latency: ffmpeg burns its wall clock into the frames, publishes over
RTMP to a real `mediaplane up`; Chromium plays the stream over WHEP and reads the clock back
from each decoded frame.

What it measures
    The publisher's picture (320x180, 30 fps, keyframe every 0.5 s, x264 ``ultrafast``
    ``zerolatency``) carries, in its top 32 rows, the wall clock in milliseconds when the
    frame was made (44 bits as 7-pixel-wide black/white columns; ``setpts=RTCTIME`` then
    ``geq``). The page draws every frame it is about to show (requestVideoFrameCallback) on a
    canvas, decodes the strip and takes ``timeOrigin + expectedDisplayTime - stamp``:
    encoding, RTMP, the packager's ffmpeg, the fan-out, RTP, the jitter buffer and decoding
    all count. Publisher and browser share the clock (one host). ICE runs on 127.0.0.1 only
    (the server's ``webrtc_ice_addresses``; the page offers only its loopback candidates): a
    run whose selected candidate pair is not loopback on both sides stops the bench. Each
    run opens a new WHEP session, lets it settle for ``--settle`` seconds and takes the
    median over ``--seconds``; ``--runs`` runs. (The bench for LL-HLS/DASH/HLS is bench/live_latency.py.)

Usage::

    .venv/bin/python bench/whep_latency.py [--runs 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM_ARGS, ICE_PAIRS, LOOPBACK_ONLY  # noqa: E402
from tests.support import embedded_backend, start_server  # noqa: E402

BITS = 44
STRIP = (
    "setpts=RTCTIME/(TB*1000000),"
    "geq=lum='if(lt(Y\\,32)\\,255*mod(floor(T*1000/pow(2\\,floor(X/7)))\\,2)\\,128)'"
    ":cb=128:cr=128,setpts=N/(30*TB)"
)

PAGE = """<!doctype html><meta charset=utf-8><video muted autoplay playsinline></video>
<canvas width=320 height=180></canvas><script>
LOOPBACK_ONLY
window.lat = {samples: [], status: null};
(async () => {
  const id = new URLSearchParams(location.search).get("id");
  const video = document.querySelector("video");
  const ctx = document.querySelector("canvas").getContext("2d", {willReadFrequently: true});
  const pc = window.pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.ontrack = (ev) => { video.srcObject = new MediaStream([ev.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(ok => {
    if (pc.iceGatheringState === "complete") return ok();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok();
    setTimeout(ok, 2000);
  });
  const r = await fetch("/whep/" + id, {method: "POST", body: loopbackOnly(pc.localDescription.sdp),
    headers: {"Content-Type": "application/sdp"}});
  window.lat.status = r.status; window.lat.location = r.headers.get("Location");
  await pc.setRemoteDescription({type: "answer", sdp: await r.text()});
  const frame = (now, meta) => {
    ctx.drawImage(video, 0, 0, 320, 180);
    const row = ctx.getImageData(0, 16, 320, 1).data;
    let stamp = 0;
    for (let b = 0; b < BITS; b++) {
      if (row[(b * 7 + 3) * 4] > 128) stamp += 2 ** b;
    }
    window.lat.samples.push(performance.timeOrigin + meta.expectedDisplayTime - stamp);
    video.requestVideoFrameCallback(frame);
  };
  video.requestVideoFrameCallback(frame);
})();
</script>""".replace("BITS", str(BITS)).replace("LOOPBACK_ONLY", LOOPBACK_ONLY)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--settle", type=float, default=3.0)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as data:
        server = start_server(Path(data), embedded_backend(), x264_preset="ultrafast")
        pub = None
        try:
            with server.client() as c:
                live = c.post("/api/v1/live-streams", json={"latency_mode": "low"}).json()["data"]
            pid = live["playback_ids"][0]["id"]
            argv = [
                "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
                "-i", "color=gray:size=320x180:rate=30", "-t", "600", "-vf", STRIP,
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15",
                "-bf", "0", "-pix_fmt", "yuv420p", "-b:v", "800k",
                "-f", "flv", f"{server.rtmp_url}/{live['stream_key']}",
            ]  # fmt: skip
            pub = subprocess.Popen(argv, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while httpx.get(f"{server.url}/play/{pid}/master.m3u8").status_code != 200:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the stream did not go live:\n{server.log()}")
                time.sleep(0.3)
            medians = []
            with sync_playwright() as pw:
                exe = shutil.which("chromium")
                browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
                for run in range(args.runs):
                    page = browser.new_page()
                    url = f"{server.url}/_bench/whep.html"
                    page.route(
                        re.compile(re.escape(url) + r"(\?.*)?$"),
                        lambda route: route.fulfill(
                            status=200, content_type="text/html", body=PAGE
                        ),
                    )
                    page.goto(f"{url}?id={pid}")
                    page.wait_for_function("() => window.lat.samples.length > 0", timeout=30_000)
                    time.sleep(args.settle)
                    start = page.evaluate("() => window.lat.samples.length")
                    time.sleep(args.seconds)
                    samples = page.evaluate("() => window.lat.samples")[start:]
                    pair = page.evaluate(ICE_PAIRS)["selected"] or {}
                    hosts = [pair.get(side, {}).get("address") for side in ("local", "remote")]
                    if hosts != ["127.0.0.1", "127.0.0.1"]:  # loopback only, or no number
                        raise SystemExit(f"WHEP's selected ICE pair is not loopback: {pair}")
                    plausible = [s for s in samples if 0 < s < 30_000]  # a misread strip
                    median = statistics.median(plausible) / 1000
                    medians.append(median)
                    print(
                        json.dumps(
                            {
                                "run": run + 1,
                                "median_s": round(median, 3),
                                "min_s": round(min(plausible) / 1000, 3),
                                "max_s": round(max(plausible) / 1000, 3),
                                "frames": len(samples),
                                "misread": len(samples) - len(plausible),
                                "ice_pair": "{}<->{}".format(*hosts),
                            }
                        ),
                        flush=True,
                    )
                    loc = page.evaluate("() => window.lat.location")
                    httpx.delete(server.url + loc)
                    page.close()
                browser.close()
            print(json.dumps({"whep_median_of_medians_s": round(statistics.median(medians), 3)}))
        finally:
            if pub is not None:
                pub.kill()
                pub.wait(timeout=10)
            server.stop()


if __name__ == "__main__":
    main()
