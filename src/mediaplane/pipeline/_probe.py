"""Probe: what the source holds, and the facts of it recorded on the asset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mediaplane.catalog import Asset
from mediaplane.media import MediaInfo, probe

if TYPE_CHECKING:
    from fractions import Fraction
    from pathlib import Path

    from mediaplane.runtime import Runtime


def probe_source(rt: Runtime, source: Path) -> MediaInfo:
    """Probe ``source`` with the runtime's tools; raises ``InvalidMedia`` for a bad input."""
    return probe(rt.toolchain, source, rt.settings)


def record_video_facts(rt: Runtime, asset_id: str, info: MediaInfo, frame_rate: Fraction) -> bool:
    """Store the source's duration, size, video facts and output frame rate on the asset.
    Returns False when the asset is gone."""
    with rt.db.session() as s:
        row = s.get(Asset, asset_id)
        if row is None:
            return False
        row.duration, row.width, row.height = info.duration, info.width, info.height
        row.source_video = info.video_facts()
        row.frame_rate = str(frame_rate)
        return True


def record_audio_facts(rt: Runtime, asset_id: str, info: MediaInfo) -> bool:
    """Store an audio-only source's duration on the asset (no picture: no size or rate).
    Returns False when the asset is gone."""
    with rt.db.session() as s:
        row = s.get(Asset, asset_id)
        if row is None:
            return False
        row.duration, row.width, row.height, row.frame_rate = info.duration, None, None, None
        return True
