"""Whose fault a failed media subprocess is: real ffmpeg runs through ManagedProcess, each
failing one way, classified by :func:`mediaplane.media.classify`."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from mediaplane.clips import Clip, picture
from mediaplane.config import Settings
from mediaplane.media import (
    HostFailure,
    InvalidMedia,
    ManagedProcess,
    ProcessFailed,
    Toolchain,
    classify,
    probe,
)
from mediaplane.media._errors import HostCause
from mediaplane.media._transcode import _host_error_on_success, encode_timeout
from tests.support import make_clip

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg")

CREATOR = "the creator's advice"
#: A test pattern longer than any test here lets it run (each cuts it with -t, or kills it).
LAVFI = Clip(seconds=120, video=picture("320x240", 25), audio=()).inputs()
HEAD = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]


def _fail(argv: list[str], *, memory: int = 2 * 1024**3) -> ProcessFailed:
    with pytest.raises(ProcessFailed) as caught:
        ManagedProcess(argv, timeout=120, memory_bytes=memory, name="ffmpeg-test").run()
    return caught.value


def _host(failed: ProcessFailed) -> HostFailure:
    result = classify(failed, CREATOR)
    assert isinstance(result, HostFailure), (result, failed.stderr_tail)
    return result


def test_a_tiny_memory_limit_is_the_hosts_problem() -> None:
    # 64 MiB of address space: the dynamic loader cannot even map ffmpeg's libraries.
    failed = _fail([*HEAD, *LAVFI, "-t", "1", "-f", "null", "-"], memory=64 * 1024**2)
    host = _host(failed)
    assert host.cause is HostCause.MEMORY
    assert "MEDIAPLANE_SUBPROCESS_MEMORY_BYTES" in str(host)
    assert failed.argv[0] == "ffmpeg" and failed.returncode == 127


def test_a_memory_limit_hit_while_encoding_is_the_hosts_problem(tmp_path: Path) -> None:
    # Enough to start, not enough for x264 at 4K: it fails allocating (or starting its
    # threads), never with a message about the input.
    source = make_clip("uhd-1s.mp4", seconds=1, size="3840x2160", audio=False)
    argv = [*HEAD, "-i", str(source), "-c:v", "libx264", "-preset", "ultrafast"]
    failed = _fail([*argv, "-f", "mp4", str(tmp_path / "o.mp4")], memory=450 * 1024**2)
    assert _host(failed).cause in (HostCause.MEMORY, HostCause.ENCODER)


def test_a_missing_encoder_is_the_hosts_problem(tmp_path: Path) -> None:
    argv = [*HEAD, *LAVFI, "-t", "1", "-c:v", "libnotanencoder", str(tmp_path / "o.mp4")]
    host = _host(_fail(argv))
    assert host.cause is HostCause.ENCODER and "Unknown encoder" in host.detail


def test_a_full_disk_is_the_hosts_problem() -> None:
    # /dev/full fails every write with ENOSPC.
    argv = [*HEAD, *LAVFI, "-t", "1", "-c:v", "libx264", "-f", "mp4", "file:/dev/full"]
    host = _host(_fail(argv))
    assert host.cause is HostCause.DISK and "No space left on device" in host.detail


def test_a_killed_process_is_the_hosts_problem() -> None:
    proc: ManagedProcess

    def on_line(line: str) -> None:  # the first progress line: it is running; kill it
        pid = proc.pid
        assert pid is not None
        subprocess.run(["kill", "-KILL", str(pid)], check=True)

    argv = [*HEAD, "-re", *LAVFI, "-progress", "pipe:1", "-f", "null", "-"]
    proc = ManagedProcess(argv, timeout=60, memory_bytes=2 * 1024**3, on_line=on_line)
    with pytest.raises(ProcessFailed) as caught:
        proc.run()
    assert caught.value.signal == signal.SIGKILL
    host = _host(caught.value)
    assert host.cause is HostCause.SIGNAL and "SIGKILL" in host.detail


def test_ffmpeg_stopped_by_sigterm_is_the_hosts_problem() -> None:
    proc: ManagedProcess
    sent: list[int] = []

    def on_line(line: str) -> None:
        if not sent and proc.pid is not None:
            sent.append(proc.pid)
            subprocess.run(["kill", "-TERM", str(proc.pid)], check=True)

    argv = [*HEAD, "-re", *LAVFI, "-progress", "pipe:1", "-f", "null", "-"]
    proc = ManagedProcess(argv, timeout=60, memory_bytes=2 * 1024**3, on_line=on_line)
    proc.name = "ffmpeg-encode"
    with pytest.raises(ProcessFailed) as caught:
        proc.run()
    assert caught.value.returncode == 255  # ffmpeg caught it and stopped cleanly
    assert _host(caught.value).cause is HostCause.SIGNAL


def test_a_missing_program_is_the_hosts_problem(tmp_path: Path) -> None:
    with pytest.raises(HostFailure) as caught:
        ManagedProcess([str(tmp_path / "packager")], timeout=5, memory_bytes=1 << 30).run()
    assert caught.value.cause is HostCause.TOOL


def test_a_truncated_file_is_the_creators_problem(tmp_path: Path) -> None:
    whole = make_clip("fail-trunc-src.mp4", seconds=2, size="320x240").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 2])  # the moov (at the end) is gone
    failed = _fail([*HEAD, "-f", "mov", "-i", f"file:{cut}", "-f", "null", "-"])
    result = classify(failed, CREATOR)
    assert isinstance(result, InvalidMedia) and str(result) == CREATOR
    # The probe says so in the creator's words, with what to do next.
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(InvalidMedia, match=r"truncated or damaged\)\. Upload the complete"):
        probe(Toolchain.discover(settings), cut, settings)


def test_garbage_is_the_creators_problem(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ts"
    junk.write_bytes(b"\x47" + b"\x00" * 187 + bytes(range(256)) * 40)
    failed = _fail([*HEAD, "-f", "mov", "-i", f"file:{junk}", "-f", "null", "-"])
    assert isinstance(classify(failed, CREATOR), InvalidMedia)


def test_without_a_creator_message_it_is_the_hosts_problem(tmp_path: Path) -> None:
    """A command that reads only our own files (stitching chunks) is never the creator's."""
    missing = tmp_path / "chunks.txt"
    missing.write_text("file 'nope.mp4'\n")
    failed = _fail([*HEAD, "-f", "concat", "-safe", "1", "-i", str(missing), "-f", "null", "-"])
    assert isinstance(classify(failed, CREATOR), InvalidMedia)
    assert classify(failed, None).cause is HostCause.UNKNOWN  # type: ignore[union-attr]


def test_encode_timeout_grows_with_the_source_up_to_a_ceiling() -> None:
    s = Settings()
    assert encode_timeout(60, s) == 120 + 60 * s.encode_timeout_factor
    assert encode_timeout(600, s) > encode_timeout(60, s)
    twelve_hours = encode_timeout(12 * 3600, s)
    assert twelve_hours == s.encode_timeout_max_seconds == 24 * 3600  # not 240 h
    assert encode_timeout(12 * 3600, Settings(encode_timeout_max_seconds=3600)) == 3600


def test_a_full_disk_fails_the_run_even_when_ffmpeg_exits_0() -> None:
    # MPEG-TS to /dev/full: every write fails with ENOSPC, yet ffmpeg 5.1 exits 0.
    argv = [*HEAD, *LAVFI, "-t", "1", "-c:v", "libx264", "-f", "mpegts", "file:/dev/full"]
    done = ManagedProcess(argv, timeout=120, memory_bytes=2 * 1024**3).run()
    assert done.returncode == 0
    host = _host_error_on_success("ffmpeg-encode", argv, done.stderr_tail)
    assert host is not None and host.cause is HostCause.DISK
    assert _host_error_on_success("ffmpeg-encode", argv, "") is None
