"""Signed playback cost: a segment served through a signed playback id against the same
segment through a public one, in the same run, and playback-token verifications per second.

What it measures
    A generated 1080p30 clip (``--seconds`` long, lavfi, cached under ``.cache/bench/``, the
    clip of ``bench/origin.py``) is uploaded to a real ``mediaplane up`` (embedded, two web
    processes: ``--workers``). It gets a second playback id with the ``signed`` policy and a
    signing key. The master playlist is fetched once with an RS256 playback token; the
    segment URL it leads to carries the origin's carry token (``?st=``). wrk (``-t2 -c64``,
    ``--duration`` seconds each after a short warm-up) then requests:

    * ``public``: ``/play/{public id}/{rendition}/{n}.m4s`` — the baseline;
    * ``signed``: ``/play/{signed id}/{rendition}/{n}.m4s?st=…`` — the same bytes, each
      request checking the carry token (an HMAC: no database, no RSA) in the lean path;

    and the same pair for the rendition's media playlist (rendered with the carry token in
    every URL for the signed id). Pairs run back to back (public, then signed), ``--rounds``
    times, medians taken, so load from other work on a shared machine hits both alike.

    In-process loops (one thread) time :func:`mediaplane.accounts.verify_playback_token`
    (RS256 verify with a cached key lookup: what a master playlist request costs) and the
    carry-token check (what each segment request costs), per second.

Baseline and target
    ratio = signed req/s / public req/s for the segment: >= 0.9.

With ``--max-streams N`` the server counts streams (``MEDIAPLANE_MAX_STREAMS_PER_VIEWER``)
and the playback token names a viewer, so the signed requests are one counted stream's: the
carry token names the account and the stream, and the origin renews the stream every few
seconds (in Redis with ``--redis-url``).

Usage::

    PYTHONPATH=src .venv/bin/python bench/playback_auth.py [--duration 5] [--rounds 2] \
        [--max-streams 4 [--redis-url redis://127.0.0.1:6379/0]]

Needs ``wrk`` on PATH (Debian: ``apt-get install wrk``). Exit status 0 when the segment
ratio meets its goal, 1 when not.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jwt
import m3u8
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from origin import WrkResult, ingest, make_clip, start_mediaplane, wrk  # noqa: E402

from mediaplane.accounts import PublicKey, verify_playback_token  # noqa: E402
from mediaplane.delivery._access import CarryToken  # noqa: E402

GOAL = 0.9


def signed_paths(
    url: str, token: str, asset_id: str, public_id: str, viewer: str | None = None
) -> dict[str, str]:
    """A signed playback id for the asset, a playback token's master, and the media
    playlist and segment paths of one rendition for both ids (signed ones with ``?st=``)."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=auth, timeout=60) as c:
        key = c.post("/api/v1/signing-keys").json()["data"]
        r = c.post(f"/api/v1/assets/{asset_id}/playback-ids", json={"policy": "signed"})
        r.raise_for_status()
        pid = r.json()["data"]["id"]
    claims: dict[str, object] = {"sub": pid, "aud": "v", "exp": int(time.time()) + 3600}
    if viewer is not None:
        claims["viewer_id"] = viewer
    pem = base64.b64decode(key["private_key"])
    jwt_token = jwt.encode(claims, pem, algorithm="RS256", headers={"kid": key["id"]})
    master_url = f"{url}/play/{pid}/master.m3u8?token={jwt_token}"
    master = m3u8.loads(httpx.get(master_url, timeout=30).raise_for_status().text, uri=master_url)
    top = master.playlists[-1]
    media_url = top.absolute_uri
    media = m3u8.loads(httpx.get(media_url, timeout=30).raise_for_status().text, uri=media_url)
    segment_url = media.segments[len(media.segments) // 2].absolute_uri
    signed_media = media_url.removeprefix(url)
    signed_segment = segment_url.removeprefix(url)
    return {
        "segment public": signed_segment.split("?")[0].replace(pid, public_id),
        "segment signed": signed_segment,
        "media public": signed_media.split("?")[0].replace(pid, public_id),
        "media signed": signed_media,
    }


def verifications_per_second(seconds: float = 2.0) -> tuple[float, float]:
    """(RS256 playback-token verifications/s, carry-token checks/s), in this process."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    keys = {"k1": PublicKey("k1", private.public_key(), revoked=False)}
    token = jwt.encode(
        {"sub": "pb1", "aud": "v", "exp": int(time.time()) + 3600},
        pem,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        verify_playback_token(token, "pb1", "v", keys.get)
        n += 1
    rs256 = n / (time.perf_counter() - start)
    carry = CarryToken("bench secret")
    value = carry.issue("pb1", None, time.time())
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        carry.check(value, "pb1", time.time())
        n += 1
    return rs256, n / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=8, help="length of the generated clip")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="web processes")
    ap.add_argument("--max-streams", type=int, default=0, help="count streams (0: no limit)")
    ap.add_argument("--redis-url", default=None, help="count them in this Redis")
    args = ap.parse_args()
    if args.max_streams:
        os.environ["MEDIAPLANE_MAX_STREAMS_PER_VIEWER"] = str(args.max_streams)
    if args.redis_url:
        os.environ["MEDIAPLANE_REDIS_URL"] = args.redis_url
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    rs256, carry = verifications_per_second()
    print(
        f"in process: {rs256:,.0f} RS256 playback-token verifications/s, {carry:,.0f} carry-token checks/s"
    )
    clip = make_clip(args.seconds)
    tmp = Path(tempfile.mkdtemp(prefix="bench-playback-auth-"))
    mp = start_mediaplane(tmp, args.workers)
    try:
        asset_id, public_id = ingest(mp, clip)
        viewer = "bench-viewer" if args.max_streams else None
        paths = signed_paths(mp.url, mp.token, asset_id, public_id, viewer)
        for name, path in paths.items():
            r = httpx.get(mp.url + path, timeout=30)
            if r.status_code != 200:
                raise SystemExit(f"{name} {path}: {r.status_code} {r.text[:200]}")
        print(
            f"{paths['segment signed']}; {args.workers} web processes; wrk -t2 -c64 -d{args.duration}s"
        )
        results: dict[str, list[WrkResult]] = {k: [] for k in paths}
        for _ in range(args.rounds):
            for name, path in paths.items():
                results[name].append(wrk(mp.url + path, args.duration))
        print(f"{'':16} {'req/s':>9} {'MiB/s':>8} {'p99 ms':>8} {'errors':>6}")
        for name, rs in results.items():
            print(
                f"{name:16} {statistics.median(r.rps for r in rs):9.0f} "
                f"{statistics.median(r.mib_s for r in rs):8.1f} "
                f"{statistics.median(r.p99_ms for r in rs):8.2f} {sum(r.errors for r in rs):6d}"
            )
        ok = True
        for kind in ("segment", "media"):
            pub, sig = results[f"{kind} public"], results[f"{kind} signed"]
            ratio = statistics.median(s.rps / p.rps for p, s in zip(pub, sig, strict=True))
            if kind == "segment":
                ok = ratio >= GOAL and not any(r.errors for r in sig)
                print(
                    f"segment ratio {ratio:.2f}x public (goal >= {GOAL}x): {'met' if ok else 'NOT met'}"
                )
            else:
                print(f"media playlist ratio {ratio:.2f}x public (no goal)")
        return 0 if ok else 1
    finally:
        mp.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
