"""A chunked ladder: the upper rungs encoded as many small jobs across the worker fleet.

The processing job (:func:`._jobs.process_asset`) encodes the preview — lowest rung and
audio — itself and queues one :class:`EncodeChunk` job per (rung, span of the
source), lowest rung first. A chunk holds whole GOPs of the global keyframe grid, so the
chunks of a rung concatenate without re-encoding into exactly what a one-pass encode makes.
The chunk job that finds every chunk of its rung stored queues that rung's
:class:`StitchRung` job (a deterministic job id makes that happen once), which joins
the chunks, packages the rung and adds it to the manifests: the master playlist gains the
rungs one by one as they complete.
"""

from __future__ import annotations

import shutil
import uuid
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.exc import IntegrityError

from mediaplane.jobs import JobContext, PermanentJobError, create_job, dispatch
from mediaplane.media import (
    InvalidMedia,
    PackagerInput,
    Presentation,
    Rung,
    concat_chunks,
    encode_chunk,
    plan_chunks,
    probe,
)

from ._jobs import (
    _resumable,
    _work_dir,
    drop_cached_source,
    package,
    publish_renditions,
    source_file,
    store_packaged,
)
from ._models import Asset
from ._payloads import EncodeChunk, StitchRung

if TYPE_CHECKING:
    from mediaplane.media import MediaInfo
    from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.catalog")


def _chunk_prefix(asset_id: str, rung: str) -> str:
    return f"assets/{asset_id}/chunks/{rung}/"


def chunk_key(asset_id: str, rung: str, index: int) -> str:
    return f"{_chunk_prefix(asset_id, rung)}{index:05d}.mp4"


def _job_id(asset_id: str, *parts: object) -> str:
    """The same id for the same piece of work, so a second attempt to create it fails."""
    name = ":".join(["mediaplane", asset_id, *map(str, parts)])
    return uuid.uuid5(uuid.NAMESPACE_URL, name).hex


def start_chunk_jobs(ctx: JobContext, asset_id: str, info: MediaInfo, upper: list[Rung]) -> None:
    """Queue the chunk jobs of every rung in ``upper`` (once per asset), lowest rung first."""
    rt = ctx.runtime
    created: list[str] = []
    try:
        with rt.db.session() as s:
            for rung in reversed(upper):
                chunks = plan_chunks(
                    info.duration, rung.fps, rung.gop, rt.settings.encode_chunk_seconds
                )
                for chunk in chunks:
                    job = create_job(
                        s,
                        EncodeChunk(asset_id=asset_id, rung=rung, chunk=chunk, chunks=len(chunks)),
                        subject_id=asset_id,
                        job_id=_job_id(asset_id, "chunk", rung.name, chunk.index),
                    )
                    created.append(job.id)
    except IntegrityError:
        log.info("asset.chunks_exist", asset_id=asset_id)  # an earlier attempt queued them
        return
    for job_id in created:
        dispatch(rt, job_id, EncodeChunk.job_type)
    log.info("asset.chunks_queued", asset_id=asset_id, jobs=len(created))


def _load(rt: Runtime, asset_id: str) -> Asset | None:
    """The asset if it still needs work (not deleted, errored or finished), else None."""
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        if not _resumable(asset):
            log.info("asset.skip", asset_id=asset_id)
            return None
        assert asset is not None
        s.expunge(asset)
        return asset


def _forget_if_deleted(rt: Runtime, asset_id: str) -> None:
    """Objects written for an asset deleted meanwhile are removed again."""
    with rt.db.session() as s:
        gone = s.get(Asset, asset_id) is None
    if gone:
        rt.store.delete_prefix(f"assets/{asset_id}/")
        drop_cached_source(rt, asset_id)


def encode_chunk_job(ctx: JobContext, payload: EncodeChunk) -> None:
    """Encode one chunk of one rung and store it; the last chunk of a rung queues its stitch."""
    rt = ctx.runtime
    asset_id = payload.asset_id
    rung, chunk = payload.rung, payload.chunk
    count = payload.chunks
    asset = _load(rt, asset_id)
    if asset is None or asset.source_key is None:
        return
    key = chunk_key(asset_id, rung.name, chunk.index)
    if not rt.store.exists(key):  # a retry after the chunk was stored skips the encode
        work = _work_dir(ctx)
        try:
            source = source_file(rt, asset_id, asset.source_key, work, shared=True)
            try:
                info = probe(rt.toolchain, source, rt.settings)
                out = encode_chunk(
                    rt.toolchain,
                    rt.settings,
                    source,
                    info,
                    rung,
                    chunk,
                    work / f"{chunk.index:05d}.mp4",
                    on_progress=lambda f: ctx.progress(99.0 * f),
                )
            except InvalidMedia as exc:
                raise PermanentJobError(str(exc)) from exc
            if not ctx.still_owned():
                return
            rt.store.put_file(key, out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _forget_if_deleted(rt, asset_id)
    ctx.progress(100.0, force=True)
    # The store is the record of finished chunks: whichever chunk job stores the last one
    # sees them all (two may; the stitch job's fixed id lets only one create it).
    # One listing per check, not one request per chunk (a long source has hundreds).
    stored = {info.key for info in rt.store.list(_chunk_prefix(asset_id, rung.name))}
    if all(chunk_key(asset_id, rung.name, i) in stored for i in range(count)):
        _queue_stitch(rt, asset_id, rung, count)


def _queue_stitch(rt: Runtime, asset_id: str, rung: Rung, count: int) -> None:
    job_id = _job_id(asset_id, "stitch", rung.name)
    try:
        with rt.db.session() as s:
            create_job(
                s,
                StitchRung(asset_id=asset_id, rung=rung, chunks=count),
                subject_id=asset_id,
                job_id=job_id,
            )
    except IntegrityError:
        return
    dispatch(rt, job_id, StitchRung.job_type)


def stitch_rung_job(ctx: JobContext, payload: StitchRung) -> None:
    """Join a rung's chunks, package the rung and add it to the asset's manifests."""
    rt = ctx.runtime
    asset_id = payload.asset_id
    rung, count = payload.rung, payload.chunks
    asset = _load(rt, asset_id)
    if asset is None:
        return
    if asset.presentation and Presentation.from_dict(asset.presentation).rendition(rung.name):
        return  # published by an earlier attempt
    duration = asset.duration or 0.0
    work = _work_dir(ctx)
    try:
        folder = work / "chunks"
        folder.mkdir()
        parts = []
        for i in range(count):
            key, part = chunk_key(asset_id, rung.name, i), folder / f"{i:05d}.mp4"
            local = rt.store.local_path(key)
            if local is not None:
                part.symlink_to(local)
            else:
                rt.store.download(key, part)
            parts.append(part)
            ctx.progress(40.0 * (i + 1) / count)
        joined = concat_chunks(
            rt.toolchain, rt.settings, parts, work / f"{rung.name}.mp4", duration
        )
        inputs = [PackagerInput(joined, "video", rung.name, frame_rate=str(rung.fps))]
        packaged = package(rt, inputs, work / "cmaf", duration)
        ctx.progress(70.0, force=True)
        if not ctx.still_owned():
            return
        store_packaged(rt, asset_id, work / "cmaf", lambda f: ctx.progress(70.0 + 29.0 * f))
        presentation = publish_renditions(rt, asset_id, packaged.renditions, base=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if presentation is None:
        _forget_if_deleted(rt, asset_id)
        return
    rt.store.delete_prefix(_chunk_prefix(asset_id, rung.name))
    log.info(
        "asset.ready" if presentation.complete else "asset.rung_published",
        asset_id=asset_id,
        published=rung.name,
        renditions=[r.id for r in presentation.video],
        pending=presentation.pending,
    )
    if presentation.complete:
        drop_cached_source(rt, asset_id)
