"""Web: server-rendered pages (Jinja2 + htmx), the account pages, and the vendored player JS
from node_modules."""

from __future__ import annotations

from fastapi import APIRouter

from ._account_pages import router as _accounts
from ._admin_pages import ADMIN_NAV
from ._admin_pages import router as _admin
from ._pages import router as _pages
from ._studio_pages import router as _studio

router = APIRouter(include_in_schema=False)
router.include_router(_pages)
router.include_router(_accounts)
router.include_router(_studio)
router.include_router(_admin)

__all__ = ["ADMIN_NAV", "router"]
