"""The on-disk output of one live stream: CMAF segments, LL-HLS parts and their playlists.

:class:`LiveOutput` is handed each track's init segment and fragments (from
:class:`mediaplane.media.Fmp4Reader`) and keeps this layout under ``out_dir``::

    master.m3u8               multivariant playlist (the video rung, audio as EXT-X-MEDIA)
    {rung}/init.mp4           CMAF init segment
    {rung}/{msn}.{part}.m4s   LL-HLS parts ("low" latency only; the last few segments)
    {rung}/{msn}.m4s          complete segments (the concatenation of their parts)
    {rung}/index.m3u8         the media playlist
    {rung}/state.json         {"msn", "part", "ended"}: the newest part, for blocking reloads
    manifest.mpd              a dynamic DASH MPD of the same segments (static once ended),
                              rewritten as each segment completes; in "low" latency, a
                              low-latency DASH MPD rewritten as each segment begins: it
                              announces the segment being written (availabilityTimeOffset,
                              availabilityTimeComplete="false"), which the origin sends as
                              its parts are written (chunked CMAF)

Every file is written atomically (a temporary name, then a rename), and a part before the
playlist that names it, so a reader in another process never sees half of one.

Segmenting: each fragment is one part; a segment is closed at the first independent part
(one that starts with a sync sample) once it is ``segment_target`` seconds long, so every
segment starts at a keyframe. Only the DVR window of segments is kept (older files are
deleted one segment after they leave the playlist, for players still holding the older
playlist; with ``keep_segments``, for a recording, every segment stays on disk) and parts
only for the last :data:`PART_SEGMENTS` segments.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mediaplane.media import (
    AAC_LC,
    MPD,
    AdaptationSet,
    Fragment,
    InitSegment,
    InvalidMedia,
    Map,
    MasterPlaylist,
    Media,
    MediaPlaylist,
    MediaSegment,
    Node,
    Part,
    Period,
    PreloadHint,
    RenditionReport,
    Representation,
    SegmentTemplate,
    ServerControl,
    TimelineEntry,
    Track,
    Variant,
    iso_duration,
)

#: Segments (the newest complete ones) whose parts the playlist lists; their part files
#: are kept one segment longer.
PART_SEGMENTS = 3
#: Segments kept on disk after they left the playlist (a player may hold the older one).
GRACE_SEGMENTS = 1
#: Apple's LL-HLS authoring rule: PART-HOLD-BACK at least three part targets.
PART_HOLD_BACK_PARTS = 3
#: RFC 8216bis: CAN-SKIP-UNTIL at least six target durations.
SKIP_TARGET_DURATIONS = 6
#: The playlist always keeps at least this many target durations (however short the DVR).
MIN_WINDOW_TARGETS = 3
#: An open segment longer than this many segment targets (and at least
#: :data:`MAX_KEYFRAME_GAP` seconds) without a keyframe fails the stream.
KEYFRAME_GAP_TARGETS = 5
MAX_KEYFRAME_GAP = 10.0
#: EXT-X-VERSION: 9 for LL-HLS (the origin's delta updates carry EXT-X-SKIP), else 7.
LL_HLS_VERSION = 9
HLS_VERSION = 7
#: An added rung (a ladder's) with no segment yet is left out of the playlists once the
#: others have this many.
OPTIONAL_WAIT_SEGMENTS = 2
#: Rewrite master.m3u8 when the measured peak bitrate grew by more than this fraction.
BANDWIDTH_SLACK = 0.1
_EPSILON = 1e-3  # seconds: media-time rounding between parts
#: Low-latency DASH: the ServiceDescription latency target, in parts (4 x 1/3 s: 1.3 s),
#: the least and most latency the player steers between, and its catch-up playback rates.
DASH_TARGET_PARTS = 4
DASH_MIN_PARTS = 2
DASH_MAX_TARGETS = 3
DASH_RATES = (0.96, 1.04)
DASH_NS = "urn:mpeg:dash:schema:mpd:2011"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _xs_datetime(at: datetime) -> str:
    """An xs:dateTime in UTC to the millisecond (``2026-12-01T19:00:00.123Z``)."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name in the same directory."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


@dataclass
class _Part:
    index: int
    duration: float  # seconds
    independent: bool
    size: int


@dataclass
class _Pending:
    """The part being built: CMAF chunks not yet published."""

    independent: bool
    chunks: list[bytes] = field(default_factory=list)
    duration: float = 0.0


@dataclass
class _Segment:
    msn: int
    start: float  # media seconds
    pdt: datetime
    parts: list[_Part] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)  # while open
    size: int = 0
    parts_gone: bool = False  # its part files are deleted

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)


@dataclass
class _Rendition:
    name: str
    dir: Path
    init: InitSegment | None = None
    track: Track | None = None
    segments: deque[_Segment] = field(default_factory=deque)  # complete, in the playlist
    retired: deque[_Segment] = field(default_factory=deque)  # left it, files not yet gone
    open: _Segment | None = None
    pending: _Pending | None = None
    next_msn: int = 0
    dropped: float = 0.0  # seconds of leading non-sync video dropped
    peak_bps: float = 0.0
    max_segment: float = 0.0
    ended: bool = False

    @property
    def last(self) -> tuple[int, int] | None:
        """(msn, part index) of the newest part (or last segment without parts)."""
        if self.open is not None and self.open.parts:
            return self.open.msn, len(self.open.parts) - 1
        if self.segments:
            seg = self.segments[-1]
            return seg.msn, len(seg.parts) - 1
        return None


class LiveOutput:
    """Writes one live stream's segments, parts and playlists as fragments arrive.

    Thread-safe: each rendition may be fed from its own thread.

    :param renditions: the rung names, each a directory; ``video`` and ``audio`` are the
        kinds the multivariant playlist knows (video first, audio as its group).
    :param low_latency: LL-HLS parts (``{msn}.{part}.m4s``, EXT-X-PART, blocking reload,
        preload hints); without it only complete segments are published.
    :param part_target: seconds, the EXT-X-PART-INF PART-TARGET.
    :param segment_target: seconds a segment lasts at least before the next keyframe closes it.
    :param dvr_window_seconds: seconds of segments kept in the playlist and on disk.
    :param keep_segments: keep every complete segment on disk, also those that left the
        DVR window (a recorded stream: the recording reuses them); parts still go.
    :param started_at: the wall-clock time of the stream's first media (when its first
        FLV tag came in): the EXT-X-PROGRAM-DATE-TIME of the first fragment. Without it,
        when that fragment arrives here less its duration (later by ffmpeg's start-up).
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        renditions: Sequence[str],
        low_latency: bool,
        part_target: float,
        segment_target: float,
        dvr_window_seconds: float,
        keep_segments: bool = False,
        started_at: datetime | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if part_target <= 0 or segment_target <= 0:
            raise ValueError("part_target and segment_target must be positive seconds")
        self.out_dir = out_dir
        self.low_latency = low_latency
        self.part_target = part_target
        self.segment_target = segment_target
        self.dvr_window = float(dvr_window_seconds)
        self.keep_segments = keep_segments
        self.clock = clock
        self.started_at = started_at
        self._lock = threading.Lock()
        self._anchor: tuple[datetime, float] | None = None
        self._master_bps = 0.0
        self._master_names: tuple[str, ...] = ()
        self._optional: set[str] = set()
        self._dropped: set[str] = set()
        self._renditions = {
            name: _Rendition(name, out_dir / name) for name in dict.fromkeys(renditions)
        }
        for r in self._renditions.values():
            r.dir.mkdir(parents=True, exist_ok=True)

    @property
    def renditions(self) -> tuple[str, ...]:
        return tuple(self._renditions)

    def add_rendition(self, name: str) -> None:
        """One more rung, fed later (a ladder rung): the playlists list it once it has a
        whole segment, and go on without it while it has none and the others have
        :data:`OPTIONAL_WAIT_SEGMENTS` (an encoder that never delivers holds nothing up)."""
        with self._lock:
            if name not in self._renditions:
                r = _Rendition(name, self.out_dir / name)
                r.dir.mkdir(parents=True, exist_ok=True)
                self._renditions[name] = r
                self._optional.add(name)

    def end_rendition(self, name: str) -> None:
        """Rendition ``name`` ends early (its encoder gave up): its playlist gets
        ENDLIST and the master and MPD leave it out; the others go on."""
        with self._lock:
            r = self._renditions.get(name)
            if r is None or r.ended:
                return
            r.ended = True
            self._optional.add(name)
            self._dropped.add(name)
            if r.pending is not None and r.open is not None:
                self._flush_part(r, publish=False)
            if r.open is not None:
                self._close_segment(r)
            if r.track is not None:
                self._publish(r)
            self._master_bps = 0.0  # rewritten without it
            self._write_master()
            self._write_mpd()

    def _listed(self) -> list[_Rendition]:
        """The renditions the master playlist and MPD name: all but a dropped rung, and
        an added one that has no segment yet while the others have enough."""
        rends = [r for r in self._renditions.values() if r.name not in self._dropped]
        main = [r for r in rends if r.name not in self._optional]
        waited = all(len(r.segments) + len(r.retired) >= OPTIONAL_WAIT_SEGMENTS for r in main)
        return [
            r
            for r in rends
            if r.name not in self._optional or (r.track is not None and r.segments) or not waited
        ]

    # -- input ------------------------------------------------------------------------------

    def add_init(self, name: str, init: InitSegment) -> None:
        """The init segment of rendition ``name`` (its first track is the one published)."""
        with self._lock:
            r = self._renditions[name]
            r.init, r.track = init, init.tracks[0]
            write_atomic(r.dir / "init.mp4", init.data)

    def add_fragment(self, name: str, frag: Fragment) -> None:
        """One CMAF chunk of rendition ``name``, added to the part being built.

        A part ends where the next chunk would carry it past the part target (by more than
        half that chunk), and before every video keyframe, so a keyframe always begins a
        part; a segment ends before the first independent part once it has lasted
        ``segment_target``. :class:`InvalidMedia` when video goes too long without a
        keyframe.
        """
        with self._lock:
            r = self._renditions[name]
            if r.track is None:
                raise InvalidMedia(f"{name}: a fragment before the init segment")
            scale = r.track.timescale
            start, duration = frag.decode_time / scale, frag.duration / scale
            video = r.track.kind == "video"
            independent = frag.sync or not video
            limit = max(MAX_KEYFRAME_GAP, KEYFRAME_GAP_TARGETS * self.segment_target)
            if r.open is None and r.pending is None and not independent:
                r.dropped += duration  # a segment must start at a keyframe
                if r.dropped > limit:
                    raise InvalidMedia(_no_keyframe(limit))
                return
            if self._anchor is None:
                wall = self.started_at or self.clock() - timedelta(seconds=duration)
                self._anchor = (wall, start)
            if video and frag.sync and r.pending is not None:
                self._flush_part(r)
            if r.pending is None:
                if independent and r.open is not None:
                    if r.open.duration >= self.segment_target - _EPSILON:
                        self._close_segment(r)
                elif r.open is not None and r.open.duration > limit:
                    raise InvalidMedia(_no_keyframe(limit))
                if r.open is None:
                    r.open = _Segment(r.next_msn, start, self._pdt(start))
                    r.next_msn += 1
                    if self.low_latency:
                        self._write_mpd()  # low-latency DASH announces the new segment
                r.pending = _Pending(independent)
            r.pending.chunks.append(frag.data)
            r.pending.duration += duration
            if r.pending.duration + duration / 2 >= self.part_target - _EPSILON:
                self._flush_part(r)

    def finish(self) -> None:
        """End of the stream: the open parts and segments are completed, playlists get
        ENDLIST."""
        with self._lock:
            for r in self._renditions.values():
                if r.name in self._dropped:
                    continue
                r.ended = True
                if r.pending is not None:
                    self._flush_part(r, publish=False)
                if r.open is not None:
                    self._close_segment(r)
                if r.track is not None:
                    self._publish(r)
            self._write_master()
            self._write_mpd()

    def state(self, name: str) -> tuple[int, int] | None:
        """(msn, part) of the newest part of rendition ``name``, None before the first."""
        with self._lock:
            return self._renditions[name].last

    # -- segments ---------------------------------------------------------------------------

    def _flush_part(self, r: _Rendition, *, publish: bool = True) -> None:
        """The pending part is complete: written, added to the open segment, published."""
        pending, seg = r.pending, r.open
        assert pending is not None
        assert seg is not None
        r.pending = None
        data = b"".join(pending.chunks)
        part = _Part(len(seg.parts), pending.duration, pending.independent, len(data))
        if self.low_latency:
            write_atomic(r.dir / f"{seg.msn}.{part.index}.m4s", data)
        seg.parts.append(part)
        seg.data.append(data)
        seg.size += len(data)
        if part.duration > 0:
            r.peak_bps = max(r.peak_bps, 8 * len(data) / part.duration)
        if publish and self.low_latency:
            self._publish(r)
        if publish:
            self._write_master()

    def _pdt(self, start: float) -> datetime:
        assert self._anchor is not None
        wall, media = self._anchor
        return wall + timedelta(seconds=start - media)

    def _close_segment(self, r: _Rendition) -> None:
        seg = r.open
        assert seg is not None
        r.open = None
        write_atomic(r.dir / f"{seg.msn}.m4s", b"".join(seg.data))
        seg.data = []
        r.segments.append(seg)
        r.max_segment = max(r.max_segment, seg.duration)
        if seg.duration > 0:
            r.peak_bps = max(r.peak_bps, 8 * seg.size / seg.duration)
        window = max(self.dvr_window, MIN_WINDOW_TARGETS * self._target_duration(r))
        total = sum(s.duration for s in r.segments)
        while len(r.segments) > 1 and total - r.segments[0].duration >= window:
            old = r.segments.popleft()
            total -= old.duration
            r.retired.append(old)
        while len(r.retired) > GRACE_SEGMENTS:
            self._delete(r, r.retired.popleft(), parts_only=self.keep_segments)
        if self.low_latency:
            # Part files of the segments whose parts the playlist no longer lists (+1).
            keep = PART_SEGMENTS + 1
            for old in list(r.segments)[:-keep]:
                if old.parts and not old.parts_gone:
                    self._delete(r, old, parts_only=True)
        if not self.low_latency and not r.ended:
            self._publish(r)
            self._write_mpd()  # (low latency: when the next segment begins)

    def _delete(self, r: _Rendition, seg: _Segment, *, parts_only: bool) -> None:
        if self.low_latency and not seg.parts_gone:
            for p in seg.parts:
                (r.dir / f"{seg.msn}.{p.index}.m4s").unlink(missing_ok=True)
            seg.parts_gone = True
        if not parts_only:
            (r.dir / f"{seg.msn}.m4s").unlink(missing_ok=True)

    def _target_duration(self, r: _Rendition) -> int:
        return max(math.ceil(self.segment_target - _EPSILON), round(r.max_segment), 1)

    # -- playlists --------------------------------------------------------------------------

    def _publish(self, r: _Rendition) -> None:
        write_atomic(r.dir / "index.m3u8", bytes(self._playlist(r)))
        last = r.last
        state = {
            "msn": last[0] if last else None,
            "part": (last[1] if last else None) if self.low_latency else None,
            "ended": r.ended,
        }
        write_atomic(r.dir / "state.json", json.dumps(state).encode())

    def _playlist(self, r: _Rendition) -> MediaPlaylist:
        target = self._target_duration(r)
        segments = list(r.segments)
        shown = [*segments, r.open] if self.low_latency and r.open is not None else segments
        lines: list[MediaSegment] = []
        for i, seg in enumerate(shown):
            with_parts = self.low_latency and i >= len(segments) - PART_SEGMENTS
            parts = tuple(
                Part(f"{seg.msn}.{p.index}.m4s", round(p.duration, 5), p.independent)
                for p in seg.parts
            )
            complete = seg is not r.open
            lines.append(
                MediaSegment(
                    uri=f"{seg.msn}.m4s" if complete else None,
                    duration=round(seg.duration, 6) if complete else None,
                    map=Map("init.mp4") if i == 0 else None,
                    program_date_time=seg.pdt,
                    parts=parts if with_parts else (),
                )
            )
        first_msn = shown[0].msn if shown else r.next_msn
        control = hints = reports = None
        if self.low_latency:
            control = ServerControl(
                can_block_reload=True,
                can_skip_until=float(SKIP_TARGET_DURATIONS * target),
                part_hold_back=round(PART_HOLD_BACK_PARTS * self.part_target, 5),
            )
            if not r.ended:
                hints = (PreloadHint("PART", self._next_part(r)),)
            reports = tuple(
                RenditionReport(f"../{o.name}/index.m3u8", *last)
                for o in self._renditions.values()
                if o is not r and (last := o.last) is not None
            )
        return MediaPlaylist(
            target_duration=target,
            segments=tuple(lines),
            version=LL_HLS_VERSION if self.low_latency else HLS_VERSION,
            media_sequence=first_msn,
            independent_segments=True,
            server_control=control,
            part_target=self.part_target if self.low_latency else None,
            preload_hints=hints or (),
            rendition_reports=reports or (),
            endlist=r.ended,
        )

    def _next_part(self, r: _Rendition) -> str:
        """The URI of the part that comes next: the open segment's next one, or the first
        of the next segment when this one is long enough that the next keyframe closes it
        (always so for audio, where every part is independent; for video a guess that
        holds when the keyframe interval is a multiple of the part duration)."""
        seg = r.open
        if seg is None:
            return f"{r.next_msn}.0.m4s"
        if seg.duration >= self.segment_target - _EPSILON:
            return f"{seg.msn + 1}.0.m4s"
        return f"{seg.msn}.{len(seg.parts)}.m4s"

    def _write_mpd(self) -> None:
        """``manifest.mpd``: every rendition's segments in a SegmentTimeline, numbered as in
        HLS (``$Number$`` is the msn), on the clock of the stream's first media
        (availabilityStartTime: the program date-time of media time 0). Dynamic while live;
        static, with its duration, once the stream ended. The origin adds UTCTiming.

        Low latency (DASH-IF low-latency mode with a SegmentTimeline): the timeline also
        lists the segment being written (as long as the one before it until it is
        complete; the next MPD corrects it), available once its first part is
        (availabilityTimeOffset = segment target - part target) and read progressively
        (availabilityTimeComplete="false": dash.js fetches it as a stream, which the
        origin sends part by part), with a ServiceDescription latency target; written as
        each segment begins, and players refresh it every part target."""
        rends = self._listed()
        if self._anchor is None or any(r.track is None or not r.segments for r in rends):
            return
        wall, media_start = self._anchor
        ended = all(r.ended for r in rends)
        live_ll = self.low_latency and not ended
        sets = self._adaptation_sets(rends, live_ll)
        longest = max(r.max_segment for r in rends)
        window = max(sum(s.duration for s in r.segments) for r in rends)
        delay = 2 * longest
        update = self.segment_target
        nodes: tuple[Node, ...] = ()
        if live_ll:
            target = DASH_TARGET_PARTS * self.part_target
            delay = target
            update = self.part_target
            nodes = (self._service_description(target),)
        mpd = MPD(
            periods=(Period(adaptation_sets=tuple(sets), id="0", start="PT0S"),),
            type="static" if ended else "dynamic",
            profiles=(
                "urn:mpeg:dash:profile:isoff-live:2011,http://www.dashif.org/guidelines/low-latency-live-v5"
                if live_ll
                else "urn:mpeg:dash:profile:isoff-live:2011"
            ),
            min_buffer_time=iso_duration(self.part_target if live_ll else self.segment_target),
            availability_start_time=_xs_datetime(wall - timedelta(seconds=media_start)),
            publish_time=None if ended else _xs_datetime(self.clock()),
            minimum_update_period=None if ended else iso_duration(update),
            time_shift_buffer_depth=None if ended else iso_duration(window),
            suggested_presentation_delay=None if ended else iso_duration(delay),
            max_segment_duration=iso_duration(longest),
            media_presentation_duration=iso_duration(self._end(rends)) if ended else None,
            nodes=nodes,
        )
        write_atomic(self.out_dir / "manifest.mpd", bytes(mpd))

    def _service_description(self, target: float) -> Node:
        """DASH-IF's ServiceDescription: the latency (milliseconds) and playback rates the
        player steers by (dash.js catches up to the target by playing faster)."""
        low = DASH_MIN_PARTS * self.part_target
        high = DASH_MAX_TARGETS * target
        latency = Node(
            f"{{{DASH_NS}}}Latency",
            (
                ("target", str(round(target * 1000))),
                ("min", str(round(low * 1000))),
                ("max", str(round(high * 1000))),
            ),
        )
        rate = Node(
            f"{{{DASH_NS}}}PlaybackRate",
            (("min", str(DASH_RATES[0])), ("max", str(DASH_RATES[1]))),
        )
        return Node(f"{{{DASH_NS}}}ServiceDescription", (("id", "0"),), None, (latency, rate))

    @staticmethod
    def _end(rends: list[_Rendition]) -> float:
        """Media seconds from time 0 to the end of the last segment."""
        return max(r.segments[-1].start + r.segments[-1].duration for r in rends)

    def _adaptation_sets(self, rends: list[_Rendition], low_latency: bool) -> list[AdaptationSet]:
        """One AdaptationSet per rendition, except video rungs of one timescale (a
        ladder): one set, a Representation each, the segments all of them have."""
        video = [r for r in rends if r.track is not None and r.track.kind == "video"]
        scales = {r.track.timescale for r in video if r.track is not None}
        if len(video) < 2 or len(scales) != 1:
            return [self._adaptation_set(r, low_latency) for r in rends]
        sets = [self._ladder_set(video, low_latency)]
        return sets + [self._adaptation_set(r, low_latency) for r in rends if r not in video]

    def _template(
        self, r: _Rendition, segs: Sequence[_Segment], media: str, low_latency: bool
    ) -> SegmentTemplate:
        """The SegmentTemplate of ``segs`` (``r``'s, or those every rung of a ladder has);
        in low latency also the segment ``r`` is writing, read progressively."""
        assert r.track is not None
        scale = r.track.timescale
        timeline = [
            TimelineEntry(t=round(s.start * scale), d=round(s.duration * scale)) for s in segs
        ]
        extra: tuple[tuple[str, str], ...] = ()
        if low_latency:
            seg = r.open
            if seg is not None:  # the segment being written, as long as the last one
                last = segs[-1].duration
                length = max(seg.duration, last if last > 0 else self.segment_target)
                timeline.append(TimelineEntry(t=round(seg.start * scale), d=round(length * scale)))
            offset = max(0.0, self.segment_target - self.part_target)
            extra = (
                ("availabilityTimeOffset", f"{offset:.3f}"),
                ("availabilityTimeComplete", "false"),
            )
        return SegmentTemplate(
            media=f"{media}/$Number$.m4s",
            initialization=f"{media}/init.mp4",
            timescale=scale,
            start_number=segs[0].msn,
            timeline=tuple(timeline),
            extra=extra,
        )

    def _ladder_set(self, video: list[_Rendition], low_latency: bool) -> AdaptationSet:
        common = set.intersection(*({s.msn for s in r.segments} for r in video))
        lead = video[0]
        segs = [s for s in lead.segments if s.msn in common] or list(lead.segments)
        reps = []
        for r in sorted(video, key=lambda r: -(r.track.height or 0 if r.track else 0)):
            t = r.track
            assert t is not None
            reps.append(
                Representation(
                    id=r.name,
                    bandwidth=max(1, round(r.peak_bps)),
                    codecs=t.codec,
                    width=t.width,
                    height=t.height,
                )
            )
        return AdaptationSet(
            representations=tuple(reps),
            content_type="video",
            mime_type="video/mp4",
            segment_alignment="true",
            start_with_sap="1",
            segment_template=self._template(lead, segs, "$RepresentationID$", low_latency),
        )

    def _adaptation_set(self, r: _Rendition, low_latency: bool) -> AdaptationSet:
        track = r.track
        assert track is not None
        video = track.kind == "video"
        rep = Representation(
            id=r.name,
            bandwidth=max(1, round(r.peak_bps)),
            codecs=track.codec,
            width=track.width if video else None,
            height=track.height if video else None,
            audio_sampling_rate=None if video else str(track.timescale),
        )
        return AdaptationSet(
            representations=(rep,),
            content_type=track.kind,
            mime_type=f"{'video' if video else 'audio'}/mp4",
            segment_alignment="true",
            start_with_sap="1",
            segment_template=self._template(r, r.segments, r.name, low_latency),
        )

    def _write_master(self) -> None:
        rends = self._listed()
        if any(r.track is None or not (r.segments or r.retired) for r in rends):
            # Not before every rendition has a whole segment: hls.js gives up on a media
            # playlist that lists only parts (levelEmptyError), so the stream is not
            # playable until then.
            return
        bps = sum(r.peak_bps for r in rends)
        names = tuple(r.name for r in rends)
        grown = bps > self._master_bps * (1 + BANDWIDTH_SLACK)
        if self._master_bps and not grown and names == self._master_names:
            return
        self._master_bps, self._master_names = bps, names
        write_atomic(self.out_dir / "master.m3u8", bytes(self._master(rends, bps)))

    @staticmethod
    def _master(rends: list[_Rendition], bps: float) -> MasterPlaylist:
        video = [r for r in rends if r.track is not None and r.track.kind == "video"]
        audio = [r for r in rends if r.track is not None and r.track.kind == "audio"]
        media = tuple(
            Media(
                "AUDIO",
                "audio",
                a.name,
                default=i == 0,
                autoselect=True,
                uri=f"{a.name}/index.m3u8",
            )
            for i, a in enumerate(audio)
        )
        audio_codec = audio[0].track.codec if audio and audio[0].track else None
        bandwidth = max(1, math.ceil(bps))
        audio_bps = max((a.peak_bps for a in audio), default=0.0)
        if video:
            variants = []
            for v in sorted(video, key=lambda v: -(v.track.height or 0 if v.track else 0)):
                if len(video) > 1:  # a ladder: each variant its own rung and the audio
                    bandwidth = max(1, math.ceil(v.peak_bps + audio_bps))
                assert v.track is not None
                codecs = ",".join(c for c in (v.track.codec, audio_codec) if c)
                res = (v.track.width, v.track.height)
                variants.append(
                    Variant(
                        f"{v.name}/index.m3u8",
                        bandwidth,
                        codecs=codecs,
                        resolution=res if res[0] and res[1] else None,  # type: ignore[arg-type]
                        audio="audio" if audio else None,
                    )
                )
            return MasterPlaylist(tuple(variants), media, HLS_VERSION, independent_segments=True)
        only = Variant(f"{audio[0].name}/index.m3u8", bandwidth, codecs=audio_codec or AAC_LC)
        return MasterPlaylist((only,), (), HLS_VERSION, independent_segments=True)


def _no_keyframe(limit: float) -> str:
    return (
        f"the video had no keyframe for {limit:.0f} s: set the encoder's keyframe interval"
        " to 1-2 seconds"
    )


__all__ = ["LiveOutput", "write_atomic"]
