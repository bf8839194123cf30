"""Stream health: what a live publish looks like from the packager, on the stream's row.

:class:`HealthMeter` is fed by the packager as it works (the bytes a publisher sends, each
fragment each rendition packages) and answers a snapshot of the last
:data:`WINDOW_SECONDS`: input bitrate, frame rate, keyframe interval, frames dropped, whether
audio is present, and the real-time ratio of packaging (media seconds out per wall second,
the slowest rendition's: with an ABR ladder that is the ladder encoder's speed). The ingest
writes a snapshot to ``live_streams.health`` every :data:`HEALTH_SECONDS` while a publisher
is on (:func:`record_health`), and a ``failed`` one with the packager's message when the
stream fails, so the creator reads on the resource why it ended.

The ingest adds ``input``: the input the figures are of (``primary`` or ``backup``), or
``slate`` while the publisher is away (over the last figures it had).
``packager_restarts`` counts the packager's ffmpeg processes started again after one was
killed (the stream went on, after a discontinuity). ``mode`` says whether the publisher's
stream is passed through (``passthrough``: H.264 and AAC with keyframes close enough to
cut segments at) or encoded once for the stream (``transcode``), ``mode_reason`` why,
``source_codecs`` what the publisher sends.

Snapshot statuses: ``starting`` (no media packaged yet), ``healthy``, ``degraded`` (the
keyframe interval is longer than the segment target, or packaging runs slower than real
time, or the ladder encoder gave up), ``failed`` (with ``error``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from mediaplane.db import utcnow

from ._models import LiveStream

if TYPE_CHECKING:
    from mediaplane.runtime import Runtime

#: Seconds of input the figures are taken over.
WINDOW_SECONDS = 5.0
#: How often the ingest writes a publishing stream's health to its row.
HEALTH_SECONDS = 2.0
#: Packaging below this real-time ratio (over a full window) is ``degraded``.
SLOW_SPEED = 0.9
#: Keyframe gaps remembered (for the interval: their mean).
KEYFRAME_GAPS = 8


class HealthMeter:
    """Counts one publish as it is packaged; thread-safe (the packager's pipe threads feed
    fragments, the event loop feeds input bytes).

    :param segment_target: the stream's segment length: a keyframe interval longer than it
        makes segments long (and latency high), so the snapshot says ``degraded``.
    """

    def __init__(
        self, *, segment_target: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.segment_target = segment_target
        self.clock = clock
        self._lock = threading.Lock()
        self._bytes: deque[tuple[float, int]] = deque()
        self._frames: deque[tuple[float, float]] = deque()  # (wall, media start) of video
        self._progress: dict[str, deque[tuple[float, float]]] = {}  # name -> (wall, media end)
        self._gaps: deque[float] = deque(maxlen=KEYFRAME_GAPS)
        self._last_key: float | None = None
        self._seen_key = False
        self.dropped_frames = 0
        self.video: dict[str, Any] | None = None
        self.audio: dict[str, Any] | None = None
        self.ladder: list[dict[str, Any]] = []
        self.warning: str | None = None
        #: ``passthrough`` or ``transcode`` (once the packager started), and why.
        self.mode: str | None = None
        self.mode_reason: str | None = None
        self.source: dict[str, str | None] = {}  # the publisher's codecs, by track
        self.restarts = 0  # the packager's ffmpeg was killed and started again

    def _trim(self, q: deque[Any], now: float) -> None:
        while q and q[0][0] < now - WINDOW_SECONDS:
            q.popleft()

    def input(self, nbytes: int) -> None:
        """``nbytes`` of the publisher's stream arrived."""
        now = self.clock()
        with self._lock:
            self._bytes.append((now, nbytes))
            self._trim(self._bytes, now)

    def track(self, kind: str, info: dict[str, Any]) -> None:
        """The source's ``video`` or ``audio`` track (codec, width, height, …)."""
        with self._lock:
            if kind == "video":
                self.video = info
            else:
                self.audio = info

    def fragment(
        self, name: str, start: float, duration: float, *, sync: bool, source: bool
    ) -> None:
        """Rendition ``name`` packaged media from ``start`` for ``duration`` seconds.

        :param source: the fragment is a frame of the source's video (frame rate, keyframes
            and drops are counted on it; every rendition counts for the speed).
        """
        now = self.clock()
        with self._lock:
            q = self._progress.setdefault(name, deque())
            q.append((now, start + duration))
            self._trim(q, now)
            if not source:
                return
            if not self._seen_key and not sync:
                self.dropped_frames += 1  # before the first keyframe: not packaged
                return
            self._seen_key = True
            self._frames.append((now, start))
            self._trim(self._frames, now)
            if sync:
                if self._last_key is not None and start > self._last_key:
                    self._gaps.append(start - self._last_key)
                self._last_key = start

    def dropped(self, frames: int) -> None:
        """``frames`` were not packaged (e.g. the ladder encoder fell behind)."""
        with self._lock:
            self.dropped_frames += frames

    def snapshot(self) -> dict[str, Any]:
        """The figures now, as stored on the row (``updated_at`` is added there)."""
        now = self.clock()
        with self._lock:
            self._trim(self._bytes, now)
            span = max(1e-3, min(WINDOW_SECONDS, now - self._bytes[0][0])) if self._bytes else 0
            bitrate = round(8 * sum(n for _, n in self._bytes) / span) if span else 0
            frame_rate = None
            if len(self._frames) >= 2:
                media = self._frames[-1][1] - self._frames[0][1]
                if media > 0:
                    frame_rate = round((len(self._frames) - 1) / media, 2)
            interval = round(sum(self._gaps) / len(self._gaps), 3) if self._gaps else None
            speeds = []
            full = False
            for q in self._progress.values():
                self._trim(q, now)
                if len(q) >= 2 and q[-1][0] > q[0][0]:
                    speeds.append((q[-1][1] - q[0][1]) / (q[-1][0] - q[0][0]))
                    full = full or q[-1][0] - q[0][0] >= WINDOW_SECONDS * 0.8
            speed = round(min(speeds), 3) if speeds else None
            status = "healthy" if self._progress else "starting"
            warning = self.warning
            if interval is not None and interval > self.segment_target + 0.05:
                status = "degraded"
                warning = warning or (
                    f"the keyframe interval is {interval:.1f} s, longer than the"
                    f" {self.segment_target:.0f} s segments: set it to 1-2 seconds"
                )
            if speed is not None and full and speed < SLOW_SPEED:
                status = "degraded"
                warning = warning or f"packaging runs at {speed:.2f}x real time"
            if self.warning:
                status = "degraded"
            return {
                "status": status,
                "error": None,
                "warning": warning,
                "input_bitrate": bitrate,
                "frame_rate": frame_rate,
                "keyframe_interval": interval,
                "dropped_frames": self.dropped_frames,
                "audio": self.audio is not None,
                "video": dict(self.video) if self.video else None,
                "audio_track": dict(self.audio) if self.audio else None,
                "encoder_speed": speed,
                "ladder": [dict(r) for r in self.ladder],
                "mode": self.mode,
                "mode_reason": self.mode_reason,
                "source_codecs": dict(self.source),
                "packager_restarts": self.restarts,
            }


def failed_health(message: str, last: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``failed`` snapshot: ``message`` (what the creator should change) over the last
    figures (so the numbers before the failure stay readable)."""
    data = dict(last or {})
    data.update(status="failed", error=message, warning=None)
    return data


def record_health(
    runtime: Runtime,
    live_stream_id: str,
    session_id: str,
    health: dict[str, Any],
    *,
    at: datetime | None = None,
) -> bool:
    """Store ``health`` on the stream's row while ``session_id`` is its session (a late
    write for an ended session changes nothing). The row's ``updated_at`` is kept: health
    is not a change of the resource's settings. Blocking; True when a row was written."""
    now = at or utcnow()
    with runtime.db.session() as s:
        result = s.execute(
            update(LiveStream)
            .where(LiveStream.id == live_stream_id, LiveStream.active_session_id == session_id)
            .values(health=health, health_updated_at=now, updated_at=LiveStream.updated_at)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))


__all__ = ["HEALTH_SECONDS", "HealthMeter", "failed_health", "record_health"]
