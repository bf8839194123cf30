"""Packaging each rendition in its own Shaka Packager process, side by side: the same
segments and the same Presentation as one process for the whole ladder, and one bad input
fails the whole packaging (keys file gone, no run's MPD left behind)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mediaplane.clips import Clip, picture, sine
from mediaplane.config import Settings
from mediaplane.media import (
    Encryption,
    MediaError,
    PackagerInput,
    PackagingOptions,
    ShakaPackager,
    Toolchain,
    TrackKey,
)
from mediaplane.media import ffmpeg as ff
from mediaplane.media._package import read_packager_mpd, usable_cores
from mediaplane.media._protection import COMMON_SYSTEM_ID

SD = TrackKey("SD", bytes.fromhex("00112233445566778899aabbccddeeff"), b"\x33" * 16)
AUDIO = TrackKey("AUDIO", bytes.fromhex("ffeeddccbbaa99887766554433221100"), b"\x44" * 16)


@pytest.fixture(scope="module")
def ladder(media_dir: Path) -> list[PackagerInput]:
    """Two video rungs and an audio track, 2 s each, as the pipeline hands them over."""
    gop = ("-g", "15")  # a keyframe every half second: several 1 s segments
    big = Clip(seconds=2, video=picture("320x180", 30), audio=(sine(440, 48000),), extra=gop).make(
        media_dir / "sbs-320x180-2s-a-g15.mp4"
    )
    small = Clip(seconds=2, video=picture("160x90", 30), audio=(), extra=gop).make(
        media_dir / "sbs-160x90-2s-g15.mp4"
    )
    return [
        PackagerInput(big, "video", "v180", frame_rate="30"),
        PackagerInput(small, "video", "v90", frame_rate="30"),
        PackagerInput(big, "audio", "audio", language="en"),
    ]


@pytest.fixture(scope="module")
def packager() -> ShakaPackager:
    return ShakaPackager(Toolchain.discover(Settings()).packager)


def test_side_by_side_writes_what_one_process_writes(
    ladder: list[PackagerInput], packager: ShakaPackager, tmp_path: Path
) -> None:
    assert usable_cores() >= 1
    options = PackagingOptions(segment_seconds=1)
    got = packager.package(ladder, tmp_path / "sbs", options)
    # The reference: the whole ladder in one packager process (how it ran before).
    ref = tmp_path / "one"
    argv = ff.packager_argv(
        packager.binary, ladder, ref, segment_seconds=1, mpd_output=tmp_path / "one.mpd"
    )
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    want = read_packager_mpd(tmp_path / "one.mpd", ref, ladder, options)

    assert [r.id for r in got.renditions] == [r.id for r in want.renditions]
    assert got.to_dict() == want.to_dict()
    assert sorted(p.name for p in (tmp_path / "sbs").iterdir()) == ["audio", "v180", "v90"]
    for r in got.renditions:
        assert len(r.segments) >= 2
        for s in r.segments:
            name = f"{s.number}.m4s"
            assert (tmp_path / "sbs" / r.id / name).read_bytes() == (ref / r.id / name).read_bytes()
        # The init segments differ only in their creation times (seconds apart).
        assert (tmp_path / "sbs" / r.id / "init.mp4").stat().st_size == (
            ref / r.id / "init.mp4"
        ).stat().st_size


def test_side_by_side_encrypts_every_rendition_with_its_key(
    ladder: list[PackagerInput], packager: ShakaPackager, tmp_path: Path
) -> None:
    enc = Encryption("cbcs", {"v180": SD, "v90": SD, "audio": AUDIO})
    got = packager.package(ladder, tmp_path / "out", PackagingOptions(), enc)
    assert got.protection == "cbcs"
    assert {r.id: r.kid for r in got.renditions} == {
        "v180": SD.kid.hex(),
        "v90": SD.kid.hex(),
        "audio": AUDIO.kid.hex(),
    }
    for r in got.renditions:
        init = (tmp_path / "out" / r.id / "init.mp4").read_bytes()
        assert b"tenc" in init and (b"encv" if r.kind == "video" else b"enca") in init
        assert bytes.fromhex(r.kid or "") in init
        assert COMMON_SYSTEM_ID.bytes in init  # the W3C Common PSSH, for ClearKey
    assert not list(tmp_path.glob(".*.keys"))
    assert not list((tmp_path / "out").glob("*.mpd"))


def test_one_bad_rendition_fails_the_whole_packaging(
    ladder: list[PackagerInput], packager: ShakaPackager, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(ladder[1].path.read_bytes()[:3000])  # a truncated MP4
    inputs = [ladder[0], PackagerInput(bad, "video", "v90", frame_rate="30"), ladder[2]]
    enc = Encryption("cenc", {"v180": SD, "v90": SD, "audio": AUDIO})
    with pytest.raises(MediaError):
        packager.package(inputs, tmp_path / "out", PackagingOptions(), enc)
    assert not list(tmp_path.glob(".*.keys"))  # the raw keys never outlive the run
