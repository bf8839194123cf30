"""SSRF guard: checked on parsed addresses; no traffic is sent anywhere."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

import pytest

from mediaplane.intake import UrlRefused, address_allowed, check_url, checked_addresses
from mediaplane.intake._url import resolve


@pytest.mark.parametrize(
    "addr",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
    ],
)
def test_private_and_reserved_refused(addr: str) -> None:
    assert not address_allowed(ipaddress.ip_address(addr))


@pytest.mark.parametrize("addr", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_allowed(addr: str) -> None:
    assert address_allowed(ipaddress.ip_address(addr))


def test_allow_list() -> None:
    assert address_allowed(ipaddress.ip_address("127.0.0.1"), ["127.0.0.0/8"])
    assert not address_allowed(ipaddress.ip_address("::1"), ["127.0.0.0/8"])
    assert address_allowed(ipaddress.ip_address("10.1.2.3"), ["junk", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "Only http and https"),
        ("javascript:alert(1)", "Only http and https"),
        ("http://", "no host"),
        ("http://a:b@127.0.0.1/", "credentials"),
        ("http://127.0.0.1:99999/", "not valid"),
        ("http://127.1/", "private or reserved"),
        ("http://[::1]/", "private or reserved"),
        ("http://localhost/", "private or reserved"),
    ],
)
def test_check_url_refusals(url: str, why: str) -> None:
    with pytest.raises(UrlRefused, match=why):
        check_url(url)


def test_check_url_loopback_allowed_by_operator() -> None:
    host, port, addrs = check_url("http://127.0.0.1:8081/x.mp4", ["127.0.0.1/32"])
    assert (host, port) == ("127.0.0.1", 8081)
    assert addrs == [ipaddress.ip_address("127.0.0.1")]


@pytest.mark.parametrize(
    "addr",
    [
        "::ffff:192.168.0.1",  # v4-mapped private
        "::ffff:169.254.169.254",  # v4-mapped link-local (cloud metadata)
        "64:ff9b::10.0.0.1",  # NAT64 of a private address (stdlib calls it global)
        "64:ff9b::127.0.0.1",
        "2002:7f00:1::1",  # 6to4 tunnel (to 127.0.0.1)
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "::",
        "::ffff:0.0.0.0",
        "fd12:3456::1",  # unique local
        "febf::1",  # link-local, end of fe80::/10
        "ff02::1",  # multicast
        "2001:db8::1",  # documentation
        "100::1",  # discard
        "127.255.255.254",
        "169.254.0.1",
        "198.51.100.7",
        "240.0.0.1",
    ],
)
def test_more_private_and_reserved_refused(addr: str) -> None:
    assert not address_allowed(ipaddress.ip_address(addr))


def test_nat64_of_a_public_address_allowed() -> None:
    assert address_allowed(ipaddress.ip_address("64:ff9b::8.8.8.8"))


def test_allow_list_judges_the_carried_ipv4() -> None:
    assert address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"), ["127.0.0.1/32"])
    assert not address_allowed(ipaddress.ip_address("::ffff:127.0.0.2"), ["127.0.0.1/32"])


def _answers(monkeypatch: pytest.MonkeyPatch, host: str, *addrs: str) -> list[str]:
    """Make ``host`` resolve to ``addrs`` (every other name as usual); returns the log of
    names asked for."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def fake(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if name != host:
            return real(name, port, *args, **kwargs)
        asked.append(name)
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in addrs
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """One public and one private answer: refused (an attacker picks which one is used)."""
    _answers(monkeypatch, "mixed.example", "93.184.216.34", "10.0.0.7")
    with pytest.raises(UrlRefused, match="10.0.0.7"):
        checked_addresses("mixed.example", 80)
    _answers(monkeypatch, "mapped.example", "::ffff:10.0.0.7")
    with pytest.raises(UrlRefused, match="private or reserved"):
        check_url("http://mapped.example/v.mp4")


def test_resolved_once_and_deduplicated(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _answers(monkeypatch, "media.example", "93.184.216.34", "93.184.216.34", "1.1.1.1")
    addrs = checked_addresses("media.example", 443)
    assert addrs == [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("1.1.1.1")]
    assert asked == ["media.example"]


def test_allow_listed_name_skips_the_address_check(monkeypatch: pytest.MonkeyPatch) -> None:
    _answers(monkeypatch, "nas.lan", "192.168.1.20")
    assert checked_addresses("nas.lan", 80, ["nas.lan"]) == [ipaddress.ip_address("192.168.1.20")]
    with pytest.raises(UrlRefused):
        checked_addresses("nas.lan", 80, ["other.lan"])


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "media.localhost"])
def test_localhost_names_are_loopback_without_a_lookup(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    """RFC 6761: refused by name, so a resolver that is slow or lies never decides it."""

    def no_lookup(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("localhost must not be looked up")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    with pytest.raises(UrlRefused, match="private or reserved"):
        check_url(f"http://{host}:9/v.mp4")
    assert checked_addresses(host, 9, [host])[0] == ipaddress.ip_address("127.0.0.1")


def test_a_resolver_that_never_answers_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stuck(*_a: Any, **_k: Any) -> Any:
        release.wait(10)
        raise socket.gaierror("released")

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    try:
        with pytest.raises(UrlRefused, match="did not resolve within 0.2 s"):
            resolve("slow.example", 80, timeout=0.2)
    finally:
        release.set()
