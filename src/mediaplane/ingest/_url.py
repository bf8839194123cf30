from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class IngestError(Exception):
    """Root of ingest errors."""


class UrlRefused(IngestError):
    """The URL may not be fetched; the message says why."""


def _networks(allow: Iterable[str]) -> list[Network]:
    nets: list[Network] = []
    for item in allow:
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue  # host names in the allow-list are matched by name below
    return nets


def address_allowed(addr: IPAddress, allow: Iterable[str] = ()) -> bool:
    """True when ``addr`` is a public (globally routable) address or inside the allow-list."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if any(addr in net for net in _networks(allow)):
        return True
    return addr.is_global and not addr.is_multicast


def check_url(url: str, allow: Iterable[str] = ()) -> tuple[str, int, list[IPAddress]]:
    """Validate an import URL and resolve it; every resolved address must be allowed.

    Returns (host, port, addresses). Raises :class:`UrlRefused` with a client-facing reason.
    """
    allow = list(allow)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"The URL is not valid: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("Only http and https URLs can be imported.")
    host = parts.hostname
    if not host:
        raise UrlRefused("The URL has no host.")
    if parts.username or parts.password:
        raise UrlRefused("URLs with credentials are not accepted.")
    port = port or (443 if parts.scheme == "https" else 80)
    if host in allow:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UrlRefused(f"The host {host!r} could not be resolved.") from exc
        return host, port, [ipaddress.ip_address(str(i[4][0]).split("%", 1)[0]) for i in infos]
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addrs = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UrlRefused(f"The host {host!r} could not be resolved.") from exc
        addrs = [ipaddress.ip_address(str(i[4][0]).split("%", 1)[0]) for i in infos]
    if not addrs:
        raise UrlRefused(f"The host {host!r} has no address.")
    for addr in addrs:
        if not address_allowed(addr, allow):
            raise UrlRefused(
                f"The URL points to a private or reserved address ({addr}); only public "
                "addresses can be imported unless the operator allows it."
            )
    return host, port, addrs
