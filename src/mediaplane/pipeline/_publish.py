"""Publish: packaged renditions stored and added to the asset's presentation (its manifests).

The presentation is written as a compare-and-set on its revision: the preview publisher and
the rung stitchers of several workers write it concurrently.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import update

from mediaplane.catalog import Asset, AssetStatus, emit_asset_event, emit_tracks_ready
from mediaplane.db import utcnow
from mediaplane.events import EventType
from mediaplane.media import (
    PREVIEW_DIR,
    MediaError,
    Presentation,
    Rendition,
    Rung,
    make_storyboard,
    thumbnail_name,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sqlalchemy.orm import Session

    from mediaplane.runtime import Runtime
    from mediaplane.storage import ObjectStore

log = structlog.get_logger("mediaplane.pipeline")


def cmaf_prefix(asset_id: str) -> str:
    """Where an asset's packaged renditions are stored."""
    return f"assets/{asset_id}/cmaf/"


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
    rt: Runtime,
    asset_id: str,
    change: Callable[[Presentation | None], Presentation | None],
    *,
    on_ready: Callable[[Session, Asset], None] | None = None,
) -> Presentation | None:
    """Read, change and write an asset's presentation as a compare-and-set on its revision
    (the preview publisher and the rung stitchers of several workers write concurrently).

    ``change`` gets the current presentation (None before the first) and returns the new
    one, or None to write nothing. The asset turns ``ready`` when the presentation first
    becomes playable (a video rendition listed, or an audio-only asset's audio packaged:
    :attr:`Presentation.playable`); ``tracks`` follows the listed renditions, and each track
    is announced (``video.asset.track.ready``, after ``video.asset.ready``) in the
    transaction that makes it ready. Returns what was written, or None when nothing was
    (also when the asset is gone or errored).

    :param on_ready: called in that transaction, before ``video.asset.ready`` is emitted,
        with the asset row: it may set more of the asset's fields and emit events of its
        own (a live recording: its facts and ``video.asset.live_stream_completed``).
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
            # The tracks announced so far: none until the asset turns ready, then the ones
            # this write replaces (the compare-and-set makes each announcement once).
            was_ready = row.status is AssetStatus.READY
            announced = list(row.tracks or []) if was_ready else []
            if playable:
                values.update(status=AssetStatus.READY, ready_at=utcnow(), errors=None)
            done = s.execute(
                update(Asset)
                .where(Asset.id == asset_id, Asset.presentation_rev == row.presentation_rev)
                .values(**values)
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                if playable:
                    s.refresh(row)
                    if on_ready is not None:
                        on_ready(s, row)
                    emit_asset_event(s, EventType.ASSET_READY, row, rt.settings)
                    log.info("asset.playable", asset_id=asset_id, renditions=new.rendition_ids)
                if playable or was_ready:
                    emit_tracks_ready(s, asset_id, values["tracks"], announced)
                return new
        time.sleep(min(0.5, 0.01 * (attempt + 1)))
    raise RuntimeError(f"the presentation of asset {asset_id} kept changing under this write")


def publish_renditions(
    rt: Runtime,
    asset_id: str,
    renditions: list[Rendition],
    *,
    base: bool,
    protection: str | None = None,
) -> Presentation | None:
    """Add packaged renditions (their segments already stored) to the asset's manifests.

    ``base``: the audio and lowest rung (or a whole one-pass ladder) that replace the
    preview for new players; the preview is unlisted (players already on it keep it) and
    every packaged video rendition listed. A rung stitched before the base is in stays
    unlisted until then: the master still lists the muxed preview, and a video-only rung has
    no audio group to pair with yet. ``protection``: the scheme the renditions are
    encrypted with (None: clear), which the manifests signal.
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
            new = current.with_renditions([*waiting, *renditions, *hidden], done=done)
            return replace(new, protection=protection)
        listed = preview is None or not preview.listed
        new = current.with_renditions([replace(r, listed=listed) for r in renditions], done=done)
        return replace(new, protection=protection)

    return update_presentation(rt, asset_id, change)


def first_presentation(rt: Runtime, asset_id: str, duration: float, pending: list[str]) -> None:
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


def store_packaged(
    store: ObjectStore, prefix: str, out_dir: Path, on_file: Callable[[float], None]
) -> None:
    """Upload the packager's output folder under ``prefix`` (e.g. :func:`cmaf_prefix`);
    ``on_file`` gets the fraction of files stored."""
    files = sorted(p for p in out_dir.rglob("*") if p.is_file())
    for i, path in enumerate(files, start=1):
        store.put_file(f"{prefix}{path.relative_to(out_dir).as_posix()}", path)
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
