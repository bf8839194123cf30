"""Encode: a source into the MP4s of its rungs and audio streams.

Every step takes its inputs as data (tools, settings, a source path, rungs, an output
folder, callbacks), not a job: live encodes another source into another folder with them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from mediaplane.media import (
    PREVIEW_DIR,
    ManagedProcess,
    MediaInfo,
    PlaylistEntry,
    Rung,
    encode_ladder,
    encode_preview,
    read_playlist,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mediaplane.config import Settings
    from mediaplane.media import Toolchain

#: The full ladder encodes beside the preview rung at lower CPU priority.
LADDER_NICE = 10


def preview_playlist(work: Path) -> list[PlaylistEntry]:
    """The segments of the preview encoded into ``work`` so far."""
    return read_playlist(work / PREVIEW_DIR / "media.m3u8")[0]


def encode_with_preview(
    tools: Toolchain,
    settings: Settings,
    source: Path,
    info: MediaInfo,
    lowest: Rung,
    upper: list[Rung],
    work: Path,
    *,
    on_preview_progress: Callable[[float], None],
    on_ladder_progress: Callable[[float], None],
    on_segments: Callable[[list[PlaylistEntry]], None],
    on_preview_done: Callable[[list[PlaylistEntry]], None],
) -> dict[str, Path]:
    """Encode ``lowest`` (with every audio stream) as a growing preview in ``work/preview``
    while the ``upper`` rungs encode beside it, in another thread at lower CPU priority, in
    one pass. Returns rendition id → MP4 of every rung and audio stream.

    :param on_segments: the preview's finished segments, each time they grow.
    :param on_preview_done: the preview's segments once its encode ended (the ladder may
        still run).
    """
    ladder_proc: list[ManagedProcess] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ladder") as pool:
        ladder = (
            pool.submit(
                encode_ladder,
                tools,
                settings,
                source,
                replace(info, audio=()),  # the preview encodes the audio
                upper,
                work / "encoded",
                on_ladder_progress,
                nice=LADDER_NICE,
                process=ladder_proc,
            )
            if upper
            else None
        )
        try:
            outputs = encode_preview(
                tools,
                settings,
                source,
                info,
                lowest,
                work,
                on_progress=on_preview_progress,
                on_segments=on_segments,
            )
            on_preview_done(preview_playlist(work))
            if ladder is not None:
                outputs.update(ladder.result())
        except BaseException:
            for proc in ladder_proc:  # the pool waits for the ladder thread: end it now
                proc.cancel()
            raise
    return outputs


def encode_audio(
    tools: Toolchain,
    settings: Settings,
    source: Path,
    info: MediaInfo,
    out_dir: Path,
    on_progress: Callable[[float], None],
) -> dict[str, Path]:
    """Encode every audio stream of ``info`` in one run; returns rendition id → MP4."""
    return encode_ladder(tools, settings, source, info, [], out_dir, on_progress)
