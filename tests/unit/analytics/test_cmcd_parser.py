"""CTA-5004 key/value grammar: numbers, quoted strings, tokens, booleans, bounds."""

from __future__ import annotations

import pytest

from mediaplane.analytics import InvalidCmcd, cmcd_of_request, parse_cmcd


def test_the_spec_example_query() -> None:
    # CTA-5004 §4 example (URL-encoded query argument)
    query = (
        b"CMCD=bl%3D21300%2Cbr%3D3200%2Cbs%2Ccid%3D%22faec5fc2-ac30-11eabb37-0242ac130002%22"
        b"%2Cd%3D4004%2Cdl%3D18500%2Cmtp%3D48100%2Cnor%3D%22..%252F300kbps%252Ftrack.m4v%22"
        b"%2Cnrr%3D%2212323-48763%22%2Cot%3Dv%2Cpr%3D1.08%2Crtp%3D12000%2Csf%3Dd%2C"
        b"sid%3D%226e2fb550-c457-11e9-bb97-0800200c9a66%22%2Cst%3Dv%2Csu%2Ctb%3D6000"
    )
    got = cmcd_of_request(query, [])
    assert got == {
        "bl": 21300,
        "br": 3200,
        "bs": True,
        "cid": "faec5fc2-ac30-11eabb37-0242ac130002",
        "d": 4004,
        "dl": 18500,
        "mtp": 48100,
        "nor": "..%2F300kbps%2Ftrack.m4v",
        "nrr": "12323-48763",
        "ot": "v",
        "pr": 1.08,
        "rtp": 12000,
        "sf": "d",
        "sid": "6e2fb550-c457-11e9-bb97-0800200c9a66",
        "st": "v",
        "su": True,
        "tb": 6000,
    }


def test_headers_merge_and_win_over_the_query() -> None:
    headers = [
        (b"cmcd-object", b"br=3200,d=4004,ot=v,tb=6000"),
        (b"cmcd-request", b"bl=21300,dl=18500,mtp=48100,su"),
        (b"cmcd-session", b'cid="c1",sf=h,sid="s1",st=l,v=1'),
        (b"cmcd-status", b"bs,rtp=15000"),
        (b"user-agent", b"ignored"),
    ]
    got = cmcd_of_request(b"CMCD=br%3D100", headers)
    assert got["br"] == 3200
    assert got["sid"] == "s1" and got["sf"] == "h" and got["st"] == "l" and got["v"] == 1
    assert got["bs"] is True and got["rtp"] == 15000 and got["su"] is True


def test_quoted_strings_keep_commas_and_escapes() -> None:
    got = parse_cmcd(r'cid="a,b\"c\\d",br=10')
    assert got == {"cid": 'a,b"c\\d', "br": 10}


def test_a_wrongly_typed_reserved_key_is_dropped_alone() -> None:
    # br must be an integer, bs a boolean, sid a string; custom keys keep what they are
    got = parse_cmcd('br="fast",bs=3,sid=token,com.example-x=1.5,pr=2,su')
    assert got == {"sid": "token", "com.example-x": 1.5, "pr": 2.0, "su": True}


@pytest.mark.parametrize(
    "text",
    [
        'cid="open',  # unterminated string
        'cid="bad\\escape"',
        "BR=1",  # keys are lowercase
        "br=1;bl=2",  # not a separator: the value is not a number, a string or a token
        "=3",
        "br=" + "9" * 40,  # number too long
        'cid="' + "x" * 300 + '"',  # string too long
        ",".join(f"k{i}" for i in range(65)),  # too many pairs
        "x" * 5000,  # field too long
        'cid="tab\there"',  # control characters
    ],
)
def test_broken_fields_are_refused(text: str) -> None:
    with pytest.raises(InvalidCmcd):
        parse_cmcd(text)


def test_empty_and_spaced_fields() -> None:
    assert parse_cmcd("") == {}
    assert parse_cmcd(" br=1 , ,bl=2 ") == {"br": 1, "bl": 2}
    assert cmcd_of_request(b"other=1", {"Accept": "*/*"}) == {}


def test_an_oversized_query_argument_is_refused_before_decoding() -> None:
    with pytest.raises(InvalidCmcd):
        cmcd_of_request(b"CMCD=" + b"%41" * 5000, [])
