"""Protection in the pipeline: the asset's keys (from the key store) as the packager's data.

The packaging step is the same for clear and protected assets; an asset with a policy
other than ``none`` hands :func:`encryption_for`'s :class:`~mediaplane.media.Encryption` to
it. Keys are one per track type (``sd``/``hd``/``audio``) or one per asset, as
``protection_keys`` says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mediaplane.media import Encryption, TrackKey
from mediaplane.protect import track_type_for

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mediaplane.runtime import Runtime


def protected(protection: str | None) -> bool:
    return bool(protection) and protection != "none"


def encryption_for(
    rt: Runtime,
    asset_id: str,
    protection: str | None,
    tracks: Sequence[tuple[str, str, int | None]],
    *,
    rotate: bool = False,
) -> Encryption | None:
    """The keys of each track (rendition id, kind, video height or None) under
    ``protection`` (None for ``none``): the asset's keys in
    force, made where missing, or all new ones with ``rotate`` (the retired ones stay for
    what was packaged with them)."""
    if not protected(protection):
        return None
    per_track = rt.settings.protection_keys == "track"
    types = {rid: track_type_for(kind, height, per_track) for rid, kind, height in tracks}
    wanted = set(types.values())
    keys = rt.keys.rotate(asset_id, wanted) if rotate else rt.keys.ensure_keys(asset_id, wanted)
    assert protection is not None
    return Encryption(
        protection,  # type: ignore[arg-type]  # a Protection value other than none
        {rid: TrackKey(t.upper(), keys[t].kid, keys[t].key) for rid, t in types.items()},
    )
