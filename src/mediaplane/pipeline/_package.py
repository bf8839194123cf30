"""Package: encoded MP4s into one set of CMAF segments (served as HLS and DASH).

The step takes data, not a job: live packages its own encodes into its own folder, and
protection will pass keys the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mediaplane.media import (
    Encryption,
    MediaInfo,
    PackagerInput,
    PackagingOptions,
    Presentation,
    Rung,
    ShakaPackager,
    audio_tracks,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from mediaplane.config import Settings
    from mediaplane.media import Toolchain


def packaging_options(settings: Settings, duration: float) -> PackagingOptions:
    """Segment length and the packager's time and memory bounds for ``duration`` seconds."""
    return PackagingOptions(
        segment_seconds=settings.segment_seconds,
        timeout_seconds=min(120 + duration * 2, settings.encode_timeout_max_seconds),
        memory_bytes=settings.subprocess_memory_bytes,
    )


def package(
    tools: Toolchain,
    settings: Settings,
    inputs: Sequence[PackagerInput],
    out_dir: Path,
    duration: float,
    encryption: Encryption | None = None,
) -> Presentation:
    """Package ``inputs`` into ``out_dir/<rendition>/``; returns what was written.

    :param duration: of the media, in seconds (bounds the packager's run time).
    :param encryption: the keys, for a protected asset (one code path for both).
    """
    return ShakaPackager(tools.packager).package(
        inputs, out_dir, packaging_options(settings, duration), encryption
    )


def video_inputs(rungs: Sequence[Rung], outputs: dict[str, Path]) -> list[PackagerInput]:
    """One packager input per encoded rung (``outputs``: rendition id → MP4)."""
    return [
        PackagerInput(
            path=outputs[r.name], kind="video", rendition_id=r.name, frame_rate=str(r.fps)
        )
        for r in rungs
    ]


def audio_inputs(info: MediaInfo, outputs: dict[str, Path]) -> list[PackagerInput]:
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
