"""Web: server-rendered pages (Jinja2 + htmx), the account and library pages, and the
vendored player JS from node_modules."""

from __future__ import annotations

from fastapi import APIRouter

from ._account_pages import router as _accounts
from ._library_pages import router as _library
from ._pages import router as _pages

router = APIRouter(include_in_schema=False)
router.include_router(_pages)
router.include_router(_accounts)
router.include_router(_library)

__all__ = ["router"]
