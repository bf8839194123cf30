"""Operations: logs with request/job ids (console lines on a TTY, else JSON), Prometheus
metrics, health and readiness."""

from __future__ import annotations

from ._observe import (
    Metrics,
    RequestMiddleware,
    RequestObserver,
    configure_logging,
    renders_json,
    router,
)

__all__ = [
    "Metrics",
    "RequestMiddleware",
    "RequestObserver",
    "configure_logging",
    "renders_json",
    "router",
]
