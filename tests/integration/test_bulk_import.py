"""Duplicate detection and bulk import against a real server, on both backends:
the same file uploaded twice, the same audio in another file, and `mediaplane import` from a
folder and from an S3 prefix (SeaweedFS), run twice."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from mediaplane.clips import H264, Clip, picture
from tests.seaweed import SeaweedS3
from tests.support import MEDIA_CACHE, Server, make_clip

MELODY = "sin(2*PI*(300+200*sin(t))*t)+0.3*sin(2*PI*1250*t)"
OTHER_MELODY = "sin(2*PI*(520+180*sin(1.7*t))*t)*(0.6+0.4*sin(3*t))"


def av_clip(name: str, *, audio: str, video: str = "testsrc2", extra: tuple[str, ...] = ()) -> Path:
    """An 8 s 96×64 clip (cached): lavfi ``video`` plus lavfi ``audio``. Chromaprint needs
    several seconds of audio, so these are longer than most test clips."""
    clip = Clip(
        seconds=8, video=picture("96x64", 10, video), audio=(audio,), codecs=H264, extra=extra
    )
    return clip.make(MEDIA_CACHE / name, timeout=120)


def unique_copy(src: Path, dest: Path) -> Path:
    """``src`` remuxed (no re-encode) with a random tag, so its bytes are new to the server
    even though other tests upload the same cached clips."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".mov": "mov", ".mkv": "matroska"}.get(dest.suffix.lower(), "mp4")
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(src),
         "-c", "copy", "-metadata", f"comment={uuid.uuid4().hex}", "-f", fmt, str(dest)],
        check=True,
        timeout=60,
    )  # fmt: skip
    return dest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_hash(server: Server, digest: str) -> list[dict[str, Any]]:
    with server.client() as c:
        r = c.get("/api/v1/assets", params={"content_hash": digest})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def total_assets(server: Server) -> int:
    with server.client() as c:
        r = c.get("/api/v1/assets", params={"limit": 1})
    assert r.status_code == 200, r.text
    return int(r.json()["pagination"]["total"])


def wait_fingerprint(server: Server, asset_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with server.client() as c:
        while True:
            asset: dict[str, Any] = c.get(f"/api/v1/assets/{asset_id}").json()["data"]
            if asset["audio_fingerprint_status"] not in (None, "pending"):
                return asset
            if time.monotonic() > deadline:
                raise AssertionError(f"asset {asset_id} never fingerprinted\n{server.log()}")
            time.sleep(0.25)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediaplane", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


# -- duplicate detection --------------------------------------------------------------------


def test_same_file_uploaded_twice_is_flagged(server: Server, tmp_path: Path) -> None:
    clip = unique_copy(make_clip("dedupe-1s.mp4", seconds=1, size="208x120"), tmp_path / "a.mp4")
    first = server.upload(clip, title="first")
    second = server.upload(clip, title="second, on purpose")
    digest = sha256(clip)
    assert first["content_hash"] == second["content_hash"] == digest
    assert first["duplicate_of"] is None
    assert second["duplicate_of"] == first["id"]
    assert {a["id"] for a in by_hash(server, digest)} == {first["id"], second["id"]}
    # Upper-case hex finds the same assets (compared by id: their progress moves meanwhile).
    assert [a["id"] for a in by_hash(server, digest.upper())] == [
        a["id"] for a in by_hash(server, digest)
    ]
    # Still processed: a re-upload may be deliberate (documented in ingest_file).
    assert server.wait(second["id"])["status"] == "ready"
    with server.client() as c:
        bad = c.get("/api/v1/assets", params={"content_hash": "abc"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_request"


def test_same_audio_in_another_file_is_flagged(server: Server, tmp_path: Path) -> None:
    original = unique_copy(
        av_clip("bulk-melody.mp4", audio=f"aevalsrc={MELODY}:s=44100", extra=("-c:a", "aac")),
        tmp_path / "melody.mp4",
    )
    # The same audio under a red picture, resampled and at a third of the bitrate.
    copy = av_clip(
        "bulk-melody-red.mp4",
        audio=f"aevalsrc={MELODY}:s=48000",
        video="color=c=red",
        extra=("-c:a", "aac", "-b:a", "40k"),
    )
    other = av_clip(
        "bulk-other.mp4", audio=f"aevalsrc={OTHER_MELODY}:s=44100", extra=("-c:a", "aac")
    )
    noise = av_clip("bulk-noise.mp4", audio="anoisesrc=seed=5:r=44100", extra=("-c:a", "aac"))
    silent = make_clip("bulk-silent-2s.mp4", seconds=2, size="96x64", audio=False)
    ids = [server.upload(p, title=p.stem)["id"] for p in (original, copy, other, noise, silent)]
    got = [wait_fingerprint(server, i) for i in ids]
    assert [a["audio_fingerprint_status"] for a in got] == ["ready"] * 4 + ["no_audio"]
    # A fingerprint is stored (status "ready") before it is compared with the others, so
    # that two assets fingerprinted at once always see each other: the link comes just after.
    deadline = time.monotonic() + 60
    while got[1]["audio_match_of"] is None and time.monotonic() < deadline:
        time.sleep(0.25)
        got = [wait_fingerprint(server, i) for i in ids]
    assert got[1]["audio_match_of"] == ids[0]
    assert got[1]["duplicate_of"] is None  # different bytes: only the audio is the same
    assert got[0]["audio_match_of"] is None
    assert got[2]["audio_match_of"] is None
    assert got[3]["audio_match_of"] is None
    assert got[4]["audio_match_of"] is None


# -- mediaplane import ----------------------------------------------------------------------


def test_import_folder_twice(server: Server, tmp_path: Path) -> None:
    lib = tmp_path / "library"
    a = unique_copy(make_clip("bulk-a.mp4", seconds=1, size="160x96"), lib / "a.mp4")
    unique_copy(make_clip("bulk-b.mp4", seconds=1, size="176x96"), lib / "sub" / "b.MOV")
    unique_copy(make_clip("bulk-c.mp4", seconds=1, size="192x96"), lib / "sub" / "x" / "c.mkv")
    (lib / "sub" / "copy-of-a.mp4").write_bytes(a.read_bytes())
    (lib / "notes.txt").write_text("not a video")
    unique_copy(make_clip("bulk-a.mp4", seconds=1, size="160x96"), lib / ".hidden" / "d.mp4")
    args = ("import", "--from", str(lib), "--server", server.url, "--token", server.token)

    first = run_cli(*args)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "imported 3, skipped 1 duplicates, failed 0" in first.stdout, first.stdout
    bars = [line for line in first.stderr.splitlines() if "━" in line]
    assert len(bars) == 1 and "done 4 files" in bars[0], first.stderr  # one bar for the run
    found = by_hash(server, sha256(a))
    assert len(found) == 1 and found[0]["source_filename"] == "a.mp4"
    before = total_assets(server)

    second = run_cli(*args)
    assert second.returncode == 0, second.stderr + second.stdout
    assert "imported 0, skipped 4 duplicates, failed 0" in second.stdout, second.stdout
    assert "nothing uploaded" in second.stdout
    assert total_assets(server) == before
    assert server.wait(found[0]["id"])["status"] == "ready"


def test_import_reports_failures_and_bad_tokens(server: Server, tmp_path: Path) -> None:
    lib = tmp_path / "library"
    unique_copy(make_clip("bulk-a.mp4", seconds=1, size="160x96"), lib / "good.mp4")
    (lib / "empty.mp4").write_bytes(b"")
    out = run_cli("import", "--from", str(lib), "--server", server.url, "--token", server.token)
    assert out.returncode == 1
    assert "failed: empty.mp4: the file is empty" in out.stdout
    assert "imported 1, skipped 0 duplicates, failed 1" in out.stdout
    bad = run_cli("import", "--from", str(lib), "--server", server.url, "--token", "wrong")
    assert bad.returncode == 1 and "refused the API token" in " ".join(bad.stderr.split())
    missing = run_cli(
        "import", "--from", str(tmp_path / "nope"), "--server", server.url, "--token", "t"
    )
    assert missing.returncode == 2 and "is not a folder" in " ".join(missing.stderr.split())


def test_import_from_s3_prefix_twice(server: Server, seaweed: SeaweedS3, tmp_path: Path) -> None:
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=seaweed.endpoint,
        region_name=seaweed.region,
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )
    prefix = f"library-{uuid.uuid4().hex[:8]}"
    clips = {
        f"{prefix}/one.mp4": unique_copy(make_clip("bulk-a.mp4", seconds=1, size="160x96"), tmp_path / "1.mp4"),
        f"{prefix}/season-1/two.mkv": unique_copy(make_clip("bulk-b.mp4", seconds=1, size="176x96"), tmp_path / "2.mkv"),
    }  # fmt: skip
    for key, path in clips.items():
        s3.upload_file(str(path), seaweed.bucket, key)
    s3.put_object(Bucket=seaweed.bucket, Key=f"{prefix}/readme.txt", Body=b"not a video")
    env = {"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key}
    args = (
        "import",
        "--from",
        seaweed.url(prefix),
        "--server",
        server.url,
        "--token",
        server.token,
    )

    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "imported 2, skipped 0 duplicates, failed 0" in first.stdout, first.stdout
    for path in clips.values():
        assert len(by_hash(server, sha256(path))) == 1

    second = run_cli(*args, env=env)
    assert second.returncode == 0, second.stderr + second.stdout
    assert "imported 0, skipped 2 duplicates, failed 0" in second.stdout, second.stdout
    assert "nothing uploaded" in second.stdout
