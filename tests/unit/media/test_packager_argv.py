"""Shaka Packager: its command line (built in media.ffmpeg) and its check at startup."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mediaplane.config import Settings
from mediaplane.media import (
    MediaError,
    PackagerInput,
    PackagingOptions,
    ShakaPackager,
    Toolchain,
    ToolMissing,
)
from mediaplane.media import ffmpeg as ff

OUT = Path("/work/out")
INPUTS = [
    PackagerInput(Path("/work/v720.mp4"), "video", "v720", frame_rate="30"),
    PackagerInput(Path("/work/audio.mp4"), "audio", "audio", language="en"),
    PackagerInput(Path("/work/audio2.mp4"), "audio", "audio2"),
]


def test_packager_argv_one_descriptor_per_track() -> None:
    argv = ff.packager_argv("/bin/packager", INPUTS, OUT, segment_seconds=2, mpd_output=OUT / "p")
    assert argv == [
        "/bin/packager",
        "in=/work/v720.mp4,stream=video,init_segment=/work/out/v720/init.mp4,"
        "segment_template=/work/out/v720/$Number$.m4s",
        "in=/work/audio.mp4,stream=audio,init_segment=/work/out/audio/init.mp4,"
        "segment_template=/work/out/audio/$Number$.m4s,language=en",
        "in=/work/audio2.mp4,stream=audio,init_segment=/work/out/audio2/init.mp4,"
        "segment_template=/work/out/audio2/$Number$.m4s",
        "--segment_duration", "2",
        "--mpd_output", "/work/out/p",
        "--quiet",
    ]  # fmt: skip


def test_shaka_packager_uses_the_one_builder() -> None:
    options = PackagingOptions(segment_seconds=4)
    argv = ShakaPackager("/bin/packager").argv(INPUTS, OUT, options)
    assert argv == ff.packager_argv(
        "/bin/packager", INPUTS, OUT, segment_seconds=4, mpd_output=OUT / "packager.mpd"
    )


@pytest.mark.parametrize("name", ["a,b.mp4", "a=b.mp4"])
def test_paths_the_descriptor_cannot_hold_are_refused(name: str, tmp_path: Path) -> None:
    bad = [PackagerInput(Path("/work") / name, "video", "v")]
    with pytest.raises(MediaError, match="may not contain"):
        ff.packager_argv("/bin/packager", bad, OUT, segment_seconds=2, mpd_output=OUT / "p")
    # ShakaPackager refuses before it creates anything.
    with pytest.raises(MediaError, match="may not contain"):
        ShakaPackager("/bin/packager").package(bad, tmp_path / "out", PackagingOptions())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("packager version v3.4.2-c819dea-release\n", (3, 4, 2)),
        ("packager version v2.6.1-634af65-release", (2, 6, 1)),
        ("packager.exe version v3.0.0-abc-release", (3, 0, 0)),
        ("packager version 3.1", (3, 1, 0)),
        ("something else 1.2.3", None),
        ("", None),
    ],
)
def test_parse_packager_version(output: str, version: tuple[int, int, int] | None) -> None:
    assert ff.parse_packager_version(output) == version


def test_version_argv() -> None:
    assert ff.packager_version_argv("/p") == ["/p", "--version"]


def test_the_pinned_packager_passes_the_check() -> None:
    binary = ff.find_packager(Settings())
    version = ff.check_packager(binary)
    assert tuple(int(x) for x in version.split(".")[:2]) >= ff.MIN_PACKAGER_VERSION


def test_discover_records_the_packager_version() -> None:
    tools = Toolchain.discover(Settings())
    assert tools.packager == ff.find_packager(Settings())
    assert tools.packager_version == ff.check_packager(tools.packager)


def _program(tmp_path: Path, body: str) -> str:
    path = tmp_path / "packager"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_too_old_packager_is_refused_with_what_to_do(tmp_path: Path) -> None:
    old = _program(tmp_path, "echo 'packager version v2.6.1-634af65-release'")
    with pytest.raises(ToolMissing, match=r"2\.6\.1 .* too old: Mediaplane needs 3\.0.*npm ci"):
        ff.check_packager(old)


def test_a_program_that_is_not_the_packager_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ToolMissing, match="reports no Shaka Packager version"):
        ff.check_packager(_program(tmp_path, "echo hello"))
    with pytest.raises(ToolMissing, match="does not run"):
        ff.check_packager(str(tmp_path / "missing"))


def test_missing_packager_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(ToolMissing, match="npm ci"):
        ff.find_packager(Settings(node_modules_dir=tmp_path))
    with pytest.raises(ToolMissing, match="MEDIAPLANE_PACKAGER_PATH"):
        ff.find_packager(Settings(packager_path=str(tmp_path / "nope")))
