"""The studio's live health partial shows the input on, and whether (and why) the stream is
transcoded, from the health figures on the resource."""

from __future__ import annotations

from pathlib import Path

import jinja2

import mediaplane.web

TEMPLATES = Path(mediaplane.web.__file__).with_name("templates")


def _render(health: dict[str, object]) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    stream = {"id": "ls1", "status": "active", "health": health}
    return env.get_template("_studio_live_health.html").render(s=stream, poll=2)


def test_transcoded_backup_input_with_a_restart() -> None:
    html = _render({
        "status": "healthy", "input": "backup", "packager_restarts": 1, "mode": "transcode",
        "mode_reason": "the video is HEVC, not H.264: transcoded to H.264", "ladder": [],
        "input_bitrate": 1_000_000, "dropped_frames": 0, "audio": False,
    })  # fmt: skip
    assert '<td id="h-input">backup · packager restarted 1×</td>' in html
    assert "transcoded: the video is HEVC, not H.264: transcoded to H.264" in html


def test_passed_through_primary() -> None:
    html = _render({
        "status": "healthy", "input": "primary", "packager_restarts": 0, "mode": "passthrough",
        "mode_reason": None, "ladder": [], "input_bitrate": 0, "dropped_frames": 0,
        "audio": True,
    })  # fmt: skip
    assert '<td id="h-input">primary</td>' in html
    assert '<td id="h-mode">passed through</td>' in html
