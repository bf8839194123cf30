"""Web: server-rendered pages (Jinja2 + htmx) and the vendored player JS from node_modules."""

from __future__ import annotations

from ._pages import router

__all__ = ["router"]
