"""Operations: JSON logs with request/job ids, Prometheus metrics, health and readiness."""

from __future__ import annotations

from ._observe import Metrics, RequestMiddleware, configure_logging, router

__all__ = ["Metrics", "RequestMiddleware", "configure_logging", "router"]
