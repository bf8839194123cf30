"""The low-latency DASH MPD LiveOutput writes: the segment being written is announced
(availabilityTimeOffset, availabilityTimeComplete="false") with a ServiceDescription latency
target; standard latency and an ended stream keep the plain SegmentTimeline MPD."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mediaplane.live import LiveOutput
from mediaplane.media import MPD, Fragment, InitSegment, Track
from mediaplane.media._dash import parse_iso_duration

SCALE = 90_000
FRAME = SCALE // 30
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DASH = "{urn:mpeg:dash:schema:mpd:2011}"


def _fed(tmp_path: Path, frames: int, *, low: bool) -> LiveOutput:
    out = LiveOutput(
        tmp_path,
        renditions=["video"],
        low_latency=low,
        part_target=0.5,
        segment_target=2.0,
        dvr_window_seconds=60,
        clock=lambda: START,
    )
    out.add_init("video", InitSegment(b"init", (Track(1, "video", SCALE, "avc1.64001f", 64, 36),)))
    for n in range(frames):  # a keyframe every second
        out.add_fragment("video", Fragment(b"x", n + 1, 1, n * FRAME, FRAME, 1, n % 30 == 0))
    return out


def _mpd(tmp_path: Path) -> MPD:
    return MPD.parse((tmp_path / "manifest.mpd").read_bytes())


def test_low_latency_announces_the_segment_being_written(tmp_path: Path) -> None:
    _fed(tmp_path, 135, low=True)  # 4.5 s: segments 0 and 1 complete, 2 open (0.5 s)
    mpd = _mpd(tmp_path)
    template = mpd.periods[0].adaptation_sets[0].segment_template
    assert template is not None
    attrs = dict(template.extra)
    assert attrs == {"availabilityTimeOffset": "1.500", "availabilityTimeComplete": "false"}
    # Segments 0, 1 and the open 2 at its expected length (the segment target).
    assert template.start_number == 0
    assert [(n, t / SCALE, d / SCALE) for n, t, d in template.numbers()] == [
        (0, 0.0, 2.0),
        (1, 2.0, 2.0),
        (2, 4.0, 2.0),
    ]
    assert mpd.type == "dynamic"
    assert parse_iso_duration(mpd.minimum_update_period or "") == 0.5
    (service,) = [n for n in mpd.nodes if n.tag == f"{DASH}ServiceDescription"]
    latency = {c.tag: dict(c.attributes) for c in service.children}[f"{DASH}Latency"]
    assert int(latency["min"]) <= int(latency["target"]) == 2000 <= int(latency["max"])
    # The segment being written has parts on disk and no complete file yet.
    assert (tmp_path / "video" / "2.0.m4s").is_file()
    assert not (tmp_path / "video" / "2.m4s").exists()


def test_standard_latency_and_ended_streams_announce_complete_segments_only(
    tmp_path: Path,
) -> None:
    _fed(tmp_path / "std", 135, low=False)
    std = _mpd(tmp_path / "std")
    template = std.periods[0].adaptation_sets[0].segment_template
    assert template is not None and template.extra == ()
    assert [n for n, _, _ in template.numbers()] == [0, 1]  # not the open 2
    assert not std.nodes

    out = _fed(tmp_path / "low", 135, low=True)
    out.finish()
    ended = _mpd(tmp_path / "low")
    template = ended.periods[0].adaptation_sets[0].segment_template
    assert ended.type == "static" and template is not None and template.extra == ()
    assert [d / SCALE for _, _, d in template.numbers()] == [2.0, 2.0, 0.5]
    assert not ended.nodes
