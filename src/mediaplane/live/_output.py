"""The on-disk output of one live stream: CMAF segments, LL-HLS parts and their playlists.

:class:`LiveOutput` is handed each track's init segment and fragments (from
:class:`mediaplane.media.Fmp4Reader`) and keeps this layout under ``out_dir``::

    master.m3u8               multivariant playlist (the video rung, audio as EXT-X-MEDIA)
    {rung}/init.mp4           CMAF init segment (of the first publish)
    {rung}/init-{n}.mp4       the init segment of publish ``n`` of the session (a reconnect,
                              the slate, a backup input): its codec parameters may differ
    {rung}/{msn}.{part}.m4s   LL-HLS parts ("low" latency only; the last few segments)
    {rung}/{msn}.m4s          complete segments (the concatenation of their parts)
    {rung}/index.m3u8         the media playlist
    {rung}/state.json         {"msn", "part", "ended"}: the newest part, for blocking reloads
    manifest.mpd              a dynamic DASH MPD of the same segments (static once ended),
                              rewritten as each segment completes; a Period per publish;
                              in "low" latency, a low-latency DASH MPD rewritten as each
                              segment begins: it announces the segment being written
                              (availabilityTimeOffset, availabilityTimeComplete="false"),
                              which the origin sends as its parts are written (chunked CMAF)
    publishes.json            each publish's init names and segment numbers (the recording
                              reads it)

Every file is written atomically (a temporary name, then a rename), and a part before the
playlist that names it, so a reader in another process never sees half of one.

Segmenting: each fragment is one part; a segment is closed at the first independent part
(one that starts with a sync sample) once it is ``segment_target`` seconds long, so every
segment starts at a keyframe. Only the DVR window of segments is kept (older files are
deleted one segment after they leave the playlist, for players still holding the older
playlist; with ``keep_segments``, for a recording, every segment stays on disk) and parts
only for the last :data:`PART_SEGMENTS` segments.

A live session outlives its publisher: each publish (the first one, a reconnect, the slate
shown while the publisher is away, a backup input taking over) feeds the same output through
its own :meth:`LiveOutput.begin_publish` handle. Segment and part numbers continue, so a
player's playlist reloads (and blocking reloads) go on across the change; the first segment
of a publish carries ``EXT-X-DISCONTINUITY`` and its own ``EXT-X-MAP`` (a new init name), its
program date-time continues on the wall clock (never before the end of the previous
publish), and the MPD gets a new Period for it. ``EXT-X-DISCONTINUITY-SEQUENCE`` counts the
discontinuities that left the playlist.
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
    CencWriter,
    ContentProtection,
    Fragment,
    InitSegment,
    InvalidMedia,
    Key,
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
    content_protection,
    iso_duration,
    sample_key,
)

from ._protection import LICENCE_PLACEHOLDER, LiveProtection

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
class _Publish:
    """One publish of the session (its media clock starts anew)."""

    index: int
    slate: bool = False
    started_at: datetime | None = None
    anchor: tuple[datetime, float] | None = None  # (wall clock, media seconds) of its start
    tracks: dict[str, Track] = field(default_factory=dict)
    first_msn: dict[str, int] = field(default_factory=dict)
    last_msn: dict[str, int] = field(default_factory=dict)
    start_msn: dict[str, int] = field(default_factory=dict)  # each rendition's next at begin
    protection: LiveProtection | None = None  # its segments are encrypted
    first_epoch: int | None = None  # the key epoch of its first segment

    def init_name(self, epoch: int | None = None) -> str:
        """Its init segment's name; a protected publish has one per key epoch."""
        base = "init" if self.index == 0 else f"init-{self.index}"
        return f"{base}.mp4" if epoch is None else f"{base}-k{epoch}.mp4"


@dataclass
class _Segment:
    msn: int
    start: float  # media seconds (of its publish's clock)
    pdt: datetime
    publish: int = 0
    discontinuity: bool = False  # the first segment of a later publish
    epoch: int | None = None  # its key epoch (None: clear)
    key: tuple[str, bytes] | None = None  # (scheme, KID) it is encrypted with
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
    discontinuity: bool = False  # the next segment begins a new publish
    discontinuities_gone: int = 0  # EXT-X-DISCONTINUITY tags that left the playlist
    frame: float = 0.0  # seconds, the newest video frame's duration
    writer: CencWriter | None = None  # encrypts the current publish's key epoch
    writer_at: tuple[int, int] | None = None  # (publish, epoch) of ``writer``

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
        protection: LiveProtection | None = None,
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
        self._anchor: tuple[datetime, float] | None = None  # the first publish's, for the MPD
        self._publishes = [_Publish(0, started_at=started_at, protection=protection)]
        #: (scheme, key epoch): (KID, key) — in memory for the session's life only.
        self._keys: dict[tuple[str, int], tuple[bytes, bytes]] = {}
        self._last_end: datetime | None = None  # wall clock where the last publish ended
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

    @property
    def current_publish(self) -> int:
        """The index of the publish fed now (0 for the first)."""
        return len(self._publishes) - 1

    @property
    def inputs(self) -> tuple[str, ...]:
        """The renditions every publish has (the input's tracks; not the ladder's rungs)."""
        return tuple(n for n in self._renditions if n not in self._optional)

    def add_rendition(self, name: str) -> None:
        """One more rung, fed later (a ladder rung): the playlists list it once it has a
        whole segment of the current publish, and go on without it while it has none and
        the others have :data:`OPTIONAL_WAIT_SEGMENTS` of it (an encoder that never
        delivers holds nothing up). A rung added in a later publish is numbered from that
        publish's first segment (the ladder's segment N covers the source's N) and gets
        that publish's init segment."""
        with self._lock:
            if name in self._renditions:
                return
            r = _Rendition(name, self.out_dir / name)
            r.dir.mkdir(parents=True, exist_ok=True)
            source = self._renditions.get("video")
            publish = self._publishes[-1]
            if source is not None and publish.index > 0:
                r.next_msn = publish.start_msn.get("video", 0)
                # Its discontinuity count is the source's at this publish's first segment
                # (players line variants up by it).
                shown = [*source.segments, *([source.open] if source.open else [])]
                r.discontinuities_gone = (
                    source.discontinuities_gone
                    + sum(s.discontinuity for s in shown)
                    + source.discontinuity
                )
            self._renditions[name] = r
            self._optional.add(name)

    def end_rendition(self, name: str) -> None:
        """Rendition ``name`` ends early (its encoder gave up): its playlist gets
        ENDLIST and the master and MPD leave it out; the others go on (a later publish's
        ladder may bring it back)."""
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
        an added one that has no segment of the current publish while the others have
        enough (a rung the new publish's ladder does not feed leaves the master)."""
        current = len(self._publishes) - 1
        rends = [r for r in self._renditions.values() if r.name not in self._dropped]
        main = [r for r in rends if r.name not in self._optional]
        waited = all(
            sum(s.publish == current for s in (*r.retired, *r.segments)) >= OPTIONAL_WAIT_SEGMENTS
            for r in main
        )
        return [
            r
            for r in rends
            if r.name not in self._optional
            or (r.track is not None and any(s.publish == current for s in r.segments))
            or not waited
        ]

    # -- input ------------------------------------------------------------------------------

    def begin_publish(
        self,
        renditions: Sequence[str],
        *,
        started_at: datetime | None = None,
        slate: bool = False,
        protection: LiveProtection | None | bool = True,
    ) -> PublishFeed:
        """A new publish continues the stream (a reconnect, the slate, a backup input): what
        the previous one left open is completed, and the handle returned feeds the new one.
        Fragments fed through an older handle from then on are dropped.

        :param renditions: the tracks it has: the same as the session's (a publish cannot
            add or drop a track the players already have a playlist for).
        :param started_at: the wall clock of its first media (see the class).
        :param slate: it is the slate, not a publisher (the recording leaves it out).
        :param protection: how its segments are encrypted (None: clear); ``True``: as the
            previous publish's.
        :raises InvalidMedia: the tracks differ from the session's.
        """
        want, have = sorted(dict.fromkeys(renditions)), sorted(self.inputs)
        if want != have:
            raise InvalidMedia(
                f"this live session has {' and '.join(have)}, the publisher sends "
                f"{' and '.join(want) or 'nothing'}: reconnect with the same tracks"
            )
        with self._lock:
            self._end_current()
            for r in self._renditions.values():
                r.ended = False  # a publish after finish (late in the window): live again
            self._dropped.clear()  # a rung the new publish's ladder feeds is listed again
            started = _Publish(
                len(self._publishes),
                slate=slate,
                started_at=started_at,
                protection=self._publishes[-1].protection
                if protection is True
                else (protection or None),
            )
            started.start_msn = {r.name: r.next_msn for r in self._renditions.values()}
            self._publishes.append(started)
            for r in self._renditions.values():
                if r.segments or r.retired or r.next_msn:
                    r.discontinuity = True
            self._write_publishes()
            return PublishFeed(self, started.index)

    def standby_feed(self, renditions: Sequence[str]) -> PublishFeed:
        """A feed for a backup input that waits (see :class:`PublishFeed`); its tracks must
        be the session's (:class:`InvalidMedia` otherwise)."""
        want, have = sorted(dict.fromkeys(renditions)), sorted(self.inputs)
        if want != have:
            raise InvalidMedia(
                f"this live session has {' and '.join(have)}, the backup input sends "
                f"{' and '.join(want) or 'nothing'}: send the same tracks as the primary"
            )
        return PublishFeed(self, None, renditions)

    def end_publish(self, index: int) -> None:
        """Publish ``index`` is over (its publisher left, the slate stopped): its open part
        and segments are completed and published, without ENDLIST (the session goes on or
        :meth:`finish` ends it)."""
        with self._lock:
            if index == len(self._publishes) - 1:
                self._end_current()

    def _end_current(self) -> None:
        """Complete the current publish's open parts and segments (under the lock)."""
        publish = self._publishes[-1]
        for r in self._renditions.values():
            if r.pending is not None:
                self._flush_part(r, publish=False)
            if r.open is not None:
                self._close_segment(r)
            if r.track is not None and not self.low_latency:
                self._publish(r)
            # LL-HLS: the playlist (and state.json) go on showing the open segment until
            # the next publish's first part, or finish(). A live playlist whose last entry
            # is a complete segment makes hls.js take an empty "next" segment with the old
            # discontinuity number and init segment, which it then keeps for the new
            # publish's first segment (a decode error in the browser).
            last = r.segments[-1] if r.segments else None
            if last is not None and last.publish == publish.index:
                end = last.pdt + timedelta(seconds=last.duration)
                self._last_end = end if self._last_end is None else max(self._last_end, end)
        self._write_master()
        self._write_mpd()
        self._write_publishes()

    def frame_rate(self) -> float | None:
        """Frames per second of the newest video (None without video yet)."""
        with self._lock:
            for r in self._renditions.values():
                if r.track is not None and r.track.kind == "video" and r.frame > 0:
                    return 1 / r.frame
            return None

    def tracks(self) -> dict[str, Track]:
        """The newest track of each rendition that has one."""
        with self._lock:
            return {n: r.track for n, r in self._renditions.items() if r.track is not None}

    def add_init(self, name: str, init: InitSegment) -> None:
        """The init segment of rendition ``name`` (its first track is the one published)."""
        self._add_init(name, init, len(self._publishes) - 1)

    def _add_init(self, name: str, init: InitSegment, index: int) -> None:
        with self._lock:
            if index != len(self._publishes) - 1:
                return  # a publish that was superseded
            r = self._renditions[name]
            r.init, r.track = init, init.tracks[0]
            publish = self._publishes[index]
            publish.tracks[name] = r.track
            r.writer = r.writer_at = None
            if publish.protection is None:  # else one per key epoch, as its segments begin
                write_atomic(r.dir / publish.init_name(), init.data)

    def add_fragment(self, name: str, frag: Fragment) -> None:
        """One CMAF chunk of rendition ``name`` (see :meth:`_add_fragment`)."""
        self._add_fragment(name, frag, len(self._publishes) - 1)

    def _add_fragment(self, name: str, frag: Fragment, index: int) -> None:
        """One CMAF chunk of rendition ``name``, added to the part being built.

        A part ends where the next chunk would carry it past the part target (by more than
        half that chunk), and before every video keyframe, so a keyframe always begins a
        part; a segment ends before the first independent part once it has lasted
        ``segment_target``. :class:`InvalidMedia` when video goes too long without a
        keyframe.
        """
        with self._lock:
            if index != len(self._publishes) - 1:
                return  # a publish that was superseded
            r = self._renditions[name]
            publish = self._publishes[index]
            if r.track is None or name not in publish.tracks:
                raise InvalidMedia(f"{name}: a fragment before the init segment")
            scale = r.track.timescale
            start, duration = frag.decode_time / scale, frag.duration / scale
            video = r.track.kind == "video"
            if video and duration > 0:
                r.frame = duration
            independent = frag.sync or not video
            limit = max(MAX_KEYFRAME_GAP, KEYFRAME_GAP_TARGETS * self.segment_target)
            if r.open is None and r.pending is None and not independent:
                r.dropped += duration  # a segment must start at a keyframe
                if r.dropped > limit:
                    raise InvalidMedia(_no_keyframe(limit))
                return
            if publish.anchor is None:
                wall = publish.started_at or self.clock() - timedelta(seconds=duration)
                if self._last_end is not None:  # never before the previous publish ended
                    wall = max(wall, self._last_end)
                publish.anchor = (wall, start)
                if self._anchor is None:
                    self._anchor = publish.anchor
            if video and frag.sync and r.pending is not None:
                self._flush_part(r)
            if r.pending is None:
                if independent and r.open is not None:
                    if r.open.duration >= self.segment_target - _EPSILON:
                        self._close_segment(r)
                elif r.open is not None and r.open.duration > limit:
                    raise InvalidMedia(_no_keyframe(limit))
                if r.open is None:
                    r.open = _Segment(
                        r.next_msn,
                        start,
                        self._pdt(publish, start),
                        publish=index,
                        discontinuity=r.discontinuity,
                    )
                    r.discontinuity = False
                    if publish.protection is not None:
                        self._key_segment(publish, r.open)
                    publish.first_msn.setdefault(name, r.next_msn)
                    publish.last_msn[name] = r.next_msn
                    r.next_msn += 1
                    if self.low_latency:
                        self._write_mpd()  # low-latency DASH announces the new segment
                r.pending = _Pending(independent)
            data = frag.data
            if r.open is not None and r.open.key is not None:
                data = self._encrypt(r, publish, r.open, frag)
            r.pending.chunks.append(data)
            r.pending.duration += duration
            if r.pending.duration + duration / 2 >= self.part_target - _EPSILON:
                self._flush_part(r)

    def _key_segment(self, publish: _Publish, seg: _Segment) -> None:
        """Give a protected publish's new segment its key epoch and key (made in the key
        store the first time the epoch comes up: every rendition's segment ``msn`` shares
        it)."""
        protection = publish.protection
        assert protection is not None
        epoch = protection.epoch(seg.msn)
        found = self._keys.get((protection.scheme, epoch))
        if found is None:
            found = self._keys[(protection.scheme, epoch)] = protection.new_key()
        seg.epoch, seg.key = epoch, (protection.scheme, found[0])
        if publish.first_epoch is None:
            publish.first_epoch = epoch

    def _encrypt(self, r: _Rendition, publish: _Publish, seg: _Segment, frag: Fragment) -> bytes:
        """``frag`` encrypted with ``seg``'s key; the first of a key epoch (of a publish)
        writes that epoch's init segment (its ``tenc`` names the KID)."""
        assert seg.key is not None
        assert seg.epoch is not None
        assert r.init is not None
        at = (publish.index, seg.epoch)
        if r.writer is None or r.writer_at != at:
            scheme, kid = seg.key
            key = self._keys[(scheme, seg.epoch)][1]
            r.writer, r.writer_at = CencWriter(scheme, kid, key, r.init), at
            write_atomic(r.dir / publish.init_name(seg.epoch), r.writer.init_segment().data)
        return r.writer.fragment(frag).data

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
            self._write_publishes()

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

    @staticmethod
    def _pdt(publish: _Publish, start: float) -> datetime:
        assert publish.anchor is not None
        wall, media = publish.anchor
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
            r.discontinuities_gone += old.discontinuity
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
        if not r.ended and seg.msn == self._publishes[seg.publish].first_msn.get(r.name):
            self._write_publishes()  # a publish's first segment (the rest at its end)

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
        previous: _Segment | None = None
        for i, seg in enumerate(shown):
            with_parts = self.low_latency and i >= len(segments) - PART_SEGMENTS
            new_map = previous is None or (previous.publish, previous.epoch) != (
                seg.publish,
                seg.epoch,
            )
            # EXT-X-KEY where the key changes (the first segment: if it has one)
            changed = seg.key != (previous.key if previous is not None else None)
            keys: tuple[Key, ...] = (_key_tag(seg.key),) if changed else ()
            previous = seg
            parts = tuple(
                Part(f"{seg.msn}.{p.index}.m4s", round(p.duration, 5), p.independent)
                for p in seg.parts
            )
            complete = seg is not r.open
            lines.append(
                MediaSegment(
                    uri=f"{seg.msn}.m4s" if complete else None,
                    duration=round(seg.duration, 6) if complete else None,
                    discontinuity=seg.discontinuity,
                    keys=keys,
                    map=Map(self._publishes[seg.publish].init_name(seg.epoch)) if new_map else None,
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
            discontinuity_sequence=r.discontinuities_gone or None,
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
        (availabilityStartTime: the program date-time of media time 0). A Period per publish
        (its start the publish's program date-time, its presentationTimeOffset its media
        start, its own init segment), for those with a segment of every input rendition in
        the window (a ladder rung in the Periods it has segments in). Dynamic while live;
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
        periods = []
        for publish, epoch in self._periods(rends):
            assert publish.anchor is not None
            segments = {
                r.name: [s for s in r.segments if (s.publish, s.epoch) == (publish.index, epoch)]
                for r in rends
            }
            inputs = [r for r in rends if r.name not in self._optional]
            if any(not segments[r.name] or r.name not in publish.tracks for r in inputs):
                continue
            here = [r for r in rends if segments[r.name] and r.name in publish.tracks]
            first = publish.anchor is self._anchor
            offset = 0.0 if first else (publish.anchor[0] - wall).total_seconds() + media_start
            media_offset = None if first else publish.anchor[1]
            if epoch != publish.first_epoch:  # a key rotation: from the epoch's first segment
                begin = min(segments[r.name][0].start for r in inputs)
                offset += begin - publish.anchor[1]
                media_offset = begin
            sets = self._adaptation_sets(here, publish, segments, media_offset, live_ll)
            start = "PT0S" if first and media_offset is None else iso_duration(offset)
            name = str(publish.index) if epoch is None else f"{publish.index}-k{epoch}"
            periods.append(Period(adaptation_sets=tuple(sets), id=name, start=start))
        if not periods:
            return
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
            periods=tuple(periods),
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

    def _periods(self, rends: list[_Rendition]) -> list[tuple[_Publish, int | None]]:
        """The MPD's Periods, in order: one per publish, and per key epoch of a protected
        one (a rotation is a new init segment, which a Period is the way to change)."""
        out: list[tuple[_Publish, int | None]] = []
        for publish in self._publishes:
            if publish.anchor is None:
                continue
            epochs = sorted(
                {s.epoch for r in rends for s in r.segments if s.publish == publish.index},
                key=lambda e: -1 if e is None else e,
            )
            out += [(publish, e) for e in epochs]
        return out

    def _end(self, rends: list[_Rendition]) -> float:
        """Presentation seconds from time 0 to the end of the last segment."""
        assert self._anchor is not None
        wall, media_start = self._anchor
        ends = []
        for r in rends:
            last = r.segments[-1]
            end = last.pdt + timedelta(seconds=last.duration)
            ends.append((end - wall).total_seconds() + media_start)
        return max(ends)

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

    def _adaptation_sets(
        self,
        rends: list[_Rendition],
        publish: _Publish,
        segments: dict[str, list[_Segment]],
        media_offset: float | None,
        low_latency: bool,
    ) -> list[AdaptationSet]:
        """One Period's sets: one AdaptationSet per rendition, except video rungs of one
        timescale (a ladder): one set, a Representation each, the segments all of them
        have."""
        video = [r for r in rends if publish.tracks[r.name].kind == "video"]
        scales = {publish.tracks[r.name].timescale for r in video}
        if len(video) < 2 or len(scales) != 1:
            return [
                self._adaptation_set(r, publish, segments[r.name], media_offset, low_latency)
                for r in rends
            ]
        sets = [self._ladder_set(video, publish, segments, media_offset, low_latency)]
        return sets + [
            self._adaptation_set(r, publish, segments[r.name], media_offset, low_latency)
            for r in rends
            if r not in video
        ]

    def _template(
        self,
        r: _Rendition,
        publish: _Publish,
        segs: Sequence[_Segment],
        media: str,
        media_offset: float | None,
        low_latency: bool,
    ) -> SegmentTemplate:
        """The SegmentTemplate of ``segs`` (``r``'s in ``publish``, or those every rung of a
        ladder has), with the publish's init segment; in low latency also the segment ``r``
        is writing (when it is of this publish), read progressively."""
        scale = publish.tracks[r.name].timescale
        timeline = [
            TimelineEntry(t=round(s.start * scale), d=round(s.duration * scale)) for s in segs
        ]
        extra: tuple[tuple[str, str], ...] = ()
        if low_latency:
            seg = r.open
            if seg is not None and (seg.publish, seg.epoch) == (publish.index, segs[0].epoch):
                # as long as the last one
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
            initialization=f"{media}/{publish.init_name(segs[0].epoch)}",
            timescale=scale,
            start_number=segs[0].msn,
            presentation_time_offset=None if media_offset is None else round(media_offset * scale),
            timeline=tuple(timeline),
            extra=extra,
        )

    def _ladder_set(
        self,
        video: list[_Rendition],
        publish: _Publish,
        segments: dict[str, list[_Segment]],
        media_offset: float | None,
        low_latency: bool,
    ) -> AdaptationSet:
        common = set.intersection(*({s.msn for s in segments[r.name]} for r in video))
        lead = video[0]
        segs = [s for s in segments[lead.name] if s.msn in common] or segments[lead.name]
        reps = []
        for r in sorted(video, key=lambda r: -(publish.tracks[r.name].height or 0)):
            t = publish.tracks[r.name]
            reps.append(
                Representation(
                    id=r.name,
                    bandwidth=max(1, round(r.peak_bps)),
                    codecs=t.codec,
                    width=t.width,
                    height=t.height,
                )
            )
        template = self._template(
            lead, publish, segs, "$RepresentationID$", media_offset, low_latency
        )
        return AdaptationSet(
            representations=tuple(reps),
            content_type="video",
            mime_type="video/mp4",
            segment_alignment="true",
            start_with_sap="1",
            segment_template=template,
            content_protection=_protection_of(segs[0]),
        )

    def _adaptation_set(
        self,
        r: _Rendition,
        publish: _Publish,
        segments: list[_Segment],
        media_offset: float | None,
        low_latency: bool,
    ) -> AdaptationSet:
        track = publish.tracks[r.name]
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
            segment_template=self._template(
                r, publish, segments, r.name, media_offset, low_latency
            ),
            content_protection=_protection_of(segments[0]),
        )

    def _write_publishes(self) -> None:
        """``publishes.json``: each publish's init names and first and last segment numbers
        per rendition, and whether it is the slate (what the recording reads)."""
        body = [
            {
                "index": p.index,
                "slate": p.slate,
                "init": p.init_name(),
                "first_msn": p.first_msn,
                "last_msn": p.last_msn,
            }
            for p in self._publishes
        ]
        write_atomic(self.out_dir / "publishes.json", json.dumps(body).encode())

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


class PublishFeed:
    """What one publish feeds :class:`LiveOutput` through (from
    :meth:`LiveOutput.begin_publish`, or :meth:`LiveOutput.standby_feed` for a backup input
    that waits): the packager's output while it lasts. Once a later publish began, what
    comes through this one is dropped; ``finish`` ends only this publish (the session's
    playlists stay live).

    A standby feed (``index`` None) drops fragments but keeps each rendition's init segment:
    :meth:`activate` makes it the session's current publish (from its next keyframe on), and
    :meth:`deactivate` puts it back on standby.
    """

    def __init__(
        self, output: LiveOutput, index: int | None, renditions: Sequence[str] = ()
    ) -> None:
        self.output = output
        self.index = index
        self._names = tuple(renditions) or output.inputs
        self._rungs: list[str] = []
        self._inits: dict[str, InitSegment] = {}
        self._lock = threading.Lock()

    @property
    def renditions(self) -> tuple[str, ...]:
        """The input's renditions and the ladder rungs this publish added."""
        return self._names + tuple(self._rungs)

    def add_rendition(self, name: str) -> None:
        """A ladder rung of this publish (:meth:`LiveOutput.add_rendition`: the session
        keeps it across publishes; its init segment here is this publish's)."""
        self.output.add_rendition(name)
        if name not in self._rungs:
            self._rungs.append(name)

    def end_rendition(self, name: str) -> None:
        """This publish's ladder gave up on rung ``name`` (ignored once a later publish
        feeds the session: its own ladder goes on)."""
        if self.current:
            self.output.end_rendition(name)

    @property
    def current(self) -> bool:
        """Whether this is the publish the session shows now."""
        return self.index is not None and self.output.current_publish == self.index

    def add_init(self, name: str, init: InitSegment) -> None:
        with self._lock:
            self._inits[name] = init
            index = self.index
            if index is not None:
                self.output._add_init(name, init, index)

    def add_fragment(self, name: str, frag: Fragment) -> None:
        index = self.index
        if index is not None:
            self.output._add_fragment(name, frag, index)

    def finish(self) -> None:
        index = self.index
        if index is not None:
            self.output.end_publish(index)

    def activate(self) -> None:
        """This feed's input takes over the session (a new publish: a discontinuity)."""
        with self._lock:
            index = self.output.begin_publish(self._names).index
            assert index is not None
            self.index = index
            for name, init in self._inits.items():
                self.output._add_init(name, init, index)

    def deactivate(self) -> None:
        """Back on standby: what comes in is dropped (the publish it fed is completed)."""
        with self._lock:
            index, self.index = self.index, None
        if index is not None:
            self.output.end_publish(index)


def _key_tag(key: tuple[str, bytes] | None) -> Key:
    """EXT-X-KEY of segments encrypted with ``key`` ((scheme, KID); None: clear again)."""
    if key is None:
        return Key("NONE")
    return sample_key(key[0], key[1].hex(), LICENCE_PLACEHOLDER)


def _protection_of(seg: _Segment) -> tuple[ContentProtection, ...]:
    """The MPD ContentProtection of a Period's segments like ``seg``."""
    if seg.key is None:
        return ()
    return content_protection(seg.key[0], seg.key[1], LICENCE_PLACEHOLDER)


def _no_keyframe(limit: float) -> str:
    return (
        f"the video had no keyframe for {limit:.0f} s: set the encoder's keyframe interval"
        " to 1-2 seconds"
    )


__all__ = ["LiveOutput", "PublishFeed", "write_atomic"]
