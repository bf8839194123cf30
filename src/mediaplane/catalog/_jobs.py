"""Job handlers for assets (named in the jobs table, run by workers)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from mediaplane.db import utcnow
from mediaplane.jobs import JobContext, PermanentJobError
from mediaplane.media import (
    AAC_LC,
    InvalidMedia,
    ManagedProcess,
    MediaInfo,
    PackagerInput,
    PackagingOptions,
    PlaylistEntry,
    Presentation,
    Rendition,
    Rung,
    Segment,
    ShakaPackager,
    avc_codec_string,
    encode_ladder,
    encode_preview,
    plan_ladder,
    probe,
    read_playlist,
)
from mediaplane.media.ffmpeg import PREVIEW_DIR

from ._models import Asset, AssetStatus

log = structlog.get_logger("mediaplane.catalog")

# Share of the job's progress each phase ends at.
PROBED, ENCODED, PACKAGED = 2.0, 92.0, 96.0
#: The full ladder encodes beside the preview rung at lower CPU priority.
LADDER_NICE = 10
#: Preview segment durations come from ffmpeg's playlist in seconds; store them in µs.
PREVIEW_TIMESCALE = 1_000_000


def _work_dir(ctx: JobContext) -> Path:
    root = ctx.runtime.settings.data_path / "work"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{ctx.job_id}-", dir=root))


def _tracks(info: MediaInfo, p: Presentation) -> list[dict[str, Any]]:
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
    for a in p.audio:
        tracks.append(
            {
                "type": "audio",
                "codec": "aac",
                "channels": a.channels,
                "sample_rate": a.sample_rate,
                "language": a.language,
            }
        )
    return tracks


class _PreviewPublisher:
    """Publishes the lowest rung's segments as ffmpeg finishes them.

    The asset turns ``ready`` with the first segment: the master playlist then lists this
    one growing rendition (an HLS EVENT playlist played from the start), which becomes a
    complete VOD rendition when its encode ends; the full ladder replaces it in the master
    playlist when packaged.
    """

    def __init__(
        self,
        ctx: JobContext,
        asset_id: str,
        rung: Rung,
        info: MediaInfo,
        work: Path,
        pending: list[str],
    ) -> None:
        self.ctx, self.asset_id, self.rung, self.info = ctx, asset_id, rung, info
        self.dir = work / PREVIEW_DIR
        self.prefix = f"assets/{asset_id}/cmaf/{PREVIEW_DIR}/"
        self.pending = pending
        self.segments: list[Segment] = []
        self.codecs: str | None = None
        self.lock = threading.Lock()
        self.ready_at: float | None = None

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
        )

    def publish(self, entries: list[PlaylistEntry], *, complete: bool = False) -> None:
        with self.lock:
            rt = self.ctx.runtime
            new = entries[len(self.segments) :]
            if not new and not complete:
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
            presentation = Presentation(
                duration=self.info.duration,
                segment_seconds=rt.settings.segment_seconds,
                renditions=[self.rendition(complete=complete)],
                pending=self.pending,
            )
            with rt.db.session() as s:
                row = s.get(Asset, self.asset_id)
                if row is None:
                    return
                row.presentation = presentation.to_dict()
                if row.status is AssetStatus.PREPARING:
                    row.status = AssetStatus.READY
                    row.ready_at = utcnow()
                    self.ready_at = time.monotonic()
                    log.info(
                        "asset.playable",
                        asset_id=self.asset_id,
                        rendition=PREVIEW_DIR,
                        segments=len(self.segments),
                    )


def _resumable(asset: Asset | None) -> bool:
    """Whether a processing attempt should run: not deleted, not errored, not finished."""
    if asset is None or asset.status is AssetStatus.ERRORED or not asset.source_key:
        return False
    return not (asset.presentation and Presentation.from_dict(asset.presentation).complete)


def process_asset(ctx: JobContext) -> None:
    """Probe; encode the lowest rung first (playable within seconds) while the rest of the
    ladder encodes beside it at lower priority; package one set of CMAF segments; publish."""
    rt = ctx.runtime
    asset_id = ctx.payload["asset_id"]
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        if not _resumable(asset):
            log.info("asset.skip", asset_id=asset_id)
            return
        assert asset is not None
        assert asset.source_key is not None
        key = asset.source_key
    tools = rt.toolchain
    work = _work_dir(ctx)
    published = False
    prefix = f"assets/{asset_id}/cmaf/"
    try:
        source = rt.store.local_path(key)
        if source is None:
            source = work / "source"
            rt.store.download(key, source)
        try:
            info = probe(tools, source, rt.settings)
        except InvalidMedia as exc:
            raise PermanentJobError(str(exc)) from exc
        rungs = plan_ladder(info.width, info.height, info.fps, rt.settings.segment_seconds)
        with rt.db.session() as s:
            row = s.get(Asset, asset_id)
            if row is None:
                return
            row.duration, row.width, row.height = info.duration, info.width, info.height
            row.frame_rate = str(rungs[0].fps)
        ctx.progress(PROBED, force=True)
        lowest, upper = rungs[-1], rungs[:-1]
        done = {"preview": 0.0, "ladder": 0.0 if upper else 1.0}
        weight = 0.25 if upper else 1.0  # the preview rung is the cheap part of the work

        def progress(part: str, fraction: float) -> None:
            done[part] = fraction
            share = weight * done["preview"] + (1 - weight) * done["ladder"]
            ctx.progress(PROBED + (ENCODED - PROBED) * share)

        publisher = _PreviewPublisher(
            ctx, asset_id, lowest, info, work, pending=[r.name for r in rungs]
        )
        ladder_proc: list[ManagedProcess] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ladder") as pool:
            ladder = (
                pool.submit(
                    encode_ladder,
                    tools,
                    rt.settings,
                    source,
                    replace(info, has_audio=False),
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
            for r in rungs
        ]
        if "audio" in outputs:
            inputs.append(PackagerInput(path=outputs["audio"], kind="audio", rendition_id="audio"))
        packaged = ShakaPackager(tools.packager).package(
            inputs,
            work / "cmaf",
            PackagingOptions(
                segment_seconds=rt.settings.segment_seconds,
                timeout_seconds=120 + info.duration * 2,
                memory_bytes=rt.settings.subprocess_memory_bytes,
            ),
        )
        ctx.progress(PACKAGED, force=True)
        if not ctx.still_owned():
            log.warning("asset.publish_skipped_not_owner", asset_id=asset_id)
            return
        files = sorted(p for p in (work / "cmaf").rglob("*") if p.is_file())
        for i, path in enumerate(files, start=1):
            rt.store.put_file(prefix + path.relative_to(work / "cmaf").as_posix(), path)
            ctx.progress(PACKAGED + (99.0 - PACKAGED) * i / len(files))
        # Players that started on the preview keep it; new players get the full ladder.
        presentation = replace(
            packaged,
            renditions=[*packaged.renditions, publisher.rendition(complete=True, listed=False)],
        )
        published = True
        with rt.db.session() as s:
            row = s.get(Asset, asset_id)
            if row is None:  # deleted while we worked
                published = False
                return
            row.presentation = presentation.to_dict()
            row.duration = presentation.duration
            row.tracks = _tracks(info, presentation)
            if row.status is AssetStatus.PREPARING:
                row.ready_at = utcnow()
            row.status = AssetStatus.READY
            row.errors = None
        log.info(
            "asset.ready",
            asset_id=asset_id,
            renditions=[r.id for r in presentation.video],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not published:
            with rt.db.session() as s:
                gone = s.get(Asset, asset_id) is None
            if gone:
                rt.store.delete_prefix(f"assets/{asset_id}/")


def asset_gave_up(ctx: JobContext, message: str, *, permanent: bool) -> None:
    """A job for this asset will not be retried: the asset is errored, saying why."""
    asset_id = ctx.payload["asset_id"]
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
