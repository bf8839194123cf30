"""Live content protection: what a protected publish is encrypted with.

A live stream's ``protection`` (``none``, ``cenc`` or ``cbcs``) is read when a publisher
connects and applies from that publish on. :class:`LiveProtection` is what
:class:`~._output.LiveOutput` is given: the scheme, where a fresh content key comes from
(the key store, :func:`stream_protection`: one per key epoch, owned by the live stream, so
the licence server releases it for that stream's playback ids only) and the key rotation
period. Segment ``msn`` belongs to key epoch ``msn // rotation_segments`` (0 without
rotation): every rendition's segment ``msn`` shares its key, and a new epoch is announced
like a new init segment (EXT-X-MAP + EXT-X-KEY in HLS, a new Period in the MPD). Retired
keys stay in the store (:meth:`mediaplane.protect.KeyStore.get` finds them): players still
holding older segments of the DVR window get their keys.

The manifests the output writes name the licence server as :data:`LICENCE_PLACEHOLDER`;
the origin puts the absolute URL (with the playback id and the viewer's carry token) in
its place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mediaplane.media import CENC_SCHEMES

if TYPE_CHECKING:
    from mediaplane.runtime import Runtime

__all__ = ["LICENCE_PLACEHOLDER", "LIVE_PROTECTIONS", "LiveProtection", "stream_protection"]

#: A live stream's protection policies (``aes-128``, HLS full-segment, is VOD's only).
LIVE_PROTECTIONS = ("none", "cenc", "cbcs")
#: What the written manifests have where the licence URL goes (the origin replaces it).
LICENCE_PLACEHOLDER = "mediaplane:licence"


@dataclass(frozen=True)
class LiveProtection:
    """How a publish is encrypted.

    :param scheme: ``cenc`` or ``cbcs``.
    :param new_key: a fresh (KID, key) pair, 16 bytes each (blocking: the key store).
    :param rotation_segments: a new key every this many segments; 0: one key.
    """

    scheme: str
    new_key: Callable[[], tuple[bytes, bytes]]
    rotation_segments: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in CENC_SCHEMES:
            raise ValueError(f"live protection is cenc or cbcs, not {self.scheme!r}")
        if self.rotation_segments < 0:
            raise ValueError("rotation_segments is 0 (no rotation) or more")

    def epoch(self, msn: int) -> int:
        """The key epoch of segment ``msn``."""
        return msn // self.rotation_segments if self.rotation_segments > 0 else 0


def stream_protection(rt: Runtime, live_stream_id: str, scheme: str) -> LiveProtection | None:
    """The protection of a publish of ``live_stream_id`` under policy ``scheme`` (None for
    ``none``): keys from the runtime's key store, rotated every
    ``settings.live_key_rotation_segments`` segments."""
    if scheme == "none":
        return None

    def new_key() -> tuple[bytes, bytes]:
        key = rt.keys.rotate(live_stream_id, ["all"])["all"]
        return key.kid, key.key

    return LiveProtection(scheme, new_key, rt.settings.live_key_rotation_segments)
