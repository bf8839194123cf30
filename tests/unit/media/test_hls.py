"""HLS playlist models: round trips for VOD, live LL-HLS, DRM and ads; hostile input."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import m3u8
import pytest

from mediaplane.media import (
    ManifestError,
    MasterPlaylist,
    MediaPlaylist,
    parse_playlist,
    read_playlist,
)
from mediaplane.media._hls import MediaSegment
from mediaplane.media._hls_tags import (
    DateRange,
    Key,
    Map,
    Part,
    PreloadHint,
    RenditionReport,
    ServerControl,
    Skip,
    Tag,
    Variant,
)

VOD = """\
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.000000,
1.m4s
#EXTINF:1.500000,
2.m4s
#EXT-X-ENDLIST
"""

LL_HLS = """\
#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=24,PART-HOLD-BACK=3.012
#EXT-X-PART-INF:PART-TARGET=1.004
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:00.000Z
#EXTINF:4.000000,
266.m4s
#EXT-X-PART:DURATION=1.004,URI="267.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.004,URI="267.1.m4s"
#EXT-X-PART:DURATION=1.004,URI="267.2.m4s"
#EXT-X-PART:DURATION=0.988,URI="267.3.m4s"
#EXTINF:4.000000,
267.m4s
#EXT-X-PART:DURATION=1.004,URI="268.0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="268.1.m4s"
#EXT-X-RENDITION-REPORT:URI="../v360/media.m3u8",LAST-MSN=268,LAST-PART=0
"""

DELTA = """\
#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:260
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=24,CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK=3.012
#EXT-X-PART-INF:PART-TARGET=1.004
#EXT-X-SKIP:SKIPPED-SEGMENTS=6,RECENTLY-REMOVED-DATERANGES="ad-1\tad-2"
#EXTINF:4.000000,
266.m4s
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="267.0.m4s"
"""

DRM = """\
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://key-1",KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"
#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="data:text/plain;base64,AAAAQ3Bzc2g=",KEYFORMAT="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",KEYFORMATVERSIONS="1"
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.000000,
1.m4s
#EXT-X-KEY:METHOD=AES-128,URI="https://keys.example/k2",IV=0x000102030405060708090A0B0C0D0E0F
#EXTINF:2.000000,
2.m4s
#EXT-X-ENDLIST
"""

ADS = """\
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:00.000Z
#EXTINF:2.000000,
10.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="ad/init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:02.000Z
#EXT-X-DATERANGE:ID="splice-6FFFFFF0",START-DATE="2026-12-01T12:00:02.000Z",PLANNED-DURATION=30,SCTE35-OUT=0xFC302000000000000000FFF00F05000000017FEFFE0029328000000000000000,X-AD-ID="creative-7"
#EXT-X-CUE-OUT:30
#EXTINF:2.000000,ad break
ad/1.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="init.mp4"
#EXT-X-DATERANGE:ID="splice-6FFFFFF0",START-DATE="2026-12-01T12:00:02.000Z",END-DATE="2026-12-01T12:00:32.000Z",DURATION=30,SCTE35-IN=0xFC302000000000000000FFF00F05000000017F4FFE0029328000000000000000
#EXT-X-CUE-IN
#EXTINF:2.000000,
11.m4s
#EXT-X-ENDLIST
"""

MASTER = """\
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://key-1",KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"
#EXT-X-SESSION-DATA:DATA-ID="com.example.title",VALUE="Demo"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="English",DEFAULT=YES,AUTOSELECT=YES,LANGUAGE="en",CHANNELS="2",URI="audio/media.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Français",DEFAULT=NO,FORCED=NO,LANGUAGE="fr",URI="subs/fr.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=3127763,AVERAGE-BANDWIDTH=1248000,CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=29.970,AUDIO="audio",SUBTITLES="subs",CLOSED-CAPTIONS=NONE,HDCP-LEVEL=TYPE-0
v360/media.m3u8
"""

EXAMPLES = {"vod": VOD, "ll-hls": LL_HLS, "delta": DELTA, "drm": DRM, "ads": ADS, "master": MASTER}


@pytest.mark.parametrize("text", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_canonical_text_round_trips(text: str) -> None:
    parsed = parse_playlist(text)
    assert parsed.render() == text
    assert bytes(parsed) == text.encode()
    assert parse_playlist(parsed.render()) == parsed


@pytest.mark.parametrize("text", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_another_parser_agrees(text: str) -> None:
    """What we render is what the m3u8 library reads (an independent parser)."""
    theirs = m3u8.loads(parse_playlist(text).render())
    ours = parse_playlist(text)
    if isinstance(ours, MediaPlaylist):
        # m3u8 too lists the unfinished LL-HLS segment (its parts) with no URI.
        assert [s.uri for s in theirs.segments] == [s.uri for s in ours.segments]
        assert theirs.target_duration == ours.target_duration
    else:
        assert [p.uri for p in theirs.playlists] == [v.uri for v in ours.variants]


def test_vod_model() -> None:
    pl = MediaPlaylist.parse(VOD)
    assert (pl.version, pl.target_duration, pl.media_sequence) == (7, 2, 0)
    assert pl.playlist_type == "VOD" and pl.independent_segments and pl.endlist
    assert pl.segments[0].map == Map("init.mp4") and pl.segments[1].map is None
    assert [(s.uri, s.duration) for s in pl.segments] == [("1.m4s", 2.0), ("2.m4s", 1.5)]


def test_ll_hls_model() -> None:
    pl = MediaPlaylist.parse(LL_HLS)
    assert pl.server_control == ServerControl(
        can_block_reload=True, can_skip_until=24, part_hold_back=3.012
    )
    assert pl.part_target == 1.004
    assert pl.segments[0].program_date_time == datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert [p.uri for p in pl.segments[1].parts] == [f"267.{i}.m4s" for i in range(4)]
    assert pl.segments[1].parts[0].independent and not pl.segments[1].parts[1].independent
    # The segment being written: its parts, no EXTINF and no URI yet.
    edge = pl.segments[-1]
    assert edge.uri is None and edge.duration is None
    assert edge.parts == (Part("268.0.m4s", 1.004, independent=True),)
    assert [s.uri for s in pl.complete_segments] == ["266.m4s", "267.m4s"]
    assert pl.preload_hints == (PreloadHint("PART", "268.1.m4s"),)
    assert pl.rendition_reports == (RenditionReport("../v360/media.m3u8", 268, 0),)
    assert not pl.endlist


def test_delta_update_model() -> None:
    pl = MediaPlaylist.parse(DELTA)
    assert pl.skip == Skip(6, ("ad-1", "ad-2"))
    assert pl.server_control is not None and pl.server_control.can_skip_dateranges


def test_drm_model() -> None:
    pl = MediaPlaylist.parse(DRM)
    fairplay, widevine = pl.segments[0].keys
    assert fairplay.method == "SAMPLE-AES" and fairplay.keyformat_versions == "1"
    assert widevine.keyformat == "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
    (aes,) = pl.segments[1].keys
    assert aes == Key("AES-128", "https://keys.example/k2", iv=bytes(range(16)))
    master = MasterPlaylist.parse(MASTER)
    assert master.session_keys == (fairplay,)


def test_ads_model() -> None:
    pl = MediaPlaylist.parse(ADS)
    assert pl.discontinuity_sequence == 1
    content, ad, back = pl.segments
    assert not content.discontinuity and ad.discontinuity and back.discontinuity
    (out,) = ad.dateranges
    assert out.id == "splice-6FFFFFF0" and out.planned_duration == 30
    assert out.scte35_out is not None and out.scte35_out[:2] == b"\xfc\x30"
    assert out.client_attributes == (("X-AD-ID", '"creative-7"'),)
    assert ad.title == "ad break"
    (back_in,) = back.dateranges
    assert back_in.scte35_in is not None and back_in.duration == 30
    # Tags we do not model stay where they stood.
    assert ad.tags == (Tag("EXT-X-CUE-OUT", "30"),)
    assert back.tags == (Tag("EXT-X-CUE-IN"),)


def test_master_model() -> None:
    pl = MasterPlaylist.parse(MASTER)
    (variant,) = pl.variants
    assert variant.resolution == (640, 360) and variant.frame_rate == 29.97
    assert variant.closed_captions == "NONE"
    assert variant.extra == (("HDCP-LEVEL", "TYPE-0"),)
    assert pl.tags == (Tag("EXT-X-SESSION-DATA", 'DATA-ID="com.example.title",VALUE="Demo"'),)
    audio, subs = pl.media
    assert audio.default and audio.autoselect and subs.forced is False
    assert subs.autoselect is None  # absent stays absent


def test_models_build_playlists() -> None:
    """A live playlist built from models (how the live packager will write one)."""
    cue = DateRange(
        "ad-1",
        datetime(2026, 12, 1, 12, tzinfo=UTC),
        planned_duration=15.5,
        scte35_out=bytes.fromhex("fc3020"),
    )
    pl = MediaPlaylist(
        target_duration=2,
        version=9,
        media_sequence=5,
        server_control=ServerControl(can_block_reload=True, part_hold_back=1.5),
        part_target=0.5,
        segments=(
            MediaSegment("5.m4s", 2.0, map=Map("init.mp4"), dateranges=(cue,)),
            MediaSegment(None, parts=(Part("6.0.m4s", 0.5, independent=True),)),
        ),
        preload_hints=(PreloadHint("PART", "6.1.m4s"),),
    )
    text = pl.render()
    assert '#EXT-X-DATERANGE:ID="ad-1",START-DATE="2026-12-01T12:00:00.000Z",' in text
    assert "PLANNED-DURATION=15.5,SCTE35-OUT=0xFC3020" in text
    assert MediaPlaylist.parse(text) == pl


def test_values_cannot_open_a_tag() -> None:
    pl = MediaPlaylist(
        target_duration=2,
        segments=(MediaSegment("x.m4s\n#EXT-X-EVIL", 2.0, title="t\r\n#EXT-X-EVIL"),),
        tags=(Tag("EXT-X-FOO", "a\n#EXT-X-EVIL"),),
    )
    master = MasterPlaylist(variants=(Variant("v\n#EXT-X-EVIL", 1, codecs='a"\n#EXT-X-EVIL'),))
    for text in (pl.render(), master.render()):
        assert not any(line.startswith("#EXT-X-EVIL") for line in text.splitlines())
        parse_playlist(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "#EXTM3U"),
        ("hello\n", "#EXTM3U"),
        ("#EXTM3U\n#EXTINF:abc,\n1.m4s\n", "not a number"),
        ("#EXTM3U\n#EXTINF:nan,\n1.m4s\n", "finite"),
        ("#EXTM3U\n#EXTINF:2,\n1.m4s\n", "TARGETDURATION"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n1.m4s\n", "without EXTINF"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:-2\n", "integer"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:²\n", "integer"),
        ('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="a\nv.m3u8\n', "unterminated"),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", "URI"),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,BANDWIDTH=2\nv.m3u8\n", "twice"),
        ('#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=a,NAME="x"\n', "quoted"),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n#EXTINF:1,\n", "mixes"),
        ('#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:URI="k"\n', "METHOD"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=AES-128,IV=0xZZ\n", "hex"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n", "ISO"),
        ('#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PRELOAD-HINT:TYPE=X,URI="a"\n', "PART"),
    ],
)
def test_malformed_playlists_raise_manifest_error(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_playlist(text)


def test_bounds() -> None:
    many = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n" + "#EXTINF:1,\n1.m4s\n" * 100
    assert len(MediaPlaylist.parse(many).segments) == 100
    with pytest.raises(ManifestError, match="lines"):
        MediaPlaylist.parse(many, max_lines=50)
    with pytest.raises(ManifestError, match="larger"):
        MediaPlaylist.parse(many, max_bytes=100)
    with pytest.raises(ManifestError, match="longer than"):
        MediaPlaylist.parse("#EXTM3U\n#" + "A" * 70_000 + "\n")
    with pytest.raises(ManifestError, match="UTF-8"):
        MediaPlaylist.parse(b"#EXTM3U\n\xff\n")


def test_kind_is_checked() -> None:
    with pytest.raises(ManifestError, match="not a media playlist"):
        MediaPlaylist.parse(MASTER)
    with pytest.raises(ManifestError, match="not a multivariant"):
        MasterPlaylist.parse(VOD)


def test_crlf_and_bom_are_read() -> None:
    text = "\ufeff" + VOD.replace("\n", "\r\n")
    assert MediaPlaylist.parse(text.encode()) == MediaPlaylist.parse(VOD)


def test_read_playlist_of_a_growing_ffmpeg_playlist(tmp_path: Path) -> None:
    """What ffmpeg's hls muxer writes for the preview (an EVENT list, then ENDLIST)."""
    path = tmp_path / "media.m3u8"
    assert read_playlist(path) == ([], False)
    growing = VOD.replace("VOD", "EVENT").replace("#EXT-X-ENDLIST\n", "")
    path.write_text(growing)
    entries, ended = read_playlist(path)
    assert [(e.uri, e.duration) for e in entries] == [("1.m4s", 2.0), ("2.m4s", 1.5)]
    assert not ended
    path.write_text(VOD)
    assert read_playlist(path)[1]
