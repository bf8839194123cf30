"""The live packager's ffmpeg command line."""

from __future__ import annotations

import pytest

from mediaplane.media import MediaError, live_package_argv


def _after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_flv_on_stdin_only_and_two_copied_tracks() -> None:
    argv = live_package_argv(
        "/usr/bin/ffmpeg", video_fd=7, audio_fd=9, audio_fragment_seconds=0.465
    )
    assert argv[0] == "/usr/bin/ffmpeg"
    assert _after(argv, "-i") == ["pipe:0"]
    assert _after(argv, "-protocol_whitelist") == ["pipe"]
    assert _after(argv, "-format_whitelist") == ["flv"]
    i = argv.index("-i")
    assert argv[i - 2 : i] == ["-f", "flv"]
    assert _after(argv, "-map") == ["0:v:0", "0:a:0"]
    assert _after(argv, "-c") == ["copy", "copy"]
    assert argv[-1] == "pipe:9"
    video_out = argv[argv.index("0:v:0") : argv.index("pipe:7") + 1]
    audio_out = argv[argv.index("0:a:0") :]
    (video_flags,) = _after(video_out, "-movflags")
    assert "+frag_every_frame" in video_flags
    assert "+empty_moov" in video_flags
    assert "-frag_duration" not in video_out
    assert _after(audio_out, "-frag_duration") == ["465000"]
    assert "+frag_every_frame" not in _after(audio_out, "-movflags")[0]
    assert _after(argv, "-flush_packets") == ["1", "1"]
    assert "+nobuffer" not in argv  # it drops the packets ffmpeg probed (5.1)


def test_one_track_or_none() -> None:
    argv = live_package_argv("ffmpeg", video_fd=None, audio_fd=5, audio_fragment_seconds=1.0)
    assert _after(argv, "-map") == ["0:a:0"]
    assert argv[-1] == "pipe:5"
    argv = live_package_argv("ffmpeg", video_fd=3, audio_fd=None, audio_fragment_seconds=1.0)
    assert _after(argv, "-map") == ["0:v:0"]
    with pytest.raises(MediaError):
        live_package_argv("ffmpeg", video_fd=None, audio_fd=None, audio_fragment_seconds=1.0)


def test_mpegts_on_stdin_tracks_by_pid_and_adts_to_mp4() -> None:
    argv = live_package_argv(
        "ffmpeg", video_fd=7, audio_fd=9, audio_fragment_seconds=0.3,
        input_format="mpegts", video_map="0:i:256", audio_map="0:i:257",
    )  # fmt: skip
    assert _after(argv, "-format_whitelist") == ["mpegts"]
    i = argv.index("-i")
    assert argv[i - 2 : i] == ["-f", "mpegts"]
    assert _after(argv, "-map") == ["0:i:256", "0:i:257"]
    # ffmpeg's 5 s default analyzeduration would hold the first part back that long
    assert _after(argv, "-analyzeduration") == ["500000"]
    assert _after(argv, "-fpsprobesize") == ["0"]
    audio_out = argv[argv.index("0:i:257") :]
    assert _after(audio_out, "-bsf:a") == ["aac_adtstoasc"]
    assert "+delay_moov" in _after(audio_out, "-movflags")[0]  # the esds needs the ASC
    flv = live_package_argv("ffmpeg", video_fd=7, audio_fd=9, audio_fragment_seconds=0.3)
    assert "-bsf:a" not in flv and "-analyzeduration" not in flv
    with pytest.raises(MediaError):
        live_package_argv(
            "ffmpeg", video_fd=7, audio_fd=None, audio_fragment_seconds=1,
            input_format="mp4",  # type: ignore[arg-type]
        )  # fmt: skip


def test_transcode_encodes_the_named_tracks_with_keyframes_at_the_gop() -> None:
    from mediaplane.media import LiveTranscode

    argv = live_package_argv(
        "ffmpeg", video_fd=7, audio_fd=9, audio_fragment_seconds=0.465, input_format="mpegts",
        video_map="0:i:256", audio_map="0:i:257",
        transcode=LiveTranscode(video=True, audio=True, gop_seconds=1.0, preset="ultrafast"),
    )  # fmt: skip
    video_out = argv[argv.index("0:i:256") : argv.index("pipe:7") + 1]
    audio_out = argv[argv.index("0:i:257") :]
    assert _after(video_out, "-c:v") == ["libx264"] and "copy" not in video_out
    assert _after(video_out, "-force_key_frames") == ["expr:gte(t,n_forced*1)"]
    assert _after(video_out, "-tune") == ["zerolatency"]
    assert _after(video_out, "-preset") == ["ultrafast"]
    assert _after(audio_out, "-c:a") == ["aac"]
    assert "aac_adtstoasc" not in audio_out  # encoded AAC is raw already
    assert "+delay_moov" not in _after(audio_out, "-movflags")[0]
    only_audio = live_package_argv(
        "ffmpeg", video_fd=7, audio_fd=9, audio_fragment_seconds=0.465, input_format="mpegts",
        transcode=LiveTranscode(audio=True),
    )  # fmt: skip
    assert _after(only_audio, "-c") == ["copy"]  # the video is copied
