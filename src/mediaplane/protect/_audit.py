"""The key-release audit log: every decision on handing a key out, without the key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from ._models import KeyRelease

if TYPE_CHECKING:
    from mediaplane.db import Database

__all__ = ["record_release", "releases"]


def record_release(
    db: Database,
    *,
    kid: str,
    asset_id: str | None,
    playback_id: str | None,
    principal: str,
    channel: str,
    granted: bool,
    reason: str,
    address: str | None = None,
) -> None:
    """Log one key-release decision (``kid`` in hex; ``address`` already truncated)."""
    with db.session() as s:
        s.add(
            KeyRelease(
                kid=kid[:32],
                asset_id=asset_id,
                playback_id=playback_id,
                principal=principal[:120],
                channel=channel,
                granted=granted,
                reason=reason[:64],
                address=address,
            )
        )


def releases(
    db: Database, *, asset_id: str | None = None, kid: str | None = None, limit: int = 100
) -> list[KeyRelease]:
    """The newest releases first, for one asset or KID if given."""
    q = select(KeyRelease).order_by(KeyRelease.id.desc()).limit(min(max(limit, 1), 1000))
    if asset_id is not None:
        q = q.where(KeyRelease.asset_id == asset_id)
    if kid is not None:
        q = q.where(KeyRelease.kid == kid)
    with db.session() as s:
        return list(s.scalars(q))
