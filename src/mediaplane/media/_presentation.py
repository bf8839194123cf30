from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Any, Literal

Kind = Literal["video", "audio"]
#: What an audio rendition is for (the DASH Role scheme ``urn:mpeg:dash:role:2011``).
AudioRole = Literal["main", "alternate", "commentary", "description"]


@dataclass(frozen=True)
class Segment:
    """One CMAF media segment: ``start`` and ``duration`` in the rendition's timescale."""

    number: int
    start: int
    duration: int
    size: int  # bytes


@dataclass(frozen=True)
class Rendition:
    """One packaged track: an init segment plus numbered media segments."""

    id: str  # folder name and URL path component, e.g. "v720" or "audio"
    kind: Kind
    codecs: str
    timescale: int
    init_size: int
    segments: list[Segment]
    width: int | None = None
    height: int | None = None
    frame_rate: str | None = None  # "30" or "30000/1001"
    sample_rate: int | None = None
    channels: int | None = None
    language: str | None = None  # BCP 47 ("en", "fr"), as in HLS LANGUAGE and DASH @lang
    #: An audio rendition's label in players' track menus ("English", "Director's commentary").
    name: str | None = None
    #: The audio rendition played unless the viewer picks another (one per presentation).
    default: bool = False
    role: AudioRole | None = None
    #: False while segments are still being added (HLS EVENT playlist, no ENDLIST).
    complete: bool = True
    #: False for a rendition kept only for players already using it (not in new manifests).
    listed: bool = True
    #: An unlisted rendition's deletion time (ISO 8601, UTC); None: at the next clean-up.
    retire_at: str | None = None
    #: A video rendition that carries the audio too (the preview): HLS only.
    muxed: bool = False
    #: The KID (32 hex digits) its segments are encrypted with and how (``cenc``,
    #: ``cbcs``, ``aes-128``); None: clear.
    kid: str | None = None
    scheme: str | None = None
    #: The commercial DRM systems' PSSH boxes for its KID: (system id, base64 of the box).
    drm_systems: tuple[tuple[str, str], ...] = ()

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments) / self.timescale

    @property
    def total_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def average_bandwidth(self) -> int:
        """Bits per second over the whole rendition."""
        d = self.duration
        return int(round(self.total_bytes * 8 / d)) if d > 0 else 0

    @property
    def peak_bandwidth(self) -> int:
        """Highest bits per second of any one segment (HLS BANDWIDTH)."""
        return max(
            (
                int(round(s.size * 8 * self.timescale / s.duration))
                for s in self.segments
                if s.duration
            ),
            default=0,
        )

    @property
    def fps(self) -> Fraction | None:
        return Fraction(self.frame_rate) if self.frame_rate else None

    def init_path(self) -> str:
        return f"{self.id}/init.mp4"

    def segment_path(self, number: int) -> str:
        return f"{self.id}/{number}.m4s"


@dataclass(frozen=True)
class Presentation:
    """A packaged asset: every rendition of one set of CMAF segments (HLS and DASH share it)."""

    duration: float  # seconds
    segment_seconds: int
    renditions: list[Rendition] = field(default_factory=list)
    #: Rendition ids still being encoded (they join the manifests when packaged).
    pending: list[str] = field(default_factory=list)
    #: How the listed renditions are encrypted: ``cenc``, ``cbcs``, ``aes-128``; None: clear.
    protection: str | None = None

    @property
    def video(self) -> list[Rendition]:
        """Listed video renditions, lowest bandwidth first."""
        return sorted(
            (r for r in self.renditions if r.kind == "video" and r.listed),
            key=lambda r: r.peak_bandwidth,
        )

    @property
    def audio(self) -> list[Rendition]:
        """Listed audio renditions, the default one first (the first listed when none is
        marked, as in presentations packaged before several audio tracks were kept)."""
        listed = [r for r in self.renditions if r.kind == "audio" and r.listed]
        return sorted(listed, key=lambda r: (not r.default, len(r.id), r.id))

    @property
    def audio_only(self) -> bool:
        """No video is listed or coming: an audio-only asset (podcast, music)."""
        return bool(self.audio) and not self.video and not self.pending

    @property
    def playable(self) -> bool:
        """A player can start: a video rendition is listed, or an audio-only asset's audio."""
        return bool(self.video) or self.audio_only

    @property
    def complete(self) -> bool:
        """Every listed rendition is finished and nothing is pending (DASH can be served)."""
        listed = [r for r in self.renditions if r.listed]
        return bool(listed) and not self.pending and all(r.complete for r in listed)

    @property
    def settled(self) -> bool:
        """Every listed rendition is finished and packaged on its own (no growing or muxed
        preview listed): a static MPD can describe it, though rungs may still join later."""
        listed = [r for r in self.renditions if r.listed]
        return bool(listed) and all(r.complete and not r.muxed for r in listed)

    def with_renditions(
        self, renditions: Iterable[Rendition], *, done: Iterable[str] = ()
    ) -> Presentation:
        """A copy with ``renditions`` added (replacing any with the same id) and the ids in
        ``done`` no longer pending."""
        new = {r.id: r for r in renditions}
        kept = [new.pop(r.id, r) for r in self.renditions]
        finished = set(done)
        return replace(
            self,
            renditions=[*kept, *new.values()],
            pending=[p for p in self.pending if p not in finished],
        )

    @property
    def rendition_ids(self) -> list[str]:
        return [r.id for r in self.renditions if r.listed]

    def rendition(self, rid: str) -> Rendition | None:
        return next((r for r in self.renditions if r.id == rid), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Presentation:
        renditions = [
            Rendition(
                **{
                    **r,
                    "segments": [Segment(**s) for s in r["segments"]],
                    "drm_systems": tuple(tuple(x) for x in r.get("drm_systems", ())),
                }
            )
            for r in data["renditions"]
        ]
        return cls(
            duration=float(data["duration"]),
            segment_seconds=int(data["segment_seconds"]),
            renditions=renditions,
            pending=list(data.get("pending", [])),
            protection=data.get("protection"),
        )
