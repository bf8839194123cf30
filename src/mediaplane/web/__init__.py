"""Web: server-rendered pages (Jinja2 + htmx): the public list, upload and watch pages, the
account and library pages, a creator's studio (:mod:`._studio_pages`) and its live page
(:mod:`._live_pages`), the real-time viewers panel of the watch and live pages
(:mod:`._realtime_pages`), the admin pages (:mod:`._admin_pages`; :data:`ADMIN_NAV` is their
menu, which other admin page modules extend, as :mod:`._access_pages` does for plans and
grants, :mod:`._webhook_pages` for webhooks and :mod:`._analytics_pages` for the
analytics dashboards), and the vendored player JS from
node_modules."""

from __future__ import annotations

from fastapi import APIRouter

from ._access_pages import router as _access
from ._account_pages import router as _accounts
from ._admin_pages import ADMIN_NAV
from ._admin_pages import router as _admin
from ._analytics_pages import router as _analytics
from ._library_pages import router as _library
from ._live_pages import router as _live
from ._pages import router as _pages
from ._realtime_pages import router as _realtime
from ._studio_pages import router as _studio
from ._webhook_pages import router as _webhooks

router = APIRouter(include_in_schema=False)
router.include_router(_pages)
router.include_router(_accounts)
router.include_router(_studio)
router.include_router(_live)
router.include_router(_admin)
router.include_router(_access)
router.include_router(_library)
router.include_router(_webhooks)
router.include_router(_realtime)
router.include_router(_analytics)

__all__ = ["ADMIN_NAV", "router"]
