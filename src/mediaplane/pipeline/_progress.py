"""How a processing job's percentage is made up from its steps."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

# Share of the job's progress each phase ends at.
PROBED, ENCODED, PACKAGED = 2.0, 92.0, 96.0
#: Where storing the packaged output ends; the last percent is the job finishing.
STORED = 99.0
#: Share of the encode the preview rung stands for beside a one-pass ladder: the preview
#: rung is the cheap part of the work.
PREVIEW_WEIGHT = 0.25


def span(report: Callable[[float], None], start: float, end: float) -> Callable[[float], None]:
    """A fraction 0..1 reported as a percentage between ``start`` and ``end``."""
    return lambda fraction: report(start + (end - start) * fraction)


class EncodeProgress:
    """The preview's and the ladder's encode fractions, weighted into one percentage
    between :data:`PROBED` and :data:`ENCODED` (the two run in separate threads)."""

    def __init__(self, report: Callable[[float], None], *, ladder: bool) -> None:
        self._report = span(report, PROBED, ENCODED)
        self._weight = PREVIEW_WEIGHT if ladder else 1.0
        self._done = {"preview": 0.0, "ladder": 0.0 if ladder else 1.0}
        self._lock = threading.Lock()

    def _update(self, part: str, fraction: float) -> None:
        with self._lock:
            self._done[part] = fraction
            share = self._weight * self._done["preview"] + (1 - self._weight) * self._done["ladder"]
        self._report(share)

    def preview(self, fraction: float) -> None:
        self._update("preview", fraction)

    def ladder(self, fraction: float) -> None:
        self._update("ladder", fraction)
