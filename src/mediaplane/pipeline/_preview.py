"""The preview: the lowest rung published segment by segment while ffmpeg encodes it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mediaplane.media import (
    AAC_LC,
    PREVIEW_DIR,
    MediaInfo,
    PlaylistEntry,
    Presentation,
    Rendition,
    Rung,
    Segment,
    avc_codec_string,
)

from ._publish import cmaf_prefix, update_presentation

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mediaplane.runtime import Runtime

#: Preview segment durations come from ffmpeg's playlist in seconds; store them in µs.
PREVIEW_TIMESCALE = 1_000_000
#: Segments the preview holds before it is listed. A player reloads a growing playlist about
#: once per target duration: with one segment listed it reaches that segment's end before the
#: reload shows the next one and stalls; with two it has a whole reload interval in hand.
PREVIEW_START_SEGMENTS = 2


class PreviewPublisher:
    """Publishes the lowest rung's segments as ffmpeg finishes them.

    The asset turns ``ready`` with the first segments: the master playlist then lists this
    one growing rendition (an HLS EVENT playlist played from the start), which becomes a
    complete VOD rendition when its encode ends; the packaged renditions replace it in the
    master playlist when the base (audio + lowest rung, or the whole ladder) is packaged.

    :param still_owned: whether this job attempt may still write (fencing); checked before
        each publication.
    :param enabled: False for a protected asset: nothing is published in the clear (the
        encrypted base is the first thing that plays).
    """

    def __init__(
        self,
        rt: Runtime,
        asset_id: str,
        rung: Rung,
        info: MediaInfo,
        work: Path,
        still_owned: Callable[[], bool],
        *,
        enabled: bool = True,
    ) -> None:
        self.rt, self.asset_id, self.rung, self.info = rt, asset_id, rung, info
        self.enabled = enabled
        self.still_owned = still_owned
        self.dir = work / PREVIEW_DIR
        self.prefix = f"{cmaf_prefix(asset_id)}{PREVIEW_DIR}/"
        self.segments: list[Segment] = []
        self.codecs: str | None = None
        self.lock = threading.Lock()

    def rendition(self, *, complete: bool, listed: bool = True) -> Rendition:
        """The preview as a rendition of the presentation, with the segments stored so far."""
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
            muxed=self.info.has_audio,
        )

    def publish(self, entries: list[PlaylistEntry], *, complete: bool = False) -> None:
        """Store the segments of ``entries`` not stored yet and list the preview with them."""
        if not self.enabled:
            return
        with self.lock:
            new = entries[len(self.segments) :]
            if not complete and (not new or len(entries) < PREVIEW_START_SEGMENTS):
                return
            if not self.still_owned():
                return
            self._store_init()
            self._store_segments(new)
            if self.segments:
                self._list(self.rendition(complete=complete))

    def publish_complete(self, entries: list[PlaylistEntry]) -> None:
        """The preview's encode ended: publish it as a complete VOD rendition."""
        self.publish(entries, complete=True)

    def _store_init(self) -> None:
        if self.codecs is not None:
            return
        init = (self.dir / "init.mp4").read_bytes()
        self.codecs = avc_codec_string(init) + (f",{AAC_LC}" if self.info.has_audio else "")
        self.rt.store.put_bytes(self.prefix + "init.mp4", init)

    def _store_segments(self, entries: list[PlaylistEntry]) -> None:
        start = sum(s.duration for s in self.segments)
        for entry in entries:
            number = len(self.segments) + 1
            path = self.dir / entry.uri
            self.rt.store.put_file(f"{self.prefix}{number}.m4s", path)
            ticks = round(entry.duration * PREVIEW_TIMESCALE)
            self.segments.append(Segment(number, start, ticks, path.stat().st_size))
            start += ticks

    def _list(self, preview: Rendition) -> None:
        def change(current: Presentation | None) -> Presentation | None:
            # A base already packaged (an earlier attempt) is never replaced by a preview.
            if current is None or current.rendition(self.rung.name) is not None:
                return None
            return current.with_renditions([preview])

        update_presentation(self.rt, self.asset_id, change)
