"""DASH MPD model: round trips for VOD, live, DRM and ads; the packager's MPD; hostile input."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from mpegdash.parser import MPEGDASHParser

from mediaplane.media import MPD, ManifestError, MediaError, PackagerInput, PackagingOptions
from mediaplane.media._dash import (
    SCTE35_NS,
    ContentProtection,
    Node,
    SegmentTemplate,
    TimelineEntry,
    parse_iso_duration,
)
from mediaplane.media._package import read_packager_mpd

HERE = Path(__file__).parent

LIVE = """\
<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" profiles="urn:mpeg:dash:profile:isoff-live:2011" minBufferTime="PT2.000S" availabilityStartTime="2026-12-01T12:00:00Z" publishTime="2026-12-01T12:00:20Z" minimumUpdatePeriod="PT2S" timeShiftBufferDepth="PT60S" suggestedPresentationDelay="PT6S">
  <Period id="live" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true">
      <Representation id="v720" bandwidth="3000000" codecs="avc1.64001f" width="1280" height="720">
        <SegmentTemplate timescale="90000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" startNumber="100">
          <SegmentTimeline>
            <S t="900000" d="180000" r="4" />
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="https://time.example/now" />
</MPD>
"""  # noqa: E501

DRM = """\
<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns:cenc="urn:mpeg:cenc:2013" xmlns:clearkey="http://dashif.org/guidelines/clearKey" xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" profiles="urn:mpeg:dash:profile:isoff-live:2011" minBufferTime="PT2.000S" mediaPresentationDuration="PT4.000S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4">
      <ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc" cenc:default_KID="10000000-1000-1000-1000-100000000001" />
      <ContentProtection schemeIdUri="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed">
        <cenc:pssh>AAAAIHBzc2gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</cenc:pssh>
      </ContentProtection>
      <ContentProtection schemeIdUri="urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e" value="ClearKey1.0">
        <clearkey:Laurl Lic_type="EME-1.0">https://lic.example/clearkey</clearkey:Laurl>
      </ContentProtection>
      <Representation id="v" bandwidth="1000" codecs="avc1.64001f" width="640" height="360">
        <SegmentTemplate timescale="1000" initialization="v/init.mp4" media="v/$Number$.m4s" startNumber="1">
          <SegmentTimeline>
            <S t="0" d="2000" r="1" />
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"""  # noqa: E501

ADS = """\
<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns:scte35="http://www.scte.org/schemas/35/2016" xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" profiles="urn:mpeg:dash:profile:isoff-live:2011" minBufferTime="PT2.000S" mediaPresentationDuration="PT60.000S">
  <Period id="content-1" start="PT0S" duration="PT30S">
    <EventStream schemeIdUri="urn:scte:scte35:2014:xml+bin" timescale="90000">
      <Event id="1" presentationTime="2700000" duration="2700000">
        <scte35:Signal>
          <scte35:Binary>/DAgAAAAAAAAAP/wDwUAAAABf+/+ACkygAAAAAAAAAA=</scte35:Binary>
        </scte35:Signal>
      </Event>
    </EventStream>
    <AdaptationSet id="0" contentType="video">
      <Representation id="v" bandwidth="1000" codecs="avc1.64001f" width="640" height="360">
        <SegmentTemplate timescale="1000" initialization="v/init.mp4" media="v/$Number$.m4s" startNumber="1">
          <SegmentTimeline>
            <S t="0" d="2000" r="1" />
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <Period id="ad-1" start="PT30S">
    <AdaptationSet id="0" contentType="video">
      <Representation id="ad" bandwidth="800" codecs="avc1.64001e">
        <SegmentTemplate timescale="1000" initialization="ad/init.mp4" media="ad/$Number$.m4s" startNumber="1">
          <SegmentTimeline>
            <S t="0" d="2000" r="14" />
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"""  # noqa: E501

VOD = (HERE / "golden" / "languages.mpd").read_text()
EXAMPLES = {"vod": VOD, "live": LIVE, "drm": DRM, "ads": ADS}


@pytest.mark.parametrize("text", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_canonical_text_round_trips(text: str) -> None:
    mpd = MPD.parse(text)
    assert mpd.render() == text
    assert bytes(mpd) == text.encode()
    assert MPD.parse(mpd.render()) == mpd


@pytest.mark.parametrize("text", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_another_parser_reads_it(text: str) -> None:
    theirs = MPEGDASHParser.parse(MPD.parse(text).render())
    assert len(theirs.periods) == len(MPD.parse(text).periods)


def test_vod_model() -> None:
    mpd = MPD.parse(VOD)
    (period,) = mpd.periods
    video, *audio = period.adaptation_sets
    assert (video.max_width, video.par) == (1280, "16:9")
    assert [r.id for r in video.representations] == ["v360", "v720"]
    st = video.representations[0].segment_template
    assert st is not None
    assert st.timeline == (TimelineEntry(30720, 0, 1), TimelineEntry(15360))
    assert st.numbers() == [(1, 0, 30720), (2, 30720, 30720), (3, 61440, 15360)]
    assert [a.lang for a in audio] == ["en", "fr", "en", "en"]
    assert audio[3].accessibility[0].value == "1"
    assert audio[0].representations[0].audio_channels[0].value == "2"
    assert parse_iso_duration(mpd.media_presentation_duration or "") == 5.0


def test_live_model() -> None:
    mpd = MPD.parse(LIVE)
    assert mpd.type == "dynamic" and mpd.minimum_update_period == "PT2S"
    assert mpd.utc_timing[0].value == "https://time.example/now"
    rep = mpd.periods[0].adaptation_sets[0].representations[0]
    assert rep.segment_template is not None
    numbers = rep.segment_template.numbers()
    assert numbers[0] == (100, 900000, 180000) and len(numbers) == 5


def test_drm_model() -> None:
    (aset,) = MPD.parse(DRM).periods[0].adaptation_sets
    cenc, widevine, clearkey = aset.content_protection
    assert cenc == ContentProtection(
        "urn:mpeg:dash:mp4protection:2011",
        "cenc",
        default_kid="10000000-1000-1000-1000-100000000001",
    )
    assert widevine.pssh is not None and widevine.pssh[4:8] == b"pssh"
    (laurl,) = clearkey.nodes
    assert laurl.text == "https://lic.example/clearkey"
    assert laurl.attributes == (("Lic_type", "EME-1.0"),)


def test_ads_model() -> None:
    content, ad = MPD.parse(ADS).periods
    assert (content.duration, ad.start) == ("PT30S", "PT30S")
    (stream,) = content.event_streams
    (event,) = stream.events
    assert (event.presentation_time, event.duration) == (2700000, 2700000)
    (signal,) = event.nodes
    assert signal.tag == f"{{{SCTE35_NS}}}Signal"
    cue = base64.b64decode(signal.children[0].text or "")
    assert cue[:1] == b"\xfc"  # a splice_info_section


def test_unknown_attributes_and_elements_are_kept() -> None:
    text = VOD.replace(
        '<Period id="0" start="PT0S">',
        '<Period id="0" start="PT0S" xlink:actuate="onLoad" custom="1">'
        '<BaseURL serviceLocation="a">https://cdn.example/</BaseURL>',
    ).replace("<MPD ", '<MPD xmlns:xlink="http://www.w3.org/1999/xlink" ')
    period = MPD.parse(text).periods[0]
    assert period.extra == (("{http://www.w3.org/1999/xlink}actuate", "onLoad"), ("custom", "1"))
    assert period.nodes[0].text == "https://cdn.example/"
    again = MPD.parse(MPD.parse(text).render())
    assert again == MPD.parse(text)


def test_segment_template_numbers_repeat_until_next() -> None:
    st = SegmentTemplate(start_number=5, timeline=(TimelineEntry(10, 0, -1),))
    assert st.numbers() == [(5, 0, 10)]


def test_packager_mpd_becomes_a_presentation(tmp_path: Path) -> None:
    """What Shaka Packager 3.4 writes (fixtures/packager.mpd) read back with segment sizes."""
    mpd = tmp_path / "packager.mpd"
    mpd.write_bytes((HERE / "fixtures" / "packager.mpd").read_bytes())
    for rid, count in (("v", 2), ("audio", 2)):
        (tmp_path / rid).mkdir()
        (tmp_path / rid / "init.mp4").write_bytes(b"i" * 700)
        for n in range(1, count + 1):
            (tmp_path / rid / f"{n}.m4s").write_bytes(b"s" * (1000 * n))
    inputs = [
        PackagerInput(tmp_path / "v.mp4", "video", "v", frame_rate="30"),
        PackagerInput(tmp_path / "a.mp4", "audio", "audio", language="en", default=True),
    ]
    p = read_packager_mpd(mpd, tmp_path, inputs, PackagingOptions(segment_seconds=2))
    video, audio = p.renditions
    # The lone video representation's size and codecs sit on its AdaptationSet.
    assert (video.width, video.height, video.codecs) == (320, 180, "avc1.64000d")
    assert [(s.number, s.start, s.duration, s.size) for s in video.segments] == [
        (1, 0, 30720, 1000),
        (2, 30720, 15360, 2000),
    ]
    assert (audio.sample_rate, audio.channels, audio.language) == (44100, 2, "en")
    assert video.init_size == 700 and audio.default
    assert p.duration == pytest.approx(3.0)  # a dynamic MPD: no duration, the longest track


def test_packager_mpd_naming_an_unknown_output(tmp_path: Path) -> None:
    mpd = tmp_path / "packager.mpd"
    mpd.write_bytes((HERE / "fixtures" / "packager.mpd").read_bytes())
    inputs = [PackagerInput(tmp_path / "v.mp4", "video", "other")]
    with pytest.raises(MediaError, match="did not ask for"):
        read_packager_mpd(mpd, tmp_path, inputs, PackagingOptions())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "well-formed"),
        ("<MPD", "well-formed"),
        ("<html/>", "no namespace"),
        ('<a xmlns="urn:x"/>', "not a DASH MPD"),
        (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]>'
            '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011">&lol;</MPD>',
            "DTD",
        ),
        (
            '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period><AdaptationSet>'
            '<Representation id="a" bandwidth="x"/></AdaptationSet></Period></MPD>',
            "not an integer",
        ),
        (
            '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period><AdaptationSet>'
            '<Representation id="a"/></AdaptationSet></Period></MPD>',
            "no bandwidth",
        ),
        (
            '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:cenc="urn:mpeg:cenc:2013">'
            '<Period><AdaptationSet><ContentProtection schemeIdUri="u">'
            "<cenc:pssh>!!</cenc:pssh></ContentProtection></AdaptationSet></Period></MPD>",
            "base64",
        ),
    ],
)
def test_malformed_mpds_raise_manifest_error(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        MPD.parse(text)


def test_bounds() -> None:
    deep = '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011">' + "<x>" * 40 + "</x>" * 40 + "</MPD>"
    with pytest.raises(ManifestError, match="deeper"):
        MPD.parse(deep)
    with pytest.raises(ManifestError, match="larger"):
        MPD.parse(VOD, max_bytes=100)


@pytest.mark.parametrize("text", ["P", "PT", "5S", "PTxS", "-PT1S"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ManifestError):
        parse_iso_duration(text)


def test_durations() -> None:
    assert parse_iso_duration("PT1H2M3.5S") == 3723.5
    assert parse_iso_duration("P1DT1S") == 86401


def test_unknown_namespace_node_round_trips() -> None:
    node = Node("{urn:example}Thing", (("a", "1"),), "hi")
    assert Node.of(node.element()) == node
