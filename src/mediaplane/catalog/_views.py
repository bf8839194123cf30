"""What the routers (the asset API, the pages) call: one function per request, answering
in the API's JSON shape, with the database work inside (so a router is parse → call →
respond, and blocking work runs where the router runs it: a thread)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mediaplane.accounts import (
    INSTALL,
    AccessRule,
    Viewer,
    Visibility,
    account_facts,
    entitle,
    upload_channel,
)

from ._access_rules import asset_rule
from ._models import ModerationStatus
from ._rights import PlaybackTerms, Rights
from ._service import (
    AssetAction,
    AssetNotFound,
    asset_for_playback,
    asset_to_api,
    authorized_asset,
    delete_asset,
    get_asset,
    ingest_file,
    ingest_url,
    list_assets,
    moderate_asset,
    owned_by,
    progress_of,
    publicly_listed,
    update_asset,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mediaplane.accounts import Principal
    from mediaplane.runtime import Runtime

__all__ = [
    "PlaybackView",
    "asset_view",
    "asset_views",
    "decide_moderation",
    "edit_asset",
    "entitlement_view",
    "import_asset",
    "may_read",
    "own_asset_views",
    "public_asset_views",
    "playback_view",
    "remove_asset",
    "target_channel",
    "upload_asset",
]


def asset_view(
    runtime: Runtime, principal: Principal, asset_id: str, base_url: str | None = None
) -> dict[str, Any]:
    """The API shape of one asset ``principal`` may see (404 :class:`AssetNotFound`
    otherwise), with its progress.

    :param base_url: what playback URLs start with; the public URL when None.
    """
    base = runtime.settings.effective_public_url if base_url is None else base_url
    with runtime.db.session() as s:
        asset = authorized_asset(s, principal, asset_id, AssetAction.READ)
        return asset_to_api(asset, progress_of(s, [asset]).get(asset.id), base)


def may_read(runtime: Runtime, principal: Principal, asset_id: str) -> bool:
    """Whether ``principal`` may see the asset (its channel's members, admins, …)."""
    with runtime.db.session() as s:
        try:
            authorized_asset(s, principal, asset_id, AssetAction.READ)
        except AssetNotFound:
            return False
        return True


def _created_view(runtime: Runtime, asset_id: str) -> dict[str, Any]:
    base = runtime.settings.effective_public_url
    with runtime.db.session() as s:
        asset = get_asset(s, asset_id)
        return asset_to_api(asset, progress_of(s, [asset]).get(asset.id), base)


def asset_views(
    runtime: Runtime,
    *,
    principal: Principal,
    limit: int,
    page: int,
    content_hash: str | None = None,
    base_url: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the assets ``principal`` may see in the API shape, newest first, and how
    many of them there are in all."""
    base = runtime.settings.effective_public_url if base_url is None else base_url
    with runtime.db.session() as s:
        rows, total = list_assets(
            s,
            principal=principal,
            limit=limit,
            page=page,
            content_hash=content_hash,
        )
        progress = progress_of(s, rows)
        return [asset_to_api(a, progress.get(a.id), base) for a in rows], total


def _page_of(
    runtime: Runtime, principal: Principal, where: Any, limit: int, page: int, base_url: str
) -> tuple[list[dict[str, Any]], int]:
    with runtime.db.session() as s:
        rows, total = list_assets(s, principal=principal, limit=limit, page=page, where=where)
        progress = progress_of(s, rows)
        return [asset_to_api(a, progress.get(a.id), base_url) for a in rows], total


def public_asset_views(
    runtime: Runtime, *, limit: int, page: int, base_url: str = ""
) -> tuple[list[dict[str, Any]], int]:
    """A page of the public list (what an anonymous viewer may find and watch), newest
    first, in the API shape; and how many there are."""
    return _page_of(runtime, INSTALL, publicly_listed(), limit, page, base_url)


def own_asset_views(
    runtime: Runtime, principal: Principal, *, limit: int, page: int, base_url: str = ""
) -> tuple[list[dict[str, Any]], int]:
    """A page of the assets of ``principal``'s channels (a creator's studio), newest first."""
    return _page_of(runtime, principal, owned_by(principal), limit, page, base_url)


def target_channel(runtime: Runtime, principal: Principal, channel_id: str | None) -> str | None:
    """The channel a new asset of ``principal``'s goes into (``accounts.upload_channel``):
    404 for a channel they are no member of, 403 without the editor role or any channel."""
    with runtime.db.session() as s:
        return upload_channel(s, principal, channel_id)


def upload_asset(
    runtime: Runtime, principal: Principal, path: Path, channel_id: str | None, **fields: Any
) -> dict[str, Any]:
    """:func:`ingest_file` into the caller's channel, answered in the API shape."""
    channel = target_channel(runtime, principal, channel_id)
    return _created_view(runtime, ingest_file(runtime, path, channel_id=channel, **fields).id)


def import_asset(
    runtime: Runtime, principal: Principal, url: str, channel_id: str | None, **fields: Any
) -> dict[str, Any]:
    """:func:`ingest_url` into the caller's channel, answered in the API shape."""
    channel = target_channel(runtime, principal, channel_id)
    return _created_view(runtime, ingest_url(runtime, url, channel_id=channel, **fields).id)


def _authorize(runtime: Runtime, principal: Principal, asset_id: str, action: AssetAction) -> None:
    with runtime.db.session() as s:
        authorized_asset(s, principal, asset_id, action)


def edit_asset(
    runtime: Runtime, principal: Principal, asset_id: str, **changes: Any
) -> dict[str, Any]:
    """:func:`update_asset` (the channel's editors), answered in the API shape."""
    _authorize(runtime, principal, asset_id, AssetAction.EDIT)
    update_asset(runtime, asset_id, **changes)
    return asset_view(runtime, principal, asset_id)


def remove_asset(runtime: Runtime, principal: Principal, asset_id: str) -> None:
    """:func:`delete_asset` (the channel's editors)."""
    _authorize(runtime, principal, asset_id, AssetAction.EDIT)
    delete_asset(runtime, asset_id)


def decide_moderation(
    runtime: Runtime, principal: Principal, asset_id: str, *, approve: bool
) -> dict[str, Any]:
    """:func:`moderate_asset` (moderators and admins), answered in the API shape."""
    _authorize(runtime, principal, asset_id, AssetAction.MODERATE)
    moderate_asset(runtime, asset_id, approve=approve)
    return _created_view(runtime, asset_id)


@dataclass(frozen=True)
class PlaybackView:
    """What a page shows of the asset behind a playback id, and what decides playback."""

    asset: dict[str, Any]
    moderation: ModerationStatus
    rights: Rights | None
    rule: AccessRule = AccessRule()
    channel_id: str | None = None


def playback_view(runtime: Runtime, playback_id: str, base_url: str = "") -> PlaybackView:
    """The asset behind ``playback_id`` in the API shape (404 :class:`AssetNotFound`)."""
    with runtime.db.session() as s:
        asset, _ = asset_for_playback(s, playback_id)
        data = asset_to_api(asset, progress_of(s, [asset]).get(asset.id), base_url)
        rights = Rights.from_json(asset.rights) if asset.rights else None
        return PlaybackView(data, asset.moderation, rights, asset_rule(asset), asset.channel_id)


def entitlement_view(
    runtime: Runtime,
    principal: Principal,
    asset_id: str,
    territory: Callable[[], str | None],
) -> dict[str, Any]:
    """The caller's entitlement decision for an asset (what the origin decides at a
    public playback id): ``allowed``, ``reason``, ``message``, ``max_streams``. A private
    asset of a channel the caller is no member of does not exist for them (404).

    :param territory: the caller's country, looked up only if the rights need it.
    """
    now = datetime.now(UTC)
    with runtime.db.session() as s:
        asset = get_asset(s, asset_id)
        facts = account_facts(s, principal.user_id, asset.id, asset.channel_id)
        if principal.sees_everything and not facts.member:
            facts = replace(facts, member=True)  # the install (admin token) has no user
        rule = asset_rule(asset)
        if rule.visibility is Visibility.PRIVATE and not facts.member:
            raise AssetNotFound(f"No asset with id {asset_id!r}.")
        rights = Rights.from_json(asset.rights) if asset.rights else None
        terms = PlaybackTerms(asset.moderation, rights)
    viewer = Viewer(territory, None, principal.user_id)
    decision = entitle(terms, viewer, signed=False, now=now, rule=rule, facts=facts)
    return {
        "asset_id": asset_id,
        "allowed": decision.allowed,
        "reason": decision.reason,
        "message": decision.message,
        "max_streams": decision.max_streams,
        "visibility": str(rule.visibility),
        "access": str(rule.kind),
    }
