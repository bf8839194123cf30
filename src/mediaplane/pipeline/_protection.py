"""Protection in the pipeline: the asset's keys (from the key store) as the packager's data.

The packaging step is the same for clear and protected assets; an asset with a policy
other than ``none`` hands :func:`encryption_for`'s :class:`~mediaplane.media.Encryption` to
it. Keys are one per track type (``sd``/``hd``/``audio``) or one per asset, as
``protection_keys`` says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mediaplane.media import DrmBox, Encryption, TrackKey
from mediaplane.protect import provide_keys, signals_for, track_type_for

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
    ``protection`` (None for ``none``): the asset's keys in force, made where missing (by
    the SPEKE key provider when one is configured), or all new ones with ``rotate`` (the
    retired ones stay for what was packaged with them); with the commercial DRM systems'
    PSSH boxes a key provider gave for them (SPEKE, or a CPIX import)."""
    if not protected(protection):
        return None
    per_track = rt.settings.protection_keys == "track"
    types = {rid: track_type_for(kind, height, per_track) for rid, kind, height in tracks}
    wanted = set(types.values())
    assert protection is not None
    keys = provide_keys(rt.keys, rt.settings, asset_id, wanted, protection, rotate=rotate)
    kids = [k.kid for k in keys.values()]
    return Encryption(
        protection,  # type: ignore[arg-type]  # a Protection value other than none
        {rid: TrackKey(t.upper(), keys[t].kid, keys[t].key) for rid, t in types.items()},
        tuple(DrmBox(s.system_id, s.kid, s.pssh) for s in signals_for(rt.db, kids) if s.pssh),
    )
