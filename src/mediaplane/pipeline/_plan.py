"""Plan: the ladder of rungs a source is encoded into."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mediaplane.media import MediaInfo, Rung, plan_source_ladder

if TYPE_CHECKING:
    from fractions import Fraction

    from mediaplane.config import Settings


@dataclass(frozen=True)
class LadderPlan:
    """The rungs of one source, highest first. The lowest is encoded first, as the preview
    that makes the asset playable within seconds; the upper ones follow."""

    rungs: tuple[Rung, ...]

    @property
    def lowest(self) -> Rung:
        return self.rungs[-1]

    @property
    def upper(self) -> list[Rung]:
        return list(self.rungs[:-1])

    @property
    def frame_rate(self) -> Fraction:
        """The output frame rate (every rung shares it)."""
        return self.rungs[0].fps

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rungs]


def plan_rungs(settings: Settings, info: MediaInfo) -> LadderPlan:
    """The ladder for ``info`` under the operator's segment length and deinterlace mode."""
    rungs = plan_source_ladder(
        info, settings.segment_seconds, field_rate=settings.deinterlace == "field"
    )
    return LadderPlan(tuple(rungs))
