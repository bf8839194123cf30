"""SSRF guard: checked on parsed addresses; no traffic is sent anywhere."""

from __future__ import annotations

import ipaddress

import pytest

from mediaplane.ingest import UrlRefused, address_allowed, check_url


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
