"""Job handlers for assets (named in the jobs table, run by workers)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import update

from mediaplane.db import utcnow
from mediaplane.jobs import JobContext, PermanentJobError
from mediaplane.media import (
    AAC_LC,
    InvalidMedia,
    ManagedProcess,
    MediaError,
    MediaInfo,
    PackagerInput,
    PackagingOptions,
    PlaylistEntry,
    Presentation,
    Rendition,
    Rung,
    Segment,
    ShakaPackager,
    audio_tracks,
    avc_codec_string,
    encode_ladder,
    encode_preview,
    make_storyboard,
    plan_source_ladder,
    probe,
    read_playlist,
    thumbnail_name,
    waveform_image,
)
from mediaplane.media.ffmpeg import PREVIEW_DIR

from ._models import Asset, AssetStatus
from ._payloads import AssetJob, ProcessAsset
from ._service import poster_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.catalog")

# Share of the job's progress each phase ends at.
PROBED, ENCODED, PACKAGED = 2.0, 92.0, 96.0
#: The full ladder encodes beside the preview rung at lower CPU priority.
LADDER_NICE = 10
#: Preview segment durations come from ffmpeg's playlist in seconds; store them in µs.
PREVIEW_TIMESCALE = 1_000_000
#: Segments the preview holds before it is listed. A player reloads a growing playlist about
#: once per target duration: with one segment listed it reaches that segment's end before the
#: reload shows the next one and stalls; with two it has a whole reload interval in hand.
PREVIEW_START_SEGMENTS = 2


def _work_dir(ctx: JobContext) -> Path:
    root = ctx.runtime.settings.data_path / "work"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{ctx.job_id}-", dir=root))


#: Sources downloaded for chunk jobs are kept per worker host this long after last use.
SOURCE_CACHE_SECONDS = 6 * 3600


def source_file(rt: Runtime, asset_id: str, key: str, work: Path, *, shared: bool) -> Path:
    """A local path of the asset's source: the object itself on a local store; otherwise a
    download, into ``work`` or, when ``shared``, into this host's source cache so that the
    chunk jobs of one asset running here download it once."""
    local = rt.store.local_path(key)
    if local is not None:
        return local
    if not shared:
        rt.store.download(key, work / "source")
        return work / "source"
    cache = rt.settings.data_path / "cache" / "sources"
    cache.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in cache.iterdir():  # sources of assets finished (or deleted) on other hosts
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > SOURCE_CACHE_SECONDS:
                old.unlink()
    path = cache / asset_id
    with (cache / f"{asset_id}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            rt.store.download(key, path)
        os.utime(path)
    return path


def drop_cached_source(rt: Runtime, asset_id: str) -> None:
    cache = rt.settings.data_path / "cache" / "sources"
    for name in (asset_id, f"{asset_id}.lock"):
        (cache / name).unlink(missing_ok=True)


def _tracks(p: Presentation) -> list[dict[str, Any]]:
    tracks: list[dict[str, Any]] = []
    top = p.video[-1] if p.video else None
    if top is not None:
        tracks.append(
            {
                "type": "video",
                "max_width": top.width,
                "max_height": top.height,
                "max_frame_rate": float(top.fps) if top.fps else None,
                "codec": "h264",
                "renditions": [
                    {
                        "id": v.id,
                        "width": v.width,
                        "height": v.height,
                        "bandwidth": v.peak_bandwidth,
                        "codecs": v.codecs,
                    }
                    for v in p.video
                ],
            }
        )
    for i, a in enumerate(p.audio):
        tracks.append(
            {
                "type": "audio",
                "id": a.id,
                "codec": "aac",
                "channels": a.channels,
                "sample_rate": a.sample_rate,
                "language": a.language,
                "name": a.name,
                "default": i == 0,
                "role": a.role,
            }
        )
    return tracks


def update_presentation(
    rt: Runtime, asset_id: str, change: Callable[[Presentation | None], Presentation | None]
) -> Presentation | None:
    """Read, change and write an asset's presentation as a compare-and-set on its revision
    (the preview publisher and the rung stitchers of several workers write concurrently).

    ``change`` gets the current presentation (None before the first) and returns the new
    one, or None to write nothing. The asset turns ``ready`` when the presentation first
    becomes playable (a video rendition listed, or an audio-only asset's audio packaged:
    :attr:`Presentation.playable`); ``tracks`` follows the listed renditions. Returns what was
    written, or None when nothing was (also when the asset is gone or errored).
    """
    for attempt in range(100):
        with rt.db.session() as s:
            row = s.get(Asset, asset_id)
            if row is None or row.status is AssetStatus.ERRORED:
                return None
            new = change(Presentation.from_dict(row.presentation) if row.presentation else None)
            if new is None:
                return None
            values: dict[str, Any] = {
                "presentation": new.to_dict(),
                "presentation_rev": row.presentation_rev + 1,
                "tracks": _tracks(new),
            }
            playable = row.status is AssetStatus.PREPARING and new.playable
            if playable:
                values.update(status=AssetStatus.READY, ready_at=utcnow(), errors=None)
            done = s.execute(
                update(Asset)
                .where(Asset.id == asset_id, Asset.presentation_rev == row.presentation_rev)
                .values(**values)
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                if playable:
                    log.info("asset.playable", asset_id=asset_id, renditions=new.rendition_ids)
                return new
        time.sleep(min(0.5, 0.01 * (attempt + 1)))
    raise RuntimeError(f"the presentation of asset {asset_id} kept changing under this write")


def publish_renditions(
    rt: Runtime, asset_id: str, renditions: list[Rendition], *, base: bool
) -> Presentation | None:
    """Add packaged renditions (their segments already stored) to the asset's manifests.

    ``base``: the audio and lowest rung (or a whole one-pass ladder) that replace the
    preview for new players; the preview is unlisted (players already on it keep it) and
    every packaged video rendition listed. A rung stitched before the base is in stays
    unlisted until then: the master still lists the muxed preview, and a video-only rung has
    no audio group to pair with yet.
    """

    def change(current: Presentation | None) -> Presentation | None:
        if current is None:
            return None
        done = [r.id for r in renditions]
        preview = current.rendition(PREVIEW_DIR)
        if base:
            waiting = [
                replace(r, listed=True)
                for r in current.renditions
                if r.kind == "video" and r.id != PREVIEW_DIR and not r.listed
            ]
            hidden = [replace(preview, listed=False)] if preview is not None else []
            return current.with_renditions([*waiting, *renditions, *hidden], done=done)
        listed = preview is None or not preview.listed
        return current.with_renditions([replace(r, listed=listed) for r in renditions], done=done)

    return update_presentation(rt, asset_id, change)


def store_packaged(
    rt: Runtime, asset_id: str, out_dir: Path, on_file: Callable[[float], None]
) -> None:
    """Upload the packager's output folder to the asset's CMAF prefix."""
    files = sorted(p for p in out_dir.rglob("*") if p.is_file())
    for i, path in enumerate(files, start=1):
        rt.store.put_file(f"assets/{asset_id}/cmaf/{path.relative_to(out_dir).as_posix()}", path)
        on_file(i / len(files))


def store_storyboard(
    rt: Runtime, asset_id: str, rung: Rung, rendition: Path, duration: float, work: Path
) -> None:
    """Store seek-preview frames at every thumbnail grid point, made from the lowest rung;
    when that fails only the pre-made frames are missing (the origin extracts on demand)."""
    try:
        frames = make_storyboard(
            rt.toolchain, rt.settings, rendition, rung.width, duration, work / "storyboard"
        )
    except MediaError as exc:
        log.warning("asset.storyboard_failed", asset_id=asset_id, error=str(exc))
        return
    for f in frames:
        rt.store.put_file(f"assets/{asset_id}/{thumbnail_name(f.time_s, f.width)}", f.path)


def package(
    rt: Runtime, inputs: list[PackagerInput], out_dir: Path, duration: float
) -> Presentation:
    return ShakaPackager(rt.toolchain.packager).package(
        inputs,
        out_dir,
        PackagingOptions(
            segment_seconds=rt.settings.segment_seconds,
            timeout_seconds=min(120 + duration * 2, rt.settings.encode_timeout_max_seconds),
            memory_bytes=rt.settings.subprocess_memory_bytes,
        ),
    )


class _PreviewPublisher:
    """Publishes the lowest rung's segments as ffmpeg finishes them.

    The asset turns ``ready`` with the first segment: the master playlist then lists this
    one growing rendition (an HLS EVENT playlist played from the start), which becomes a
    complete VOD rendition when its encode ends; the packaged renditions replace it in the
    master playlist when the base (audio + lowest rung, or the whole ladder) is packaged.
    """

    def __init__(
        self, ctx: JobContext, asset_id: str, rung: Rung, info: MediaInfo, work: Path
    ) -> None:
        self.ctx, self.asset_id, self.rung, self.info = ctx, asset_id, rung, info
        self.dir = work / PREVIEW_DIR
        self.prefix = f"assets/{asset_id}/cmaf/{PREVIEW_DIR}/"
        self.segments: list[Segment] = []
        self.codecs: str | None = None
        self.lock = threading.Lock()

    def rendition(self, *, complete: bool, listed: bool = True) -> Rendition:
        assert self.codecs is not None
        return Rendition(
            id=PREVIEW_DIR,
            kind="video",
            codecs=self.codecs,
            timescale=PREVIEW_TIMESCALE,
            init_size=(self.dir / "init.mp4").stat().st_size,
            segments=list(self.segments),
            width=self.rung.width,
            height=self.rung.height,
            frame_rate=str(self.rung.fps),
            complete=complete,
            listed=listed,
            muxed=self.info.has_audio,
        )

    def publish(self, entries: list[PlaylistEntry], *, complete: bool = False) -> None:
        with self.lock:
            rt = self.ctx.runtime
            new = entries[len(self.segments) :]
            if not complete and (not new or len(entries) < PREVIEW_START_SEGMENTS):
                return
            if not self.ctx.still_owned():
                return
            if self.codecs is None:
                init = (self.dir / "init.mp4").read_bytes()
                self.codecs = avc_codec_string(init) + (f",{AAC_LC}" if self.info.has_audio else "")
                rt.store.put_bytes(self.prefix + "init.mp4", init)
            start = sum(s.duration for s in self.segments)
            for entry in new:
                number = len(self.segments) + 1
                path = self.dir / entry.uri
                rt.store.put_file(f"{self.prefix}{number}.m4s", path)
                ticks = round(entry.duration * PREVIEW_TIMESCALE)
                self.segments.append(Segment(number, start, ticks, path.stat().st_size))
                start += ticks
            if not self.segments:
                return
            preview = self.rendition(complete=complete)

            def change(current: Presentation | None) -> Presentation | None:
                # A base already packaged (an earlier attempt) is never replaced by a preview.
                if current is None or current.rendition(self.rung.name) is not None:
                    return None
                return current.with_renditions([preview])

            update_presentation(rt, self.asset_id, change)


def _first_presentation(rt: Runtime, asset_id: str, duration: float, pending: list[str]) -> None:
    """Write the asset's first (empty) presentation, unless an earlier attempt did."""
    update_presentation(
        rt,
        asset_id,
        lambda current: (
            None
            if current is not None
            else Presentation(
                duration=duration, segment_seconds=rt.settings.segment_seconds, pending=pending
            )
        ),
    )


def _resumable(asset: Asset | None) -> bool:
    """Whether a processing attempt should run: not deleted, not errored, not finished."""
    if asset is None or asset.status is AssetStatus.ERRORED or not asset.source_key:
        return False
    return not (asset.presentation and Presentation.from_dict(asset.presentation).complete)


def process_asset(ctx: JobContext, payload: ProcessAsset) -> None:
    """Probe; encode the lowest rung first (playable within seconds) while the rest of the
    ladder encodes — beside it at lower priority in one pass, or as chunk jobs across the
    fleet (:mod:`._chunked`); package one set of CMAF segments; publish."""
    rt = ctx.runtime
    asset_id = payload.asset_id
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        if not _resumable(asset):
            log.info("asset.skip", asset_id=asset_id)
            return
        assert asset is not None
        assert asset.source_key is not None
        key = asset.source_key
        earlier = Presentation.from_dict(asset.presentation) if asset.presentation else None
    tools = rt.toolchain
    work = _work_dir(ctx)
    published = False
    try:
        source = source_file(rt, asset_id, key, work, shared=rt.settings.chunked)
        try:
            info = probe(tools, source, rt.settings)
        except InvalidMedia as exc:
            raise PermanentJobError(str(exc)) from exc
        if not info.has_video:
            published = _process_audio_only(ctx, asset_id, source, info, work)
            return
        rungs = plan_source_ladder(
            info, rt.settings.segment_seconds, field_rate=rt.settings.deinterlace == "field"
        )
        with rt.db.session() as s:
            row = s.get(Asset, asset_id)
            if row is None:
                return
            row.duration, row.width, row.height = info.duration, info.width, info.height
            row.source_video = info.video_facts()
            row.frame_rate = str(rungs[0].fps)
        ctx.progress(PROBED, force=True)
        lowest, upper = rungs[-1], rungs[:-1]
        if earlier is None:  # the first attempt: every rung pending
            _first_presentation(rt, asset_id, info.duration, pending=[r.name for r in rungs])
        if rt.settings.chunked and upper:
            from ._chunked import start_chunk_jobs

            start_chunk_jobs(ctx, asset_id, info, upper)
            upper = []
            if earlier is not None and earlier.rendition(lowest.name):
                published = True  # an earlier attempt packaged the base; chunk jobs do the rest
                return
        done = {"preview": 0.0, "ladder": 0.0 if upper else 1.0}
        weight = 0.25 if upper else 1.0  # the preview rung is the cheap part of the work

        def progress(part: str, fraction: float) -> None:
            done[part] = fraction
            share = weight * done["preview"] + (1 - weight) * done["ladder"]
            ctx.progress(PROBED + (ENCODED - PROBED) * share)

        publisher = _PreviewPublisher(ctx, asset_id, lowest, info, work)
        ladder_proc: list[ManagedProcess] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ladder") as pool:
            ladder = (
                pool.submit(
                    encode_ladder,
                    tools,
                    rt.settings,
                    source,
                    replace(info, audio=()),
                    upper,
                    work / "encoded",
                    lambda f: progress("ladder", f),
                    nice=LADDER_NICE,
                    process=ladder_proc,
                )
                if upper
                else None
            )
            try:
                outputs = encode_preview(
                    tools,
                    rt.settings,
                    source,
                    info,
                    lowest,
                    work,
                    on_progress=lambda f: progress("preview", f),
                    on_segments=publisher.publish,
                )
                publisher.publish(
                    read_playlist(work / PREVIEW_DIR / "media.m3u8")[0], complete=True
                )
                if ladder is not None:
                    outputs.update(ladder.result())
            except InvalidMedia as exc:
                for proc in ladder_proc:
                    proc.cancel()
                raise PermanentJobError(str(exc)) from exc
            except BaseException:
                for proc in ladder_proc:
                    proc.cancel()
                raise
        ctx.progress(ENCODED, force=True)
        fps = str(lowest.fps)
        inputs = [
            PackagerInput(path=outputs[r.name], kind="video", rendition_id=r.name, frame_rate=fps)
            for r in [*upper, lowest]
        ]
        inputs += _audio_inputs(info, outputs)
        packaged = package(rt, inputs, work / "cmaf", info.duration)
        ctx.progress(PACKAGED, force=True)
        if not ctx.still_owned():
            log.warning("asset.publish_skipped_not_owner", asset_id=asset_id)
            return
        store_packaged(
            rt, asset_id, work / "cmaf", lambda f: ctx.progress(PACKAGED + (99.0 - PACKAGED) * f)
        )
        store_storyboard(rt, asset_id, lowest, outputs[lowest.name], info.duration, work)
        presentation = publish_renditions(
            rt,
            asset_id,
            [*packaged.renditions, publisher.rendition(complete=True, listed=False)],
            base=True,
        )
        published = presentation is not None
        if presentation is not None:
            log.info(
                "asset.ready" if presentation.complete else "asset.base_published",
                asset_id=asset_id,
                published="base",
                renditions=[r.id for r in presentation.video],
                pending=presentation.pending,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not published:
            with rt.db.session() as s:
                gone = s.get(Asset, asset_id) is None
            if gone:
                rt.store.delete_prefix(f"assets/{asset_id}/")
                drop_cached_source(rt, asset_id)


def _audio_inputs(info: MediaInfo, outputs: dict[str, Path]) -> list[PackagerInput]:
    """One packager input per audio stream encoded, labelled for the manifests."""
    return [
        PackagerInput(
            path=outputs[t.rendition_id],
            kind="audio",
            rendition_id=t.rendition_id,
            language=t.language,
            name=t.name,
            default=t.default,
            role=t.role,
        )
        for t in audio_tracks(info)
    ]


def _process_audio_only(
    ctx: JobContext, asset_id: str, source: Path, info: MediaInfo, work: Path
) -> bool:
    """An audio-only source (podcast, music): every audio stream encoded in one run,
    packaged, a waveform stored as its poster, published. Returns whether it was.

    No preview: AAC encodes run at many times real time, so the packaged audio is the
    first thing playable."""
    rt = ctx.runtime
    with rt.db.session() as s:
        row = s.get(Asset, asset_id)
        if row is None:
            return False
        row.duration, row.width, row.height, row.frame_rate = info.duration, None, None, None
    ctx.progress(PROBED, force=True)
    _first_presentation(rt, asset_id, info.duration, pending=[])
    try:
        outputs = encode_ladder(
            rt.toolchain,
            rt.settings,
            source,
            info,
            [],
            work / "encoded",
            lambda f: ctx.progress(PROBED + (ENCODED - PROBED) * f),
        )
        poster = waveform_image(rt.toolchain, rt.settings, source, info)
    except InvalidMedia as exc:
        raise PermanentJobError(str(exc)) from exc
    ctx.progress(ENCODED, force=True)
    packaged = package(rt, _audio_inputs(info, outputs), work / "cmaf", info.duration)
    ctx.progress(PACKAGED, force=True)
    if not ctx.still_owned():
        log.warning("asset.publish_skipped_not_owner", asset_id=asset_id)
        return False
    rt.store.put_bytes(poster_key(asset_id), poster)
    store_packaged(
        rt, asset_id, work / "cmaf", lambda f: ctx.progress(PACKAGED + (99.0 - PACKAGED) * f)
    )
    presentation = publish_renditions(rt, asset_id, packaged.renditions, base=True)
    if presentation is not None:
        log.info(
            "asset.ready",
            asset_id=asset_id,
            published="audio",
            renditions=[r.id for r in presentation.audio],
        )
    return presentation is not None


def asset_gave_up(ctx: JobContext, payload: AssetJob, message: str, *, permanent: bool) -> None:
    """A job for this asset will not be retried: the asset is errored, saying why."""
    asset_id = payload.asset_id
    with ctx.runtime.db.session() as s:
        row = s.get(Asset, asset_id)
        if row is None:
            return
        row.status = AssetStatus.ERRORED
        row.errors = {
            "type": "invalid_input" if permanent else "internal_error",
            "messages": [message],
        }
    log.info("asset.errored", asset_id=asset_id, message=message)
