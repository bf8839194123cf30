"""Which init segment a live thumbnail decodes with: the EXT-X-MAP in force for the newest
segment (after a reconnect that is the new publish's ``init-1.mp4``), on a playlist
LiveOutput wrote for two publishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from mediaplane.delivery._live_thumbs import _newest_segment
from mediaplane.live import LiveOutput
from mediaplane.live._output import PublishFeed
from mediaplane.media import Fragment, InitSegment, Track

SCALE = 90_000
FRAME = SCALE // 30
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _frames(out: LiveOutput | PublishFeed, count: int, *, gop: int) -> None:
    for n in range(count):
        frag = Fragment(n.to_bytes(4, "big"), n + 1, 1, n * FRAME, FRAME, 1, n % gop == 0)
        out.add_fragment("video", frag)


def test_the_newest_segment_names_the_init_of_its_publish(tmp_path: Path) -> None:
    out = LiveOutput(
        tmp_path,
        renditions=["video"],
        low_latency=True,
        part_target=0.5,
        segment_target=2.0,
        dvr_window_seconds=60,
        clock=lambda: START,
        started_at=START,
    )
    track = Track(1, "video", SCALE, "avc1.64001f", 1280, 720)
    out.add_init("video", InitSegment(b"init", (track,)))
    first = PublishFeed(out, out.current_publish)
    _frames(first, 130, gop=60)
    before = _newest_segment(tmp_path / "video")
    assert before is not None and before[1] == "init.mp4"

    feed = out.begin_publish(["video"], started_at=START + timedelta(seconds=10))
    feed.add_init("video", InitSegment(b"init2", (track,)))
    _frames(feed, 130, gop=60)
    msn, init = _newest_segment(tmp_path / "video") or (None, None)
    assert init == "init-1.mp4" and msn is not None and msn > before[0]
    assert (tmp_path / "video" / init).read_bytes() == b"init2"
