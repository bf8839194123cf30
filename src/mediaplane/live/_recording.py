"""Live to VOD: a recorded session's segments become its recording asset's presentation.

When a recorded session ends (:func:`._service.recording_finished`), a
:class:`mediaplane.catalog.FinishRecording` job runs :func:`finish_recording`: it reads the
CMAF segments the live packager kept for the whole session (``keep_segments``) from
:func:`._ingest.session_dir`, stores each rung's init segment and complete segments under
the asset's keys as the VOD pipeline lays them out (``assets/{id}/cmaf/{rendition}/…``,
segments numbered from 1), and writes the asset's presentation from what the files say:
codecs and picture size from the init segment, each segment's start and duration from its
fragments' decode times. No re-encode: a recording is playable seconds after the stream
ends.

A session with several publishes (a reconnect, a backup input that took over) records
every one of them, in order (``publishes.json``; the slate shown in between is left out):
each later publish's segments keep their samples and get their ``tfdt`` moved so that
they follow the one before on one timeline under the first publish's init segment (a
remux of the timing only). H.264 publishes whose parameters differ from the first's
(another picture size, profile or level) are joined without a re-encode too: the
rendition becomes ``avc3`` and every keyframe carries its publish's SPS/PPS in band
(:mod:`._inband`). What cannot be joined so (an audio configuration that differs: another
sample rate or channel count; another timescale) is left out, and
``recording.publish_left_out`` says so.

The asset turns ``ready`` with its duration and size, ``video.asset.live_stream_completed``
and ``video.asset.ready`` (and the tracks' events) in one transaction.

Idempotent: a retry stores the same objects again and writes nothing once the asset is
ready. A session that wrote no segment errors the asset (no retry).

Cleanup: once the recording is stored (its files are the asset's own objects now), the
session's live directory is deleted; a recording that failed keeps it, so that it can be
retried. A session that records nothing is deleted by :func:`sweep_session_dirs` (the
ingest runs it every :data:`SWEEP_SECONDS`) once it has ended and its DVR window plus
:data:`CLEANUP_GRACE_SECONDS` has passed: a player behind the edge may still read it until
then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select

from mediaplane.catalog import Asset, AssetStatus, FinishRecording, emit_asset_event
from mediaplane.events import EventType
from mediaplane.jobs import JobContext, PermanentJobError
from mediaplane.media import (
    Fmp4Error,
    Fmp4Reader,
    Fragment,
    InitSegment,
    MediaPlaylist,
    Presentation,
    Rendition,
    Segment,
    Track,
)
from mediaplane.pipeline import cmaf_prefix, update_presentation

from ._inband import insert_parameter_sets, parameter_sets, to_avc3
from ._ingest import live_root, session_dir
from ._ladder import shift_decode_time
from ._models import LiveSessionRow, LiveStream

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session

    from mediaplane.config import Settings
    from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.live")

#: The rungs the live packager writes, in the presentation's order.
RUNGS = ("video", "audio")
#: The packager of a session that was just ended (a stream disabled with a publisher on)
#: may still be finishing its last segment: wait this long at most for its playlists' end.
END_WAIT_SECONDS = 30.0
#: A rung whose state.json has not changed for this long is taken as ended (its ingest
#: process died before it could write ENDLIST).
STALE_SECONDS = 10.0
_POLL_SECONDS = 0.25
#: An ended session that records nothing keeps its directory this long past its DVR window.
CLEANUP_GRACE_SECONDS = 30.0
#: How often the ingest looks for session directories no one needs any more.
SWEEP_SECONDS = 60.0
#: A directory whose session is gone from the database (its stream was deleted) is deleted
#: once it has not changed for this long.
ORPHAN_SECONDS = 3600.0
_SEGMENT = re.compile(r"(\d{1,9})\.m4s")


@dataclass(frozen=True)
class RecordedRung:
    """One rung of a recording: its rendition (segments numbered from 1) and the files the
    live packager wrote for it (the init segment, then the segments in order), each with the
    ``tfdt`` shift (media units) that puts it on the recording's one timeline (0: stored as
    it is)."""

    rendition: Rendition
    init: Path
    segments: tuple[Path, ...]
    shifts: tuple[int, ...] = ()
    #: The init segment stored instead of ``init`` (``avc3``: parameter sets in band).
    init_bytes: bytes | None = None
    #: Per segment: the SPS/PPS put in front of its first sample (:mod:`._inband`).
    inband: tuple[bytes, ...] = ()

    def segment_bytes(self, index: int) -> bytes | None:
        """Segment ``index`` rewritten onto the recording's timeline (and with its
        publish's parameter sets in band), or None when the file is stored as it is."""
        shift = self.shifts[index] if index < len(self.shifts) else 0
        nals = self.inband[index] if index < len(self.inband) else b""
        if not shift and not nals:
            return None
        data = self.segments[index].read_bytes()
        return shift_segment(self.init.read_bytes(), data, shift, nals)


def shift_segment(init: bytes, data: bytes, delta: int, nals: bytes = b"") -> bytes:
    """A CMAF segment's fragments with their ``tfdt`` moved by ``delta`` media units and,
    with ``nals``, those parameter sets in front of every keyframe (browsers put the init
    segment's before a keyframe that has none). The samples are untouched: a remux."""
    reader = Fmp4Reader()
    reader.feed(init)
    frags = [f for f in reader.feed(data) if isinstance(f, Fragment)]
    reader.end()
    if sum(len(f.data) for f in frags) != len(data):
        raise Fmp4Error("a segment holds boxes besides its fragments")
    out = []
    for frag in frags:
        moved = shift_decode_time(frag, delta).data
        out.append(insert_parameter_sets(moved, nals) if nals and frag.sync else moved)
    return b"".join(out)


def finish_recording(ctx: JobContext, payload: FinishRecording) -> None:
    """The ``live.finish_recording`` job: the session's segments stored under the asset and
    listed in its presentation; the asset ``ready`` (see the module's docstring)."""
    rt = ctx.runtime
    asset_id = payload.asset_id
    with rt.db.session() as s:
        row = s.get(Asset, asset_id)
        status = row.status if row is not None else None
    if status is not AssetStatus.PREPARING:
        log.info("recording.skip", asset_id=asset_id, status=str(status))
        if status is AssetStatus.READY:  # an earlier attempt stored it, then stopped
            remove_session_dir(rt.settings, payload.live_stream_id, payload.session_id)
        return  # deleted, errored, or an earlier attempt made it ready
    out = session_dir(rt.settings, payload.live_stream_id, payload.session_id)
    _wait_for_end(out)
    rungs = read_recording(out)
    if not rungs:
        raise PermanentJobError(
            "The live stream recorded no media: the publisher sent no complete segment "
            "before the session ended."
        )
    prefix = cmaf_prefix(asset_id)
    for rung in rungs:
        rid = rung.rendition.id
        if rung.init_bytes is not None:
            rt.store.put_bytes(f"{prefix}{rid}/init.mp4", rung.init_bytes)
        else:
            rt.store.put_file(f"{prefix}{rid}/init.mp4", rung.init)
        for i, (seg, path) in enumerate(zip(rung.rendition.segments, rung.segments, strict=True)):
            key = f"{prefix}{rung.rendition.segment_path(seg.number)}"
            moved = rung.segment_bytes(i)
            if moved is None:
                rt.store.put_file(key, path)
            else:
                rt.store.put_bytes(key, moved)
    presentation = recording_presentation(rungs)
    written = _publish(rt, asset_id, presentation)
    log.info(
        "recording.ready" if written else "recording.skip",
        asset_id=asset_id,
        session_id=payload.session_id,
        duration=round(presentation.duration, 3),
        segments=sum(len(r.rendition.segments) for r in rungs),
    )
    remove_session_dir(rt.settings, payload.live_stream_id, payload.session_id)


def remove_session_dir(settings: Settings, live_stream_id: str, session_id: str) -> bool:
    """Delete a session's live directory (and its stream's, once empty); False when it was
    not there."""
    out = session_dir(settings, live_stream_id, session_id)
    if not out.is_dir():
        return False
    shutil.rmtree(out, ignore_errors=True)
    with contextlib.suppress(OSError):  # not empty: another session of the stream
        out.parent.rmdir()
    log.info("live.dir_removed", live_stream_id=live_stream_id, session_id=session_id)
    return True


def sweep_session_dirs(rt: Runtime, now: datetime | None = None) -> int:
    """Delete the session directories no one needs now (``now``: the current time), and
    return how many: a session that ended more than its DVR window plus
    :data:`CLEANUP_GRACE_SECONDS` ago and records nothing (or whose recording asset is
    ready, or gone); a directory whose session is gone (a deleted stream) after
    :data:`ORPHAN_SECONDS` unchanged. Kept: sessions live or within their reconnect window,
    and recordings preparing or failed (so they can be retried). Blocking; one query per
    directory found."""
    now = now or datetime.now(UTC)
    root = live_root(rt.settings)
    found = [(d.parent.name, d) for d in root.glob("*/*") if d.is_dir()]
    removed = 0
    for stream_id, folder in found:
        with rt.db.session() as s:
            row = s.execute(
                select(
                    LiveSessionRow.ended_at,
                    LiveSessionRow.asset_id,
                    LiveStream.dvr_window_seconds,
                    Asset.status,
                )
                .join(LiveStream, LiveStream.id == LiveSessionRow.live_stream_id)
                .outerjoin(Asset, Asset.id == LiveSessionRow.asset_id)
                .where(LiveSessionRow.id == folder.name, LiveSessionRow.live_stream_id == stream_id)
            ).first()
        if row is None:
            with contextlib.suppress(OSError):
                if now.timestamp() - folder.stat().st_mtime > ORPHAN_SECONDS:
                    removed += remove_session_dir(rt.settings, stream_id, folder.name)
            continue
        ended_at, asset_id, dvr, asset_status = row
        if ended_at is None:
            continue  # live, or away within its reconnect window
        if asset_id is not None and asset_status is not None:
            if asset_status is AssetStatus.READY:
                removed += remove_session_dir(rt.settings, stream_id, folder.name)
            continue  # preparing, or failed: kept for a retry
        ended = ended_at if ended_at.tzinfo else ended_at.replace(tzinfo=UTC)
        if now - ended > timedelta(seconds=dvr + CLEANUP_GRACE_SECONDS):
            removed += remove_session_dir(rt.settings, stream_id, folder.name)
    return removed


def _publish(rt: Runtime, asset_id: str, presentation: Presentation) -> bool:
    """Write the presentation; the asset's facts and ``live_stream_completed`` go in the
    transaction that makes it ready. False when nothing was written (ready already)."""
    video = presentation.video[-1] if presentation.video else None

    def facts(s: Session, row: Asset) -> None:
        row.duration = presentation.duration
        row.width = video.width if video else None
        row.height = video.height if video else None
        row.frame_rate = video.frame_rate if video else None
        emit_asset_event(s, EventType.ASSET_LIVE_STREAM_COMPLETED, row, rt.settings)

    written = update_presentation(
        rt,
        asset_id,
        lambda current: None if current is not None and current.complete else presentation,
        on_ready=facts,
    )
    return written is not None


def _wait_for_end(out: Path) -> None:
    """Until every rung's ``state.json`` says ended, or stopped changing, or
    :data:`END_WAIT_SECONDS` passed."""
    deadline = time.monotonic() + END_WAIT_SECONDS
    while time.monotonic() < deadline:
        states = [out / r / "state.json" for r in RUNGS if (out / r / "state.json").exists()]
        if all(_ended(p) for p in states):
            return
        time.sleep(_POLL_SECONDS)
    log.warning("recording.not_ended", dir=str(out))


def _ended(state: Path) -> bool:
    try:
        if b'"ended": true' in state.read_bytes():
            return True
        return time.time() - state.stat().st_mtime > STALE_SECONDS
    except OSError:
        return True  # gone: nothing more will come


def read_recording(out: Path) -> list[RecordedRung]:
    """The rungs of the session written under ``out`` that have at least one complete
    segment (video first), every publish of the session in order (see
    :func:`_session_rungs`). Raises :class:`PermanentJobError` for files that are not the
    packager's CMAF."""
    try:
        publishes = json.loads((out / "publishes.json").read_bytes())
    except (OSError, ValueError):
        publishes = None
    try:
        if isinstance(publishes, list):
            return _session_rungs(out, publishes)
        rungs = []
        for name in RUNGS:
            found = _single_run(out / name)
            if found is not None and (rung := _rung(name, *found)) is not None:
                rungs.append(rung)
        return rungs
    except Fmp4Error as exc:
        raise PermanentJobError(f"The recording's segments are corrupt: {exc}") from exc


@dataclass
class _Run:
    """One publish's segments of one rung, as the packager wrote them."""

    init: Path
    init_data: bytes
    track: Track
    segments: list[tuple[Path, int, int, int, int]]  # (path, start, duration, size, samples)

    @property
    def start(self) -> float:
        return self.segments[0][1] / self.track.timescale

    @property
    def end(self) -> float:
        last = self.segments[-1]
        return (last[1] + last[2]) / self.track.timescale


def _read_run(rung_dir: Path, init_name: str, first: int, last: int) -> _Run | None:
    init_path = rung_dir / init_name
    if "/" in init_name or not init_path.is_file():
        return None
    init_data = init_path.read_bytes()
    track = _init(init_data).tracks[0]
    segments = []
    for msn in range(first, last + 1):
        path = rung_dir / f"{msn}.m4s"
        if not path.is_file():
            continue  # a gap: the packager never completed it
        data = path.read_bytes()
        frags = _fragments(init_data, data, track.track_id)
        if frags:
            duration = sum(f.duration for f in frags)
            samples = sum(f.samples for f in frags)
            segments.append((path, frags[0].decode_time, duration, len(data), samples))
    return _Run(init_path, init_data, track, segments) if segments else None


def sample_description(init: bytes) -> bytes:
    """The ``stsd`` box of an init segment (codec, its parameters, picture size or audio
    configuration), with the timescale: publishes whose descriptions are equal can share
    one init segment."""
    at = init.find(b"stsd")
    if at < 4:
        return init
    size = struct.unpack_from(">I", init, at - 4)[0]
    track = _init(init).tracks[0]
    return init[at - 4 : at - 4 + size] + struct.pack(">II", track.timescale, track.track_id)


def _session_rungs(out: Path, publishes: list[object]) -> list[RecordedRung]:
    """Every publish of the session that is not the slate (reconnects, backup inputs), in
    order, as one timeline under the first publish's init segment: their segments are
    stored as they are, only their ``tfdt`` moved so that each publish starts where the one
    before ended (tracks moved together, so audio stays in sync with video). H.264 of other
    parameters goes in band (``avc3``, :func:`_joinable`); a publish that differs otherwise
    from the first is left out of the recording, logged as ``recording.publish_left_out``:
    a VOD rendition has one init segment, and joining it would need a re-encode."""
    runs: list[dict[str, _Run]] = []
    for p in publishes:
        if not isinstance(p, dict) or p.get("slate"):
            continue
        try:
            init = str(p["init"])
            spans = {n: (int(p["first_msn"][n]), int(p["last_msn"][n])) for n in p["first_msn"]}
        except (KeyError, TypeError, ValueError):
            continue
        found = {}
        for name in RUNGS:
            if name in spans and (run := _read_run(out / name, init, *spans[name])) is not None:
                found[name] = run
        if found:
            runs.append(found)
    if not runs:
        return []
    ref = {name: sample_description(run.init_data) for name, run in runs[0].items()}
    kept = [runs[0]]
    inband = False  # H.264 publishes of other parameters: SPS/PPS in band
    for found in runs[1:]:
        differs = [
            n for n in ref if n not in found or sample_description(found[n].init_data) != ref[n]
        ]
        if differs == ["video"] and _joinable(runs[0]["video"], found["video"]):
            differs, inband = [], True
        if differs or set(found) != set(ref):
            log.warning(
                "recording.publish_left_out",
                dir=str(out),
                init=next(iter(found.values())).init.name,
                differs=differs or sorted(set(found) ^ set(ref)),
            )
            continue
        kept.append(found)
    # Each later publish starts where the previous one's latest track ended.
    shifts: list[float] = [0.0]
    end = max(run.end for run in kept[0].values())
    for found in kept[1:]:
        delta = end - min(run.start for run in found.values())
        shifts.append(delta)
        end = max(run.end for run in found.values()) + delta
    rungs = []
    for name in ref:
        timescale = kept[0][name].track.timescale
        segs: list[tuple[Path, int, int, int, int]] = []
        moves: list[int] = []
        for found, delta in zip(kept, shifts, strict=True):
            ticks = round(delta * timescale)
            for path, start, duration, size, samples in found[name].segments:
                segs.append((path, start + ticks, duration, size, samples))
                moves.append(ticks)
        rung = _rung(name, kept[0][name].init, kept[0][name].init_data, kept[0][name].track, segs)
        if rung is None:
            continue
        rung = dataclasses.replace(rung, shifts=tuple(moves))
        if name == "video" and inband:
            nals = [
                parameter_sets(found[name].init_data)[1]
                for found in kept
                for _ in found[name].segments
            ]
            r = rung.rendition
            rendition = dataclasses.replace(
                r,
                codecs="avc3" + r.codecs[4:],
                width=max(found[name].track.width or 0 for found in kept) or r.width,
                height=max(found[name].track.height or 0 for found in kept) or r.height,
            )
            avc3 = to_avc3(kept[0][name].init_data)
            rung = dataclasses.replace(
                rung, rendition=rendition, init_bytes=avc3, inband=tuple(nals)
            )
            log.info("recording.parameter_sets_in_band", dir=str(out), publishes=len(kept))
        rungs.append(rung)
    return rungs


def _joinable(first: _Run, other: _Run) -> bool:
    """Two H.264 publishes of other parameters (picture size, profile, level) that one
    ``avc3`` rendition can carry, their parameter sets in band: the same timescale, track
    and NAL length size."""
    a, b = first.track, other.track
    if not (a.codec.startswith("avc1.") and b.codec.startswith("avc1.")):
        return False
    if (a.timescale, a.track_id) != (b.timescale, b.track_id):
        return False
    try:
        return parameter_sets(first.init_data)[0] == parameter_sets(other.init_data)[0]
    except Fmp4Error:
        return False


def _single_run(
    rung_dir: Path,
) -> tuple[Path, bytes, Track, list[tuple[Path, int, int, int, int]]] | None:
    """Without ``publishes.json`` (an older session): from the newest segment back to the
    first one kept, under ``init.mp4``."""
    last = _last_msn(rung_dir)
    if last is None:
        return None
    first = last
    while first > 0 and (rung_dir / f"{first - 1}.m4s").is_file():
        first -= 1
    run = _read_run(rung_dir, "init.mp4", first, last)
    return None if run is None else (run.init, run.init_data, run.track, run.segments)


def _last_msn(rung_dir: Path) -> int | None:
    """The number of the newest complete segment the rung's last playlist lists."""
    try:
        text = (rung_dir / "index.m3u8").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    playlist = MediaPlaylist.parse(text)
    numbers = [
        int(m.group(1))
        for seg in playlist.segments
        if seg.uri is not None and (m := _SEGMENT.fullmatch(seg.uri)) is not None
    ]
    return max(numbers, default=None)


def _rung(
    name: str,
    init_path: Path,
    init_data: bytes,
    track: Track,
    found: list[tuple[Path, int, int, int, int]],
) -> RecordedRung | None:
    """The rendition of ``found`` segments (path, start, duration, size, samples)."""
    if not found:
        return None
    segments = [
        Segment(i + 1, start, duration, size)
        for i, (_, start, duration, size, _) in enumerate(found)
    ]
    paths = tuple(p for p, *_ in found)
    samples = sum(f[4] for f in found)
    if track.kind == "video":
        ticks = sum(s.duration for s in segments)
        fps = _frame_rate(samples, ticks, track.timescale)
        rendition = Rendition(
            id=name,
            kind="video",
            codecs=track.codec,
            timescale=track.timescale,
            init_size=len(init_data),
            segments=segments,
            width=track.width,
            height=track.height,
            frame_rate=fps,
        )
    else:
        rate, channels = _audio_config(init_data)
        rendition = Rendition(
            id=name,
            kind="audio",
            codecs=track.codec,
            timescale=track.timescale,
            init_size=len(init_data),
            segments=segments,
            sample_rate=rate or track.timescale,
            channels=channels,
            default=True,
        )
    return RecordedRung(rendition, init_path, paths)


def _init(data: bytes) -> InitSegment:
    items = Fmp4Reader().feed(data)
    if not items or not isinstance(items[0], InitSegment):
        raise Fmp4Error("init.mp4 is not a whole init segment")
    return items[0]


def _fragments(init: bytes, data: bytes, track_id: int) -> list[Fragment]:
    reader = Fmp4Reader()
    reader.feed(init)
    frags = [f for f in reader.feed(data) if isinstance(f, Fragment) and f.track_id == track_id]
    reader.end()
    return frags


def recording_presentation(rungs: list[RecordedRung]) -> Presentation:
    """The presentation of a recording's rungs: complete, listed, nothing pending."""
    renditions = [r.rendition for r in rungs]
    video = [r for r in renditions if r.kind == "video"]
    duration = max(r.duration for r in video or renditions)
    longest = max(s.duration / r.timescale for r in renditions for s in r.segments)
    return Presentation(
        duration=round(duration, 6),
        segment_seconds=max(1, round(longest)),
        renditions=renditions,
    )


def _frame_rate(samples: int, ticks: int, timescale: int) -> str | None:
    """``"30"`` or ``"30000/1001"``: frames over time, snapped to a common rate."""
    if not samples or not ticks:
        return None
    fps = Fraction(samples * timescale, ticks)
    for common in (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)):
        if abs(fps - common) < Fraction(1, 200):
            return str(common)
    whole = round(fps)
    if whole > 0 and abs(fps - whole) < Fraction(1, 20):
        return str(whole)
    return str(fps.limit_denominator(1001))


#: The sampling frequencies an AudioSpecificConfig indexes (ISO/IEC 14496-3 1.6.3.4).
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


def _audio_config(init: bytes) -> tuple[int | None, int | None]:
    """(sample rate, channels) of the AAC in ``init``: from the AudioSpecificConfig in its
    ``esds`` (the sample entry's own channel count is always 2 in ffmpeg's MP4s), or from
    the ``mp4a`` sample entry when there is none. (None, None) when neither reads."""
    at = init.find(b"esds")
    pos, end = at + 8, len(init)  # past the type and the full box's version and flags
    while 0 <= at and pos + 2 <= end:
        tag, pos = init[pos], pos + 1
        length = 0
        for _ in range(4):  # expandable size: up to four bytes, 7 bits each
            byte, pos = init[pos] if pos < end else 0, pos + 1
            length = (length << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        if tag == 0x03:  # ES_Descriptor: ES_ID, flags (no optional fields from ffmpeg)
            pos += 3
        elif tag == 0x04:  # DecoderConfigDescriptor: 13 bytes, then its children
            pos += 13
        elif tag == 0x05 and pos + 2 <= end:  # AudioSpecificConfig
            bits = int.from_bytes(init[pos : pos + 2], "big")
            index, channels = (bits >> 7) & 0x0F, (bits >> 3) & 0x0F
            rate = _AAC_RATES[index] if index < len(_AAC_RATES) else None
            return rate, (channels or None)
        else:
            break
    at = init.find(b"mp4a")
    body = at + 4  # the sample entry's payload, after its size and type
    if at < 4 or body + 28 > len(init):
        return None, None
    channels = struct.unpack_from(">H", init, body + 16)[0]
    rate = struct.unpack_from(">I", init, body + 24)[0] >> 16
    return (rate or None), (channels or None)
