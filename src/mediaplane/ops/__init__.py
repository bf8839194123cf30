"""Operations: logs with request/job ids (console lines on a TTY, else JSON), Prometheus
metrics, health and readiness."""

from __future__ import annotations

from ._observe import Metrics, RequestMiddleware, configure_logging, renders_json, router

__all__ = ["Metrics", "RequestMiddleware", "configure_logging", "renders_json", "router"]
