"""The processing job of an uploaded asset: probe → plan → encode → package → publish.

The lowest rung is encoded first, as a preview published segment by segment (playable within
seconds), while the rest of the ladder encodes — beside it at lower priority in one pass, or
as chunk jobs across the fleet (:mod:`._chunked`); one set of CMAF segments is packaged from
the encodes and published. An audio-only source skips the ladder and the preview.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from mediaplane.catalog import ProcessAsset, poster_key
from mediaplane.jobs import JobContext
from mediaplane.media import MediaInfo, PackagerInput, Presentation, Rung, waveform_image

from ._assets import invalid_input_is_permanent, load_pending
from ._chunked import start_chunk_jobs
from ._encode import encode_audio, encode_with_preview
from ._package import audio_inputs, package, video_inputs
from ._plan import plan_rungs
from ._preview import PreviewPublisher
from ._probe import probe_source, record_audio_facts, record_video_facts
from ._progress import ENCODED, PACKAGED, PROBED, STORED, EncodeProgress, span
from ._protection import encryption_for, protected
from ._publish import (
    cmaf_prefix,
    first_presentation,
    publish_renditions,
    store_packaged,
    store_storyboard,
)
from ._workspace import forget_if_deleted, source_file, work_dir

if TYPE_CHECKING:
    from pathlib import Path

log = structlog.get_logger("mediaplane.pipeline")


@dataclass(frozen=True)
class _Attempt:
    """One processing attempt's input: the asset, its local source and what it holds."""

    asset_id: str
    source: Path
    info: MediaInfo
    work: Path
    #: What an earlier attempt published (None on the first).
    earlier: Presentation | None
    #: The asset's protection policy (``none``, ``aes-128``, ``cenc``, ``cbcs``).
    protection: str = "none"


def process_asset(ctx: JobContext, payload: ProcessAsset) -> None:
    """Probe; encode the lowest rung first (playable within seconds) while the rest of the
    ladder encodes — beside it at lower priority in one pass, or as chunk jobs across the
    fleet (:mod:`._chunked`); package one set of CMAF segments; publish."""
    rt = ctx.runtime
    asset_id = payload.asset_id
    asset = load_pending(rt, asset_id)
    if asset is None or asset.source_key is None:
        return
    earlier = Presentation.from_dict(asset.presentation) if asset.presentation else None
    work = work_dir(rt, ctx.job_id)
    published = False
    try:
        source = source_file(rt, asset_id, asset.source_key, work, shared=rt.settings.chunked)
        with invalid_input_is_permanent():
            info = probe_source(rt, source)
        attempt = _Attempt(asset_id, source, info, work, earlier, asset.protection)
        process = _process_video if info.has_video else _process_audio_only
        published = process(ctx, attempt)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not published:
            forget_if_deleted(rt, asset_id)


def _process_video(ctx: JobContext, a: _Attempt) -> bool:
    """Record the facts, plan the ladder, hand the upper rungs to chunk jobs when chunked,
    and encode, package and publish the base. Returns whether the base is published."""
    rt = ctx.runtime
    plan = plan_rungs(rt.settings, a.info)
    if not record_video_facts(rt, a.asset_id, a.info, plan.frame_rate):
        return False
    ctx.progress(PROBED, force=True)
    if a.earlier is None:  # the first attempt: every rung pending
        first_presentation(rt, a.asset_id, a.info.duration, pending=plan.names)
    upper = plan.upper
    if protected(a.protection):  # every key made once, before chunk jobs package rungs
        tracks: list[tuple[str, str, int | None]] = [
            (r.name, "video", r.height) for r in plan.rungs
        ]
        if a.info.has_audio:
            tracks.append(("audio", "audio", None))
        encryption_for(rt, a.asset_id, a.protection, tracks)
    if rt.settings.chunked and upper:
        start_chunk_jobs(rt, a.asset_id, a.info, upper)
        if a.earlier is not None and a.earlier.rendition(plan.lowest.name):
            return True  # an earlier attempt packaged the base; chunk jobs do the rest
        upper = []
    return _publish_video_base(ctx, a, plan.lowest, upper)


def _encode_video(
    ctx: JobContext, a: _Attempt, lowest: Rung, upper: list[Rung], preview: PreviewPublisher
) -> dict[str, Path]:
    """The preview and the one-pass ``upper`` rungs encoded; rendition id → MP4."""
    rt = ctx.runtime
    progress = EncodeProgress(ctx.progress, ladder=bool(upper))
    with invalid_input_is_permanent():
        outputs = encode_with_preview(
            rt.toolchain,
            rt.settings,
            a.source,
            a.info,
            lowest,
            upper,
            a.work,
            on_preview_progress=progress.preview,
            on_ladder_progress=progress.ladder,
            on_segments=preview.publish,
            on_preview_done=preview.publish_complete,
        )
    ctx.progress(ENCODED, force=True)
    return outputs


def _package_and_store(
    ctx: JobContext, a: _Attempt, inputs: list[PackagerInput], heights: dict[str, int]
) -> Presentation | None:
    """Package ``inputs`` (encrypted with the asset's keys when it is protected; video
    ``heights`` choose SD or HD keys) and store the segments; None when this attempt no
    longer owns the job (nothing is stored then)."""
    rt = ctx.runtime
    tracks = [(i.rendition_id, i.kind, heights.get(i.rendition_id)) for i in inputs]
    encryption = encryption_for(rt, a.asset_id, a.protection, tracks)
    packaged = package(
        rt.toolchain, rt.settings, inputs, a.work / "cmaf", a.info.duration, encryption
    )
    ctx.progress(PACKAGED, force=True)
    if not ctx.still_owned():
        log.warning("asset.publish_skipped_not_owner", asset_id=a.asset_id)
        return None
    on_file = span(ctx.progress, PACKAGED, STORED)
    store_packaged(rt.store, cmaf_prefix(a.asset_id), a.work / "cmaf", on_file)
    return packaged


def _publish_video_base(ctx: JobContext, a: _Attempt, lowest: Rung, upper: list[Rung]) -> bool:
    """Encode, package and publish the base: the lowest rung (published as a preview while
    it encodes), every audio stream and the one-pass upper rungs."""
    rt = ctx.runtime
    # A protected asset publishes nothing in the clear: no preview, its base comes first.
    clear = not protected(a.protection)
    preview = PreviewPublisher(
        rt, a.asset_id, lowest, a.info, a.work, ctx.still_owned, enabled=clear
    )
    outputs = _encode_video(ctx, a, lowest, upper, preview)
    inputs = [*video_inputs([*upper, lowest], outputs), *audio_inputs(a.info, outputs)]
    heights = {r.name: r.height for r in [*upper, lowest]}
    packaged = _package_and_store(ctx, a, inputs, heights)
    if packaged is None:
        return False
    store_storyboard(rt, a.asset_id, lowest, outputs[lowest.name], a.info.duration, a.work)
    renditions = list(packaged.renditions)
    if clear:
        renditions.append(preview.rendition(complete=True, listed=False))
    presentation = publish_renditions(
        rt, a.asset_id, renditions, base=True, protection=packaged.protection
    )
    if presentation is None:
        return False
    log.info(
        "asset.ready" if presentation.complete else "asset.base_published",
        asset_id=a.asset_id,
        published="base",
        renditions=[r.id for r in presentation.video],
        pending=presentation.pending,
    )
    return True


def _process_audio_only(ctx: JobContext, a: _Attempt) -> bool:
    """An audio-only source (podcast, music): every audio stream encoded in one run,
    packaged, a waveform stored as its poster, published. Returns whether it was.

    No preview: AAC encodes run at many times real time, so the packaged audio is the
    first thing playable."""
    rt = ctx.runtime
    if not record_audio_facts(rt, a.asset_id, a.info):
        return False
    ctx.progress(PROBED, force=True)
    first_presentation(rt, a.asset_id, a.info.duration, pending=[])
    with invalid_input_is_permanent():
        on_encoded = span(ctx.progress, PROBED, ENCODED)
        outputs = encode_audio(
            rt.toolchain, rt.settings, a.source, a.info, a.work / "encoded", on_encoded
        )
        poster = waveform_image(rt.toolchain, rt.settings, a.source, a.info)
    ctx.progress(ENCODED, force=True)
    packaged = _package_and_store(ctx, a, audio_inputs(a.info, outputs), {})
    if packaged is None:
        return False
    rt.store.put_bytes(poster_key(a.asset_id), poster)
    presentation = publish_renditions(
        rt, a.asset_id, packaged.renditions, base=True, protection=packaged.protection
    )
    if presentation is None:
        return False
    log.info(
        "asset.ready",
        asset_id=a.asset_id,
        published="audio",
        renditions=[r.id for r in presentation.audio],
    )
    return True
