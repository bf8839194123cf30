"""The SSRF guard for URL imports: which URLs and addresses may be fetched.

A host name is resolved once (:func:`checked_addresses`); every address it resolves to
must pass :func:`address_allowed`, and the import then connects to those very addresses
(``_fetch``), so a name that answers differently the second time (DNS rebinding) gets
nowhere. No function here sends traffic.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

from ._errors import IngestError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: Seconds one host name lookup may take. getaddrinfo has no timeout of its own: a resolver
#: that never answers would hold the request (and its client) for as long as it liked.
RESOLVE_TIMEOUT = 5.0
#: Lookups run here so a stuck one costs a thread, never the request; a full pool makes the
#: next lookup wait its turn within the same timeout (bounded either way).
_RESOLVER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="resolve")


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
    """True when ``addr`` is a public (globally routable) address or inside the allow-list.

    An IPv6 address that carries an IPv4 one (v4-mapped ``::ffff:a.b.c.d``, NAT64
    ``64:ff9b::a.b.c.d``) is judged by that IPv4 address; 6to4 and Teredo tunnels are
    refused (the far end is an IPv4 address of the tunnel's choosing).
    """
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        elif addr in _NAT64:
            addr = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        elif addr.sixtofour is not None or addr.teredo is not None:
            return False
    if any(addr in net for net in _networks(allow)):
        return True
    return addr.is_global and not addr.is_multicast


def parse_import_url(url: str) -> tuple[str, int]:
    """Check an import URL's shape (scheme, host, no credentials); returns (host, port).

    Raises :class:`UrlRefused` with a client-facing reason. Resolves nothing.
    """
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
    return host, port or (443 if parts.scheme == "https" else 80)


def is_loopback_name(host: str) -> bool:
    """``localhost`` and every name under ``.localhost`` are loopback by definition
    (RFC 6761 §6.3), whatever a resolver would answer."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def resolve(host: str, port: int, timeout: float = RESOLVE_TIMEOUT) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order (an IP literal as is).

    :param timeout: seconds the lookup may take before the URL is refused.
    """
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if is_loopback_name(host):
        return [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
    lookup = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=timeout)
    except FutureTimeout as exc:
        raise UrlRefused(f"The host {host!r} did not resolve within {timeout:g} s.") from exc
    except OSError as exc:
        raise UrlRefused(f"The host {host!r} could not be resolved.") from exc
    out: list[IPAddress] = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if addr not in out:
            out.append(addr)
    return out


def checked_addresses(host: str, port: int, allow: Iterable[str] = ()) -> list[IPAddress]:
    """Resolve ``host`` once and check every address; returns the addresses to connect to.

    A host name the operator allow-listed by name skips the address check (it is still
    resolved once, and those addresses are the ones connected to).
    """
    allow = list(allow)
    addrs = resolve(host, port)
    if not addrs:
        raise UrlRefused(f"The host {host!r} has no address.")
    if host in allow:
        return addrs
    for addr in addrs:
        if not address_allowed(addr, allow):
            raise UrlRefused(
                f"The URL points to a private or reserved address ({addr}); only public "
                "addresses can be imported unless the operator allows it."
            )
    return addrs


def check_url(url: str, allow: Iterable[str] = ()) -> tuple[str, int, list[IPAddress]]:
    """Validate an import URL and resolve it; every resolved address must be allowed.

    Returns (host, port, addresses). Raises :class:`UrlRefused` with a client-facing reason.
    """
    host, port = parse_import_url(url)
    return host, port, checked_addresses(host, port, allow)
