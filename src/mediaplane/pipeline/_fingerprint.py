"""The ``asset.fingerprint`` job: audio duplicate detection.

It fingerprints the first :data:`~._chromaprint.FINGERPRINT_SECONDS` of the first audio
track (:mod:`._chromaprint`), stores the raw fingerprint on the asset and compares it with
every other stored fingerprint. When two assets match, the newer one gets
``audio_match_of = <the older one>`` — whichever of the two jobs finishes last sets it, so
two uploads fingerprinted at the same time still find each other.

The comparison runs here, not in ``catalog``: it needs the chromaprint comparison, and
catalog sits below the pipeline.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import func, select, update

from mediaplane.catalog import (
    Asset,
    FingerprintAudio,
    FingerprintStatus,
    record_content_hash,
    sha256_file,
)
from mediaplane.jobs import JobContext, PermanentJobError
from mediaplane.media import InvalidMedia, ProcessFailed, Source, classify

from ._assets import invalid_input_is_permanent
from ._chromaprint import (
    FINGERPRINT_MEMORY_BYTES,
    MIN_OVERLAP,
    Fingerprint,
    audio_fingerprint,
    compare,
)
from ._probe import probe_source
from ._progress import span
from ._workspace import work_dir

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mediaplane.media import MediaInfo
    from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.pipeline")

#: Fingerprint statuses whose result holds for any copy of the same bytes.
_REUSABLE = (FingerprintStatus.READY, FingerprintStatus.NO_AUDIO, FingerprintStatus.TOO_SHORT)


def _hash_if_missing(rt: Runtime, asset_id: str, source: Path) -> None:
    """Hash a source stored by a path that did not (e.g. a resumable upload)."""
    digest = sha256_file(source)
    with rt.db.session() as s:
        row = s.get(Asset, asset_id)
        if row is not None and row.content_hash is None:
            record_content_hash(s, row, digest)


def _fingerprint_audio(rt: Runtime, source: Path, info: MediaInfo) -> bytes:
    """The source's fingerprint; a track that cannot be decoded fails the job for good,
    a failure of the host is retried."""
    try:
        memory = min(rt.settings.subprocess_memory_bytes, FINGERPRINT_MEMORY_BYTES)
        return audio_fingerprint(rt.toolchain, Source(source, info.demuxer), memory_bytes=memory)
    except ProcessFailed as exc:
        failure = classify(exc, "The audio track could not be decoded.")
        if isinstance(failure, InvalidMedia):
            raise PermanentJobError(str(failure)) from exc
        raise failure from exc  # the host's problem: retried


def _compute(
    ctx: JobContext, asset_id: str, key: str, content_hash: str | None
) -> tuple[FingerprintStatus, bytes]:
    """Fetch the source when it is remote, fingerprint it; the status says what was found."""
    rt = ctx.runtime
    work = work_dir(rt, ctx.job_id, tag="fp-")
    try:
        source = rt.store.local_path(key)
        if source is None:
            source = work / "source"
            rt.store.download(key, source)
        ctx.progress(40.0, force=True)
        if content_hash is None:
            _hash_if_missing(rt, asset_id, source)
        with invalid_input_is_permanent():  # the processing job tells the creator
            info = probe_source(rt, source)
        if not info.has_audio:
            return FingerprintStatus.NO_AUDIO, b""
        fp = _fingerprint_audio(rt, source, info)
        ctx.progress(70.0, force=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(fp) // 4 < MIN_OVERLAP:
        return FingerprintStatus.TOO_SHORT, fp
    return FingerprintStatus.READY, fp


def _store(rt: Runtime, asset_id: str, status: FingerprintStatus, fp: bytes) -> bool:
    """Write the fingerprint on the asset; False when the asset is gone."""
    with rt.db.session() as s:
        row = s.get(Asset, asset_id)
        if row is None:
            return False
        row.fingerprint_status = status
        row.audio_fingerprint = fp or None
    log.info("fingerprint.stored", asset_id=asset_id, status=str(status), words=len(fp) // 4)
    return True


def fingerprint_asset(ctx: JobContext, payload: FingerprintAudio) -> None:
    """Job ``asset.fingerprint``: fingerprint the asset's audio and link matching assets."""
    rt = ctx.runtime
    asset_id = payload.asset_id
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        if asset is None or not asset.source_key:
            log.info("fingerprint.skip", asset_id=asset_id)
            return
        key, content_hash = asset.source_key, asset.content_hash
        reused: tuple[FingerprintStatus, bytes] | None = None
        original = s.get(Asset, asset.duplicate_of) if asset.duplicate_of else None
        if original is not None and original.fingerprint_status in _REUSABLE:
            # The same bytes give the same fingerprint: no need to decode them again.
            reused = (original.fingerprint_status, original.audio_fingerprint or b"")
    status, fp = reused or _compute(ctx, asset_id, key, content_hash)
    if _store(rt, asset_id, status, fp) and status is FingerprintStatus.READY:
        on_progress = span(ctx.progress, 70.0, 99.0)
        link_audio_matches(rt, asset_id, Fingerprint.from_bytes(fp), on_progress)


def _find_matches(
    rt: Runtime, asset_id: str, fp: Fingerprint, on_progress: Callable[[float], None]
) -> tuple[str | None, list[str]]:
    """This asset's best-matching older asset, and the newer matching assets that have no
    match yet."""
    with rt.db.session() as s:
        me = s.get(Asset, asset_id)
        if me is None:
            return None, []
        mine = (me.created_at, me.id)
        best: tuple[float, datetime, str] | None = None  # (ber, created_at, id)
        newer: list[str] = []
        others = (Asset.fingerprint_status == FingerprintStatus.READY) & (Asset.id != asset_id)
        total = s.scalar(select(func.count()).select_from(Asset).where(others)) or 1
        rows = s.execute(
            select(Asset.id, Asset.created_at, Asset.audio_fingerprint, Asset.audio_match_of)
            .where(others)
            .execution_options(yield_per=256)
        )
        # ~100 µs per comparison of two 2-minute fingerprints: 10 000 assets take about 1 s.
        for n, (other_id, created, blob, match_of) in enumerate(rows, start=1):
            on_progress(min(1.0, n / total))
            if not blob:
                continue
            match = compare(fp, Fingerprint.from_bytes(blob))
            if match is None:
                continue
            log.info(
                "fingerprint.match",
                asset_id=asset_id,
                other=other_id,
                ber=round(match.ber, 3),
                baseline=round(match.baseline, 3),
                offset_s=round(match.offset_seconds, 2),
            )
            if (created, other_id) < mine:
                if best is None or (match.ber, created, other_id) < best:
                    best = (match.ber, created, other_id)
            elif match_of is None:
                newer.append(other_id)
    return (best[2] if best is not None else None), newer


def link_audio_matches(
    rt: Runtime, asset_id: str, fp: Fingerprint, on_progress: Callable[[float], None]
) -> str | None:
    """Compare ``fp`` with every other stored fingerprint and link matching pairs.

    This asset gets ``audio_match_of`` = its best-matching older asset; newer matching
    assets that have no match yet get this one. Returns this asset's match, if any.

    :param on_progress: the fraction of stored fingerprints compared.
    """
    found, newer = _find_matches(rt, asset_id, fp, on_progress)
    with rt.db.session() as s:
        if found is not None:
            s.execute(update(Asset).where(Asset.id == asset_id).values(audio_match_of=found))
        for other_id in newer:
            s.execute(
                update(Asset)
                .where(Asset.id == other_id, Asset.audio_match_of.is_(None))
                .values(audio_match_of=asset_id)
            )
    return found


def fingerprint_gave_up(
    ctx: JobContext, payload: FingerprintAudio, message: str, *, permanent: bool
) -> None:
    """The fingerprint job will not be retried: mark it failed; the asset itself is fine."""
    asset_id = payload.asset_id
    with ctx.runtime.db.session() as s:
        row = s.get(Asset, asset_id)
        if row is not None:
            row.fingerprint_status = FingerprintStatus.FAILED
    log.info("fingerprint.failed", asset_id=asset_id, message=message, permanent=permanent)
