"""LL-HLS delta updates (``_HLS_skip``) on playlists LiveOutput writes: what lies wholly past
CAN-SKIP-UNTIL (6 target durations) from the playlist's end becomes one EXT-X-SKIP after the
header; the first remaining segment keeps the EXT-X-MAP and program date-time in force; the
skip stops before a discontinuity; what offers no delta is answered whole; the origin
answers 400 to another value, and a signed id's carry token reaches the delta's URIs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mediaplane.delivery._live import LiveOrigin
from mediaplane.delivery._live_delta import delta_update
from mediaplane.live import LiveOutput, LivePlayback
from mediaplane.live._output import PublishFeed
from mediaplane.media import Fragment, InitSegment, MediaPlaylist, Track
from mediaplane.media._hls_tags import Skip

SCALE = 90_000
FRAME = SCALE // 30  # 30 fps: 2 s segments (a keyframe every 60 frames), 0.5 s parts
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TRACK = Track(1, "video", SCALE, "avc1.64001f", 1280, 720)


def _output(tmp_path: Path, **kw: object) -> LiveOutput:
    args: dict[str, object] = {
        "renditions": ["video"],
        "low_latency": True,
        "part_target": 0.5,
        "segment_target": 2.0,
        "dvr_window_seconds": 120,
        "clock": lambda: START,
        "started_at": START,
    }
    args.update(kw)
    out = LiveOutput(tmp_path, **args)  # type: ignore[arg-type]
    out.add_init("video", InitSegment(b"init", (TRACK,)))
    return out


def _frames(out: LiveOutput | PublishFeed, count: int, first: int = 0) -> None:
    for n in range(first, first + count):
        data = n.to_bytes(4, "big")
        out.add_fragment("video", Fragment(data, n + 1, 1, n * FRAME, FRAME, 1, n % 60 == 0))


def _body(tmp_path: Path) -> bytes:
    return (tmp_path / "video" / "index.m3u8").read_bytes()


def _expected(full: MediaPlaylist, n: int) -> bytes:
    """``full`` with its first ``n`` segments skipped, the map of segment 0 on the first
    remaining one (as the models render it: the canonical text)."""
    rest = full.segments[n:]
    first = rest[0] if rest[0].map else replace(rest[0], map=full.segments[0].map)
    return bytes(replace(full, skip=Skip(n), segments=(first, *rest[1:])))


def test_segments_wholly_past_the_boundary_are_skipped(tmp_path: Path) -> None:
    out = _output(tmp_path)
    _frames(out, 945)  # 31.5 s: segments 0-14 complete, 1.5 s of segment 15's parts
    body = _body(tmp_path)
    full = MediaPlaylist.parse(body)
    assert full.server_control is not None
    assert full.server_control.can_skip_until == 6 * full.target_duration == 12
    # Segment k ends at 2(k+1) s: 8 ends 13.5 s before the end, 9 ends 11.5 s before.
    delta = delta_update(body)
    assert delta == _expected(full, 9)
    parsed = MediaPlaylist.parse(delta)
    assert parsed.media_sequence == full.media_sequence == 0
    assert parsed.segments[0].map is not None and parsed.segments[0].map.uri == "init.mp4"
    assert parsed.segments[0].program_date_time == START + timedelta(seconds=18)
    assert parsed.preload_hints == full.preload_hints
    text = delta.decode().split("\n")
    assert (
        text.index("#EXT-X-SKIP:SKIPPED-SEGMENTS=9") == text.index('#EXT-X-MAP:URI="init.mp4"') - 1
    )
    # Half a second later segment 9 ends exactly 12 s before the end: it goes too.
    _frames(out, 15, first=945)
    full = MediaPlaylist.parse(_body(tmp_path))
    assert delta_update(_body(tmp_path)) == _expected(full, 10)


def test_the_map_and_date_in_force_are_repeated(tmp_path: Path) -> None:
    out = _output(tmp_path)
    _frames(out, 945)
    body = _body(tmp_path)
    # A map change among the skipped segments (no discontinuity), no dates after the first.
    lines = body.decode().split("\n")
    lines.insert(lines.index("4.m4s") - 5, '#EXT-X-MAP:URI="init-x.mp4"')
    pdts = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-PROGRAM-DATE-TIME")]
    lines = [line for i, line in enumerate(lines) if i not in pdts[1:]]
    delta = MediaPlaylist.parse(delta_update("\n".join(lines).encode()))
    assert delta.skip == Skip(9)
    first = delta.segments[0]
    assert first.map is not None and first.map.uri == "init-x.mp4"
    assert first.program_date_time == START + timedelta(seconds=18)
    assert [s.program_date_time for s in delta.segments[1:]] == [None] * 6


def test_the_skip_stops_before_a_discontinuity(tmp_path: Path) -> None:
    out = _output(tmp_path)
    _frames(out, 600)  # segments 0-9 (20 s), the 10th complete at the reconnect
    feed = out.begin_publish(["video"], started_at=START + timedelta(seconds=21))
    feed.add_init("video", InitSegment(b"init2", (TRACK,)))
    _frames(feed, 645)  # segments 10-19 of the new publish, 1.5 s of 20
    body = _body(tmp_path)
    full = MediaPlaylist.parse(body)
    assert [s.discontinuity for s in full.segments].index(True) == 10
    # 14 segments end 12 s before the end; the discontinuity's segment and those after stay.
    delta = delta_update(body)
    assert delta == _expected(full, 10)
    parsed = MediaPlaylist.parse(delta)
    assert parsed.segments[0].discontinuity
    assert parsed.segments[0].map is not None and parsed.segments[0].map.uri == "init-1.mp4"
    assert parsed.discontinuity_sequence == full.discontinuity_sequence
    # A discontinuity on the first segment: nothing can be skipped.
    lines = body.split(b"\n")
    lines.insert(lines.index(b'#EXT-X-MAP:URI="init.mp4"'), b"#EXT-X-DISCONTINUITY")
    first = b"\n".join(lines)
    assert delta_update(first) is first


def test_what_offers_no_delta_is_answered_whole(tmp_path: Path) -> None:
    out = _output(tmp_path / "short")
    _frames(out, 390)  # 13 s: no segment ends 12 s before the end
    short = _body(tmp_path / "short")
    assert delta_update(short) is short
    out.finish()
    ended = _body(tmp_path / "short")
    assert b"#EXT-X-ENDLIST" in ended
    assert delta_update(ended) is ended
    std = _output(tmp_path / "std", low_latency=False)
    _frames(std, 945)
    standard = _body(tmp_path / "std")
    assert b"CAN-SKIP-UNTIL" not in standard
    assert delta_update(standard) is standard
    ll = _output(tmp_path / "ll")
    _frames(ll, 945)
    body = _body(tmp_path / "ll")
    keyed = body.replace(b"#EXT-X-MAP", b'#EXT-X-KEY:METHOD=AES-128,URI="k"\n#EXT-X-MAP', 1)
    assert delta_update(keyed) is keyed
    again = delta_update(body)
    assert delta_update(again) is again


async def _get(origin: LiveOrigin, folder: Path, query: str, carry: str = "") -> Any:
    live = LivePlayback("ls", "public", "active", "s", "low", 120)
    scope = {"type": "http", "method": "GET", "query_string": query.encode(), "headers": []}
    return await origin._media_playlist(scope, folder, "GET", live, carry)


async def test_the_origin_answers_the_delta(tmp_path: Path) -> None:
    out = _output(tmp_path)
    _frames(out, 945)
    folder = tmp_path / "video"
    origin = LiveOrigin(None, [])  # type: ignore[arg-type]
    for bad in ("NO", "yes", "v3"):
        r = await _get(origin, folder, f"_HLS_skip={bad}")
        assert r.status_code == 400, bad
    full = await _get(origin, folder, "")
    assert full.body == _body(tmp_path)
    delta = delta_update(_body(tmp_path))
    for query in ("_HLS_skip=YES", "_HLS_skip=v2", "_HLS_msn=15&_HLS_part=2&_HLS_skip=YES"):
        r = await _get(origin, folder, query)
        assert (r.status_code, r.body) == (200, delta), query
    # A new version of the playlist: a new delta (one more segment skipped).
    _frames(out, 15, first=945)
    r = await _get(origin, folder, "_HLS_skip=YES")
    assert MediaPlaylist.parse(r.body).skip == Skip(10)
    # A signed id's carry token on every URI of the delta, the repeated map's too.
    r = await _get(origin, folder, "_HLS_skip=YES", carry="?st=abc")
    assert r.headers["cache-control"].startswith("private")
    signed = MediaPlaylist.parse(r.body)
    uris = [s.uri for s in signed.segments if s.uri] + [s.map.uri for s in signed.segments if s.map]
    uris += [p.uri for s in signed.segments for p in s.parts] + [
        h.uri for h in signed.preload_hints
    ]
    assert signed.segments[0].map is not None
    assert uris and all(u.endswith(".mp4?st=abc") or u.endswith(".m4s?st=abc") for u in uris)
