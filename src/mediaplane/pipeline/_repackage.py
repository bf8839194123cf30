"""Re-packaging: an asset's stored renditions packaged again under a new protection policy,
without re-encoding.

The encodes are not kept, so each listed rendition is restored from what is stored: its
init segment and media segments concatenated back into one fragmented MP4 (decrypted
first where the old policy encrypted it: our own AES for ``aes-128``, the packager's
raw-key decryption for ``cenc``/``cbcs``), then packaged with the same step as at ingest.
The new renditions get new ids (``v720`` → ``v720_r1``: new URLs), so players already on
the old ones keep playing them (they stay, unlisted) while new players get the new, for
``replaced_renditions_seconds``: then a watchdog pass (:func:`retire_replaced_renditions`)
deletes them (so a newly protected asset's clear copies do not stay reachable). A further
re-package deletes the renditions two policies old at once.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select, update

from mediaplane.catalog import Asset, AssetStatus, RepackageAsset
from mediaplane.db import utcnow
from mediaplane.jobs import JobContext, PermanentJobError
from mediaplane.media import (
    PREVIEW_DIR,
    MediaError,
    PackagerInput,
    Presentation,
    Rendition,
    ShakaPackager,
    TrackKey,
    decrypt_segment,
    segment_iv,
)

from ._package import package, packaging_options
from ._protection import encryption_for, protected
from ._publish import cmaf_prefix, store_packaged, update_presentation
from ._workspace import work_dir

if TYPE_CHECKING:
    from pathlib import Path

    from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.pipeline")

_GENERATION = re.compile(r"^(.*)_r(\d+)$")


def _base_id(rid: str) -> tuple[str, int]:
    m = _GENERATION.match(rid)
    return (m.group(1), int(m.group(2))) if m else (rid, 0)


def _load(rt: Runtime, payload: RepackageAsset) -> Presentation | None:
    """The asset's presentation if re-packaging it is still wanted."""
    with rt.db.session() as s:
        row = s.get(Asset, payload.asset_id)
        if row is None or row.status is not AssetStatus.READY or not row.presentation:
            return None
        if row.protection != payload.protection:
            return None  # superseded
        return Presentation.from_dict(row.presentation)


def _track_key(rt: Runtime, r: Rendition) -> TrackKey:
    assert r.kid is not None
    key = rt.keys.get(bytes.fromhex(r.kid))
    return TrackKey(key.track_type.upper(), key.kid, key.key)


def _restore(
    rt: Runtime, asset_id: str, r: Rendition, scheme: str | None, work: Path, duration: float
) -> Path:
    """One rendition back as a clear fragmented MP4 from its stored segments."""
    prefix = f"{cmaf_prefix(asset_id)}{r.id}/"
    joined = work / "stored" / f"{r.id}.mp4"
    joined.parent.mkdir(parents=True, exist_ok=True)
    key = _track_key(rt, r) if scheme and r.kid else None
    with joined.open("wb") as out:
        out.write(rt.store.get_bytes(prefix + "init.mp4"))
        for seg in r.segments:
            data = rt.store.get_bytes(f"{prefix}{seg.number}.m4s")
            if scheme == "aes-128" and key is not None:
                data = decrypt_segment(data, key.key, segment_iv(seg.number))
            out.write(data)
    if scheme in ("cenc", "cbcs") and key is not None:
        clear = work / "clear" / f"{r.id}.mp4"
        clear.parent.mkdir(parents=True, exist_ok=True)
        options = packaging_options(rt.settings, duration)
        return ShakaPackager(rt.toolchain.packager).decrypt(joined, r.kind, clear, key, options)
    return joined


def repackage_asset(ctx: JobContext, payload: RepackageAsset) -> None:
    """Package the asset's listed renditions again under ``payload.protection`` and list
    the new ones in place of the old (which keep playing for players already on them)."""
    rt = ctx.runtime
    asset_id = payload.asset_id
    current = _load(rt, payload)
    if current is None:
        log.info("asset.repackage_skipped", asset_id=asset_id)
        return
    old_scheme, new_scheme = current.protection, payload.protection
    sources = [r for r in current.renditions if r.listed and not r.muxed and r.id != PREVIEW_DIR]
    generation = 1 + max((_base_id(r.id)[1] for r in current.renditions), default=0)
    work = work_dir(rt, ctx.job_id)
    try:
        try:
            inputs = [
                PackagerInput(
                    _restore(rt, asset_id, r, old_scheme, work, current.duration),
                    r.kind,
                    f"{_base_id(r.id)[0]}_r{generation}",
                    frame_rate=r.frame_rate,
                    language=r.language,
                    name=r.name,
                    default=r.default,
                    role=r.role,
                )
                for r in sources
            ]
            heights = {i.rendition_id: r.height for i, r in zip(inputs, sources, strict=True)}
            tracks = [(i.rendition_id, i.kind, heights[i.rendition_id]) for i in inputs]
            rotate = payload.rotate_keys and protected(old_scheme) and protected(new_scheme)
            encryption = encryption_for(rt, asset_id, new_scheme, tracks, rotate=rotate)
            packaged = package(
                rt.toolchain, rt.settings, inputs, work / "cmaf", current.duration, encryption
            )
        except MediaError as exc:
            log.warning("asset.repackage_failed", asset_id=asset_id, error=str(exc)[:2000])
            raise PermanentJobError(
                f"Changing this asset's protection to {new_scheme} failed: its stored "
                "renditions are damaged or unreadable and could not be packaged again. "
                "Upload the video again to replace them."
            ) from exc
        if not ctx.still_owned():
            return
        store_packaged(rt.store, cmaf_prefix(asset_id), work / "cmaf", lambda _f: None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _publish(rt, asset_id, packaged, {r.id for r in sources})
    log.info(
        "asset.repackaged",
        asset_id=asset_id,
        protection=new_scheme,
        renditions=[r.id for r in packaged.renditions],
    )


def _replaced(r: Rendition, protection: str | None) -> bool:
    """An unlisted rendition kept only for players already on it (a clear asset's unlisted
    preview stays: it is not one a re-package replaced)."""
    return not r.listed and (r.id != PREVIEW_DIR or protection is not None)


def _publish(rt: Runtime, asset_id: str, packaged: Presentation, replaced: set[str]) -> None:
    """List the new renditions instead of ``replaced`` (deleted once their grace is over);
    delete what was unlisted before."""
    stale: list[str] = []
    retire_at = utcnow() + timedelta(seconds=rt.settings.replaced_renditions_seconds)

    def change(current: Presentation | None) -> Presentation | None:
        if current is None:
            return None
        stale.clear()
        kept = []
        for r in current.renditions:
            if r.id in replaced:
                kept.append(replace(r, listed=False, retire_at=retire_at.isoformat()))
            elif _replaced(r, packaged.protection):
                stale.append(r.id)  # two policies old, or a clear preview once protected
            else:
                kept.append(r)
        scheme = packaged.protection
        return replace(current, renditions=[*kept, *packaged.renditions], protection=scheme)

    written = update_presentation(rt, asset_id, change)
    if written is None:
        return
    _set_due(rt, asset_id, written)
    for rid in stale:
        rt.store.delete_prefix(f"{cmaf_prefix(asset_id)}{rid}/")


def _due(r: Rendition, now: datetime) -> bool:
    return r.retire_at is None or datetime.fromisoformat(r.retire_at) <= now


def _set_due(rt: Runtime, asset_id: str, p: Presentation | None) -> None:
    """The asset's next retirement: its replaced renditions' earliest ``retire_at``."""
    replaced = [r for r in p.renditions if _replaced(r, p.protection)] if p else []
    times = [r.retire_at or "" for r in replaced]
    due = min((datetime.fromisoformat(t) if t else utcnow() for t in times), default=None)
    with rt.db.session() as s:
        s.execute(update(Asset).where(Asset.id == asset_id).values(renditions_retire_at=due))


def _retire(rt: Runtime, asset_id: str, now: datetime) -> list[str]:
    """Delete the asset's replaced renditions due by ``now``; the ids deleted."""
    gone: list[str] = []
    after: list[Presentation] = []  # what the asset keeps (none: gone or errored)

    def change(current: Presentation | None) -> Presentation | None:
        gone.clear()
        after.clear()
        if current is None:
            return None
        gone.extend(
            r.id for r in current.renditions if _replaced(r, current.protection) and _due(r, now)
        )
        kept = replace(current, renditions=[r for r in current.renditions if r.id not in gone])
        after.append(kept)
        return kept if gone else None

    if update_presentation(rt, asset_id, change) is None:
        gone.clear()  # nothing was due, or nothing was written
    _set_due(rt, asset_id, after[0] if after else None)
    for rid in gone:
        rt.store.delete_prefix(f"{cmaf_prefix(asset_id)}{rid}/")
    return gone


#: Assets a retirement pass looks at, at most.
RETIRE_BATCH = 20


def retire_replaced_renditions(
    rt: Runtime, now: datetime | None = None, limit: int = RETIRE_BATCH
) -> list[str]:
    """A watchdog pass: delete the renditions re-packages replaced once their grace is over
    (out of the presentation first, then their objects). Returns ``asset/rendition`` ids."""
    now = now or utcnow()
    with rt.db.session() as s:
        due = s.scalars(
            select(Asset.id).where(Asset.renditions_retire_at <= now).limit(limit)
        ).all()
    retired = [f"{asset_id}/{rid}" for asset_id in due for rid in _retire(rt, asset_id, now)]
    if retired:
        log.info("asset.renditions_retired", renditions=retired)
    return retired
