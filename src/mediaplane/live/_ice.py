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

And loopback stays loopback: a peer that offers 127.0.0.1 may still check it from another
local address (Chromium pairs its LAN socket with our loopback candidate, and Linux delivers
that), which aioice would answer and then use as a peer-reflexive candidate, sending to the
LAN address. So :func:`_install` also wraps ``aioice.Connection.request_received`` to drop a
connectivity check that reaches a loopback socket from a non-loopback address; the pair fails
and the loopback-to-loopback one is used. (aioice's default gathering binds no loopback
socket, so this changes nothing else.)
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
from collections.abc import Iterator, Sequence
from typing import Any

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

    request_received = aioice.ice.Connection.request_received

    def loopback_stays_loopback(
        self: aioice.ice.Connection, message: Any, addr: tuple[str, int], protocol: Any
    ) -> None:
        local = getattr(protocol.local_candidate, "host", None)
        if local is not None and _loopback(local) and not _loopback(addr[0]):
            return  # no answer, no peer-reflexive candidate: nothing is sent to addr
        request_received(self, message, addr, protocol)

    aioice.ice.Connection.request_received = loopback_stays_loopback  # type: ignore[method-assign]


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


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
