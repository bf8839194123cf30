"""Hostile input: the playlist and MPD parsers raise nothing but ManifestError."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaplane.media import MPD, ManifestError, parse_playlist

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a test dependency")
st = hypothesis.strategies
given, settings, HealthCheck = hypothesis.given, hypothesis.settings, hypothesis.HealthCheck

GOLDEN = Path(__file__).parent / "golden"
PLAYLISTS = [p.read_text() for p in sorted(GOLDEN.glob("*.m3u8"))]
MPDS = [p.read_text() for p in sorted(GOLDEN.glob("*.mpd"))]
HLS_WORDS = [
    "#EXTM3U", "#EXTINF:", "#EXT-X-TARGETDURATION:", "#EXT-X-STREAM-INF:", "#EXT-X-MEDIA:",
    "#EXT-X-KEY:", "#EXT-X-MAP:", "#EXT-X-PART:", "#EXT-X-SKIP:", "#EXT-X-DATERANGE:",
    "#EXT-X-PRELOAD-HINT:", "#EXT-X-SERVER-CONTROL:", "#EXT-X-PROGRAM-DATE-TIME:",
    "#EXT-X-PART-INF:", "#EXT-X-START:", "#EXT-X-RENDITION-REPORT:", "#EXT-X-ENDLIST",
    "METHOD=", "URI=", "IV=0x", "BANDWIDTH=", "RESOLUTION=", "DURATION=", "ID=",
    "START-DATE=", "SCTE35-OUT=0x", "TYPE=", "=", ",", '"', "\n", "\r", "0", "1.5", "-1",
    "x", "YES", "NaN", "1e999", "2026-12-01T12:00:00Z", "\x00", "é",
]  # fmt: skip
XML_WORDS = [
    "<MPD", "</MPD>", ' xmlns="urn:mpeg:dash:schema:mpd:2011"', "<Period>", "</Period>",
    "<AdaptationSet>", "</AdaptationSet>", "<Representation", "</Representation>",
    "<SegmentTemplate", "</SegmentTemplate>", "<S", "<SegmentTimeline>", "/>", ">",
    ' id="a"', ' bandwidth="', ' d="', ' r="-1"', ' t="', "<cenc:pssh>", "</cenc:pssh>",
    ' xmlns:cenc="urn:mpeg:cenc:2013"', "<!DOCTYPE", "<!--", "-->", "&amp;", "&x;",
    '"', "1", "x", "<?xml", "?>", "\x00", "é", "<![CDATA[", "]]>",
]  # fmt: skip


def _mutations(seeds: list[str], words: list[str]) -> st.SearchStrategy[str]:
    """Real documents cut, spliced and salted with the tokens parsers branch on."""
    token = st.sampled_from(words)
    junk = st.lists(st.one_of(token, st.text(max_size=8)), max_size=30).map("".join)

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        text = draw(st.sampled_from(seeds))
        for _ in range(draw(st.integers(0, 4))):
            i = draw(st.integers(0, len(text)))
            j = draw(st.integers(i, min(len(text), i + 40)))
            text = text[:i] + draw(junk) + text[j:]
        return text

    return st.one_of(junk, mutate())


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(_mutations(PLAYLISTS, HLS_WORDS))
def test_playlist_parser_raises_only_manifest_error(text: str) -> None:
    try:
        parsed = parse_playlist(text)
    except ManifestError:
        return
    # Whatever parsed renders, and what it renders parses to the same model.
    assert parse_playlist(parsed.render()).render() == parsed.render()


@FUZZ
@given(st.binary(max_size=300))
def test_playlist_parser_on_bytes(data: bytes) -> None:
    try:
        parse_playlist(b"#EXTM3U\n" + data)
    except ManifestError:
        pass


@FUZZ
@given(_mutations(MPDS, XML_WORDS))
def test_mpd_parser_raises_only_manifest_error(text: str) -> None:
    try:
        mpd = MPD.parse(text)
    except ManifestError:
        return
    assert MPD.parse(mpd.render()) == mpd


@FUZZ
@given(st.binary(max_size=300))
def test_mpd_parser_on_bytes(data: bytes) -> None:
    try:
        MPD.parse(data)
    except ManifestError:
        pass
