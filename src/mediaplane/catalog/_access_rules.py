"""An asset's access rule from client input: ``visibility`` (public, unlisted, private),
``access`` (free, plan, rental, purchase) and ``rental_hours`` (a rental's window), checked
strictly into an :class:`mediaplane.accounts.AccessRule`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mediaplane.accounts import AccessKind, AccessRule, Visibility

from ._rights import InvalidAssetInput

if TYPE_CHECKING:
    from ._models import Asset

__all__ = ["MAX_RENTAL_HOURS", "asset_rule", "parse_access_rule"]

MAX_RENTAL_HOURS = 24 * 366


def _choice(value: object, enum: type[Visibility] | type[AccessKind], name: str) -> Any:
    if isinstance(value, str):
        try:
            return enum(value.strip().lower())
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in enum)
    raise InvalidAssetInput(f"invalid_{name}", f"{name} {value!r} is not one of: {allowed}.")


def _hours(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 6:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RENTAL_HOURS:
        raise InvalidAssetInput(
            "invalid_rental_hours",
            f"rental_hours is a whole number of hours from 1 to {MAX_RENTAL_HOURS}.",
        )
    return value


def parse_access_rule(
    visibility: object = None,
    access: object = None,
    rental_hours: object = None,
    *,
    base: AccessRule | None = None,
) -> AccessRule:
    """The rule from client fields; a field left out (None) keeps ``base``'s (default:
    public, free). ``rental_hours`` only goes with ``access`` ``rental``.

    :raises InvalidAssetInput: ``invalid_visibility``, ``invalid_access``,
        ``invalid_rental_hours``, with what to send instead.
    """
    base = base or AccessRule()
    vis = (
        base.visibility
        if visibility in (None, "")
        else _choice(visibility, Visibility, "visibility")
    )
    kind = base.kind if access in (None, "") else _choice(access, AccessKind, "access")
    hours = _hours(rental_hours)
    if hours is None and kind is AccessKind.RENTAL and access in (None, ""):
        hours = base.rental_hours
    if hours is not None and kind is not AccessKind.RENTAL:
        raise InvalidAssetInput(
            "invalid_rental_hours", "rental_hours goes only with access rental."
        )
    return AccessRule(vis, kind, hours)


def asset_rule(asset: Asset) -> AccessRule:
    """The stored rule of ``asset``."""
    return AccessRule(asset.visibility, asset.access, asset.rental_hours)
