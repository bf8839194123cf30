"""Which local addresses aiortc offers as ICE host candidates (``webrtc_ice_addresses``).

Why this module exists: aioice 0.13 takes its host candidates from the module function
``aioice.ice.get_host_addresses``, which lists every interface but loopback, and neither
aiortc's ``RTCConfiguration`` nor ``aioice.Connection`` takes an address list or a filter.
So this is the one place that wraps that function (:func:`_install`, once per process), and
the wrapper changes nothing unless the caller is inside :func:`ice_host_addresses`: a context
variable carries the configured list into the gathering tasks aiortc starts from
``setLocalDescription`` (``asyncio.gather`` copies the context into them), so a peer
connection gathers on exactly those addresses and any other aioice user in the process keeps
aioice's default.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
from collections.abc import Iterator, Sequence

__all__ = ["ice_host_addresses"]

_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "mediaplane_ice_host_addresses", default=None
)


def _install() -> None:
    import aioice.ice

    original = aioice.ice.get_host_addresses
    if getattr(original, "mediaplane_wrapped", False):
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = _ADDRESSES.get()
        if chosen is None:
            return original(use_ipv4, use_ipv6)
        return [
            a for a in chosen if (use_ipv4 if ipaddress.ip_address(a).version == 4 else use_ipv6)
        ]

    get_host_addresses.mediaplane_wrapped = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = get_host_addresses


@contextlib.contextmanager
def ice_host_addresses(addresses: Sequence[str]) -> Iterator[None]:
    """ICE gathering started inside (e.g. ``await pc.setLocalDescription(…)``) offers host
    candidates on ``addresses`` only; an empty list leaves aioice's default (every
    non-loopback interface)."""
    if not addresses:
        yield
        return
    _install()
    token = _ADDRESSES.set(tuple(addresses))
    try:
        yield
    finally:
        _ADDRESSES.reset(token)
