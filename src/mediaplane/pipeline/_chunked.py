"""A chunked ladder: the upper rungs encoded as many small jobs across the worker fleet.

The processing job (:func:`._vod.process_asset`) encodes the preview — lowest rung and
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

from mediaplane.catalog import EncodeChunk, StitchRung
from mediaplane.jobs import JobContext, create_job, dispatch
from mediaplane.media import (
    Chunk,
    PackagerInput,
    Presentation,
    Rung,
    concat_chunks,
    encode_chunk,
    plan_chunks,
)

from ._assets import invalid_input_is_permanent, load_pending
from ._package import package
from ._probe import probe_source
from ._progress import STORED, span
from ._protection import encryption_for
from ._publish import cmaf_prefix, publish_renditions, store_packaged
from ._workspace import drop_cached_source, forget_if_deleted, source_file, work_dir

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session

    from mediaplane.config import Settings
    from mediaplane.media import MediaInfo
    from mediaplane.runtime import Runtime
    from mediaplane.storage import ObjectStore

log = structlog.get_logger("mediaplane.pipeline")

#: Stitch progress: chunks fetched by here, packaged by :data:`PACKAGED`.
FETCHED, PACKAGED = 40.0, 70.0


def _chunk_prefix(asset_id: str, rung: str) -> str:
    return f"assets/{asset_id}/chunks/{rung}/"


def chunk_key(asset_id: str, rung: str, index: int) -> str:
    """Where chunk ``index`` of rung ``rung`` is stored until its rung is stitched."""
    return f"{_chunk_prefix(asset_id, rung)}{index:05d}.mp4"


def _job_id(asset_id: str, *parts: object) -> str:
    """The same id for the same piece of work, so a second attempt to create it fails."""
    name = ":".join(["mediaplane", asset_id, *map(str, parts)])
    return uuid.uuid5(uuid.NAMESPACE_URL, name).hex


# -- planning and queueing ------------------------------------------------------------------


def plan_rung_chunks(settings: Settings, info: MediaInfo, rung: Rung) -> list[Chunk]:
    """The chunks of ``rung``: whole GOPs, about ``encode_chunk_seconds`` each."""
    return plan_chunks(info.duration, rung.fps, rung.gop, settings.encode_chunk_seconds)


def _create_chunk_jobs(
    s: Session, settings: Settings, asset_id: str, info: MediaInfo, upper: list[Rung]
) -> list[str]:
    """Create the chunk jobs of every rung in ``upper``, lowest rung first; their ids."""
    created: list[str] = []
    for rung in reversed(upper):
        chunks = plan_rung_chunks(settings, info, rung)
        for chunk in chunks:
            payload = EncodeChunk(asset_id=asset_id, rung=rung, chunk=chunk, chunks=len(chunks))
            job_id = _job_id(asset_id, "chunk", rung.name, chunk.index)
            job = create_job(s, payload, subject_id=asset_id, job_id=job_id)
            created.append(job.id)
    return created


def start_chunk_jobs(rt: Runtime, asset_id: str, info: MediaInfo, upper: list[Rung]) -> None:
    """Queue the chunk jobs of every rung in ``upper`` (once per asset), lowest rung first."""
    try:
        with rt.db.session() as s:
            created = _create_chunk_jobs(s, rt.settings, asset_id, info, upper)
    except IntegrityError:
        log.info("asset.chunks_exist", asset_id=asset_id)  # an earlier attempt queued them
        return
    for job_id in created:
        dispatch(rt, job_id, EncodeChunk.job_type)
    log.info("asset.chunks_queued", asset_id=asset_id, jobs=len(created))


# -- one chunk ------------------------------------------------------------------------------


def _encode_and_store_chunk(
    ctx: JobContext, asset_id: str, source_key: str, rung: Rung, chunk: Chunk, key: str
) -> bool:
    """Encode the chunk from the (host-cached) source and store it under ``key``; False
    when this attempt no longer owns the job."""
    rt = ctx.runtime
    work = work_dir(rt, ctx.job_id)
    try:
        source = source_file(rt, asset_id, source_key, work, shared=True)
        with invalid_input_is_permanent():
            info = probe_source(rt, source)
            out = encode_chunk(
                rt.toolchain,
                rt.settings,
                source,
                info,
                rung,
                chunk,
                work / f"{chunk.index:05d}.mp4",
                on_progress=span(ctx.progress, 0.0, 99.0),
            )
        if not ctx.still_owned():
            return False
        rt.store.put_file(key, out)
        return True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _rung_encoded(store: ObjectStore, asset_id: str, rung: str, count: int) -> bool:
    """Whether all ``count`` chunks of the rung are stored.

    The store is the record of finished chunks: whichever chunk job stores the last one
    sees them all (two may; the stitch job's fixed id lets only one create it). One listing
    per check, not one request per chunk (a long source has hundreds).
    """
    stored = {info.key for info in store.list(_chunk_prefix(asset_id, rung))}
    return all(chunk_key(asset_id, rung, i) in stored for i in range(count))


def encode_chunk_job(ctx: JobContext, payload: EncodeChunk) -> None:
    """Encode one chunk of one rung and store it; the last chunk of a rung queues its stitch."""
    rt = ctx.runtime
    asset_id = payload.asset_id
    rung, chunk, count = payload.rung, payload.chunk, payload.chunks
    asset = load_pending(rt, asset_id)
    if asset is None or asset.source_key is None:
        return
    key = chunk_key(asset_id, rung.name, chunk.index)
    if not rt.store.exists(key):  # a retry after the chunk was stored skips the encode
        if not _encode_and_store_chunk(ctx, asset_id, asset.source_key, rung, chunk, key):
            return
        forget_if_deleted(rt, asset_id)
    ctx.progress(100.0, force=True)
    if _rung_encoded(rt.store, asset_id, rung.name, count):
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


# -- one rung -------------------------------------------------------------------------------


def _fetch_chunks(
    ctx: JobContext, asset_id: str, rung: str, count: int, folder: Path
) -> list[Path]:
    """The rung's stored chunks in ``folder`` (linked on a local store, else downloaded)."""
    rt = ctx.runtime
    folder.mkdir()
    parts = []
    for i in range(count):
        key, part = chunk_key(asset_id, rung, i), folder / f"{i:05d}.mp4"
        local = rt.store.local_path(key)
        if local is not None:
            part.symlink_to(local)
        else:
            rt.store.download(key, part)
        parts.append(part)
        ctx.progress(FETCHED * (i + 1) / count)
    return parts


def _join_and_package(
    ctx: JobContext,
    asset_id: str,
    rung: Rung,
    count: int,
    duration: float,
    work: Path,
    protection: str,
) -> Presentation:
    """Join the rung's chunks without re-encoding and package it into ``work/cmaf``
    (encrypted with the asset's key for the rung's track type when it is protected)."""
    rt = ctx.runtime
    parts = _fetch_chunks(ctx, asset_id, rung.name, count, work / "chunks")
    joined = concat_chunks(rt.toolchain, rt.settings, parts, work / f"{rung.name}.mp4", duration)
    inputs = [PackagerInput(joined, "video", rung.name, frame_rate=str(rung.fps))]
    encryption = encryption_for(rt, asset_id, protection, [(rung.name, "video", rung.height)])
    packaged = package(rt.toolchain, rt.settings, inputs, work / "cmaf", duration, encryption)
    ctx.progress(PACKAGED, force=True)
    return packaged


def _finish_rung(rt: Runtime, asset_id: str, rung: str, presentation: Presentation | None) -> None:
    """After publishing: the chunks go; the source cache too once the asset is complete."""
    if presentation is None:
        forget_if_deleted(rt, asset_id)
        return
    rt.store.delete_prefix(_chunk_prefix(asset_id, rung))
    log.info(
        "asset.ready" if presentation.complete else "asset.rung_published",
        asset_id=asset_id,
        published=rung,
        renditions=[r.id for r in presentation.video],
        pending=presentation.pending,
    )
    if presentation.complete:
        drop_cached_source(rt, asset_id)


def stitch_rung_job(ctx: JobContext, payload: StitchRung) -> None:
    """Join a rung's chunks, package the rung and add it to the asset's manifests."""
    rt = ctx.runtime
    asset_id = payload.asset_id
    rung, count = payload.rung, payload.chunks
    asset = load_pending(rt, asset_id)
    if asset is None:
        return
    if asset.presentation and Presentation.from_dict(asset.presentation).rendition(rung.name):
        return  # published by an earlier attempt
    work = work_dir(rt, ctx.job_id)
    try:
        packaged = _join_and_package(
            ctx, asset_id, rung, count, asset.duration or 0.0, work, asset.protection
        )
        if not ctx.still_owned():
            return
        on_file = span(ctx.progress, PACKAGED, STORED)
        store_packaged(rt.store, cmaf_prefix(asset_id), work / "cmaf", on_file)
        presentation = publish_renditions(
            rt, asset_id, packaged.renditions, base=False, protection=packaged.protection
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _finish_rung(rt, asset_id, rung.name, presentation)
