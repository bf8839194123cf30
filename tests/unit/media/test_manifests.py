"""Playlist/MPD rendering from synthetic presentations, parsed back with m3u8 and mpegdash."""

from __future__ import annotations

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from mediaplane.media import (
    Presentation,
    Rendition,
    Segment,
    render_hls_master,
    render_hls_media,
    render_mpd,
)


def _rendition(
    rid: str, kind: str, timescale: int, durations: list[int], size: int, **kw: object
) -> Rendition:
    segs, t = [], 0
    for n, d in enumerate(durations, start=1):
        segs.append(Segment(number=n, start=t, duration=d, size=size * n))
        t += d
    return Rendition(
        id=rid,
        kind=kind,
        codecs=kw.pop("codecs", "avc1.64001f"),  # type: ignore[arg-type]
        timescale=timescale,
        init_size=800,
        segments=segs,
        **kw,
    )  # type: ignore[arg-type]


@pytest.fixture
def presentation() -> Presentation:
    return Presentation(
        duration=5.0,
        segment_seconds=2,
        renditions=[
            _rendition(
                "v720",
                "video",
                15360,
                [30720, 30720, 15360],
                500_000,
                width=1280,
                height=720,
                frame_rate="30",
            ),
            _rendition(
                "v360",
                "video",
                15360,
                [30720, 30720, 15360],
                100_000,
                width=640,
                height=360,
                frame_rate="30",
                codecs="avc1.64001e",
            ),
            _rendition(
                "audio",
                "audio",
                48000,
                [96256, 96256, 47488],
                30_000,
                codecs="mp4a.40.2",
                sample_rate=48000,
                channels=2,
            ),
        ],
    )


def test_master(presentation: Presentation) -> None:
    text = render_hls_master(presentation)
    pl = m3u8.loads(text)
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in text
    assert [p.uri for p in pl.playlists] == ["v360/media.m3u8", "v720/media.m3u8"]
    v720 = pl.playlists[1].stream_info
    audio = presentation.rendition("audio")
    video = presentation.rendition("v720")
    assert audio and video
    # The short last segment (1.5 MB in 1 s) is the densest: peak = 1.5 MB × 8 / 1 s.
    assert video.peak_bandwidth == 12_000_000
    assert v720.bandwidth == video.peak_bandwidth + audio.peak_bandwidth
    assert v720.average_bandwidth == video.average_bandwidth + audio.average_bandwidth
    assert v720.codecs == "avc1.64001f,mp4a.40.2"
    assert v720.resolution == (1280, 720)
    assert v720.frame_rate == 30.0
    assert v720.audio == "audio"
    media = pl.media[0]
    assert (media.type, media.group_id, media.uri, media.default) == (
        "AUDIO",
        "audio",
        "audio/media.m3u8",
        "YES",
    )
    assert media.channels == "2"


def test_media_playlist(presentation: Presentation) -> None:
    r = presentation.rendition("v720")
    assert r is not None
    text = render_hls_media(r)
    pl = m3u8.loads(text)
    assert pl.playlist_type == "vod" and pl.is_endlist and pl.is_independent_segments
    assert pl.target_duration == 2
    assert pl.segment_map[0].uri == "init.mp4"
    assert [s.uri for s in pl.segments] == ["1.m4s", "2.m4s", "3.m4s"]
    assert [s.duration for s in pl.segments] == [2.0, 2.0, 1.0]
    assert pl.version == 7


def test_target_duration_rounds_to_nearest() -> None:
    r = _rendition(
        "v", "video", 1000, [2002, 2002, 2600], 1, width=2, height=2, frame_rate="30000/1001"
    )
    assert m3u8.loads(render_hls_media(r)).target_duration == 3


def test_mpd(presentation: Presentation) -> None:
    text = render_mpd(presentation)
    mpd = MPEGDASHParser.parse(text)
    assert mpd.type == "static"
    assert mpd.media_presentation_duration == "PT5.000S"
    assert mpd.profiles == "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019"
    video, audio = mpd.periods[0].adaptation_sets
    assert video.content_type == "video" and audio.content_type == "audio"
    assert video.par == "16:9" and video.max_width == 1280
    assert [r.id for r in video.representations] == ["v360", "v720"]
    rep = video.representations[1]
    assert (rep.width, rep.height, rep.codecs, rep.frame_rate) == (1280, 720, "avc1.64001f", "30")
    st = rep.segment_templates[0]
    assert st.media == "$RepresentationID$/$Number$.m4s"
    assert st.initialization == "$RepresentationID$/init.mp4"
    assert (st.timescale, st.start_number) == (15360, 1)
    ss = st.segment_timelines[0].Ss
    assert [(s.t, s.d, s.r) for s in ss] == [(0, 30720, 1), (None, 15360, None)]
    arep = audio.representations[0]
    assert arep.audio_sampling_rate == "48000"
    assert arep.audio_channel_configurations[0].value == "2"


def test_mpd_timeline_gap_gets_explicit_t() -> None:
    r = Rendition(
        id="v",
        kind="video",
        codecs="avc1.64001f",
        timescale=10,
        init_size=1,
        segments=[Segment(1, 0, 20, 1), Segment(2, 25, 20, 1), Segment(3, 45, 20, 1)],
        width=2,
        height=2,
    )
    mpd = MPEGDASHParser.parse(render_mpd(Presentation(6.5, 2, [r])))
    ss = (
        mpd.periods[0]
        .adaptation_sets[0]
        .representations[0]
        .segment_templates[0]
        .segment_timelines[0]
        .Ss
    )
    assert [(s.t, s.d, s.r) for s in ss] == [(0, 20, None), (25, 20, 1)]


def test_quoted_strings_cannot_break_out() -> None:
    a = _rendition(
        "audio", "audio", 48000, [96000], 10, codecs="mp4a.40.2", language='en"\n#EXT-X-EVIL'
    )
    v = _rendition("v", "video", 1000, [2000], 10, width=2, height=2)
    text = render_hls_master(Presentation(2, 2, [v, a]))
    assert "\n#EXT-X-EVIL" not in text


def test_round_trip_dict(presentation: Presentation) -> None:
    assert Presentation.from_dict(presentation.to_dict()) == presentation


def test_rungs_join_one_by_one(presentation: Presentation) -> None:
    v720 = presentation.rendition("v720")
    assert v720 is not None
    base = Presentation(
        duration=5.0,
        segment_seconds=2,
        renditions=[r for r in presentation.renditions if r.id != "v720"],
        pending=["v720", "v1080"],
    )
    assert base.settled and not base.complete  # DASH can describe it; more rungs come
    grown = base.with_renditions([v720], done=["v720"])
    assert [r.id for r in grown.video] == ["v360", "v720"]
    assert grown.pending == ["v1080"] and not grown.complete
    assert "v720/media.m3u8" in render_hls_master(grown)
    # Replacing keeps one rendition per id.
    again = grown.with_renditions([v720], done=["v1080"])
    assert [r.id for r in again.renditions].count("v720") == 1
    assert again.complete


def test_a_listed_muxed_preview_is_not_settled(presentation: Presentation) -> None:
    preview = _rendition("preview", "video", 1_000_000, [2_000_000], 9000, muxed=True)
    p = Presentation(duration=2.0, segment_seconds=2, renditions=[preview], pending=["v360"])
    assert not p.settled
    hidden = p.with_renditions(
        [*presentation.renditions, Rendition(**{**preview.__dict__, "listed": False})],
        done=["v360"],
    )
    assert hidden.settled and hidden.complete


def _audio(rid: str, **kw: object) -> Rendition:
    return _rendition(
        rid,
        "audio",
        48000,
        [96256, 96256, 47488],
        kw.pop("size", 30_000),  # type: ignore[arg-type]
        codecs="mp4a.40.2",
        sample_rate=48000,
        channels=2,
        **kw,
    )


@pytest.fixture
def languages(presentation: Presentation) -> Presentation:
    """Video plus four audio renditions: English (default), French, commentary, description."""
    video = [r for r in presentation.renditions if r.kind == "video"]
    return Presentation(
        duration=5.0,
        segment_seconds=2,
        renditions=[
            *video,
            _audio("audio3", language="en", name="Director's commentary", role="commentary"),
            _audio("audio2", language="fr", name="Français", role="alternate", size=60_000),
            _audio("audio", language="en", name="English", default=True, role="main"),
            _audio("audio4", language="en", name="English", role="description"),
        ],
    )


def test_master_one_media_tag_per_audio_rendition(languages: Presentation) -> None:
    text = render_hls_master(languages)
    pl = m3u8.loads(text)
    audio = [m for m in pl.media if m.type == "AUDIO"]
    assert [m.uri for m in audio] == [
        "audio/media.m3u8",
        "audio2/media.m3u8",
        "audio3/media.m3u8",
        "audio4/media.m3u8",
    ]
    assert {m.group_id for m in audio} == {"audio"}
    assert [m.default for m in audio] == ["YES", "NO", "NO", "NO"]  # exactly one default
    assert [m.language for m in audio] == ["en", "fr", "en", "en"]
    names = [m.name for m in audio]
    assert names[:3] == ["English", "Français", "Director's commentary"]
    assert len(set(names)) == 4  # NAME is unique in the group (two were "English")
    assert [m.autoselect for m in audio] == ["YES", "YES", "NO", "YES"]
    assert [m.characteristics for m in audio] == [
        None,
        None,
        None,
        "public.accessibility.describes-video",
    ]
    # BANDWIDTH holds the richest audio of the group (French: twice the bytes).
    french = languages.rendition("audio2")
    v720 = languages.rendition("v720")
    assert french and v720
    top = pl.playlists[1].stream_info
    assert top.bandwidth == v720.peak_bandwidth + french.peak_bandwidth
    assert all(p.stream_info.audio == "audio" for p in pl.playlists)


def test_mpd_one_adaptation_set_per_audio_rendition(languages: Presentation) -> None:
    mpd = MPEGDASHParser.parse(render_mpd(languages))
    sets = mpd.periods[0].adaptation_sets
    audio = [a for a in sets if a.content_type == "audio"]
    assert [a.representations[0].id for a in audio] == ["audio", "audio2", "audio3", "audio4"]
    assert [a.lang for a in audio] == ["en", "fr", "en", "en"]
    roles = [[(r.scheme_id_uri, r.value) for r in a.roles] for a in audio]
    scheme = "urn:mpeg:dash:role:2011"
    assert roles == [
        [(scheme, "main")],
        [(scheme, "alternate")],
        [(scheme, "commentary")],
        [(scheme, "description")],
    ]
    assert [len(a.accessibilities or []) for a in audio] == [0, 0, 0, 1]
    described = audio[3].accessibilities[0]
    assert (described.scheme_id_uri, described.value) == (
        "urn:tva:metadata:cs:AudioPurposeCS:2007",
        "1",
    )
    assert len({a.id for a in sets}) == len(sets)


def test_audio_only_master_and_mpd() -> None:
    p = Presentation(duration=5.0, segment_seconds=2, renditions=[_audio("audio", default=True)])
    assert p.audio_only and p.playable
    pl = m3u8.loads(render_hls_master(p))
    assert pl.media == [] or len(pl.media) == 0
    (variant,) = pl.playlists
    assert variant.uri == "audio/media.m3u8"
    assert variant.stream_info.codecs == "mp4a.40.2"
    assert variant.stream_info.resolution is None
    assert variant.stream_info.bandwidth == p.audio[0].peak_bandwidth
    mpd = MPEGDASHParser.parse(render_mpd(p))
    (aset,) = mpd.periods[0].adaptation_sets
    assert aset.content_type == "audio"


def test_audio_only_with_two_languages() -> None:
    p = Presentation(
        duration=5.0,
        segment_seconds=2,
        renditions=[
            _audio("audio", language="en", name="English", default=True),
            _audio("audio2", language="fr", name="Français"),
        ],
    )
    pl = m3u8.loads(render_hls_master(p))
    (variant,) = pl.playlists
    assert variant.uri == "audio/media.m3u8" and variant.stream_info.audio == "audio"
    # The default's media is the variant itself: its tag has no URI (RFC 8216 4.3.4.1).
    assert [(m.language, m.default, m.uri) for m in pl.media] == [
        ("en", "YES", None),
        ("fr", "NO", "audio2/media.m3u8"),
    ]


def test_video_presentation_without_audio_is_not_audio_only(presentation: Presentation) -> None:
    video = [r for r in presentation.renditions if r.kind == "video"]
    p = Presentation(5.0, 2, video)
    assert not p.audio_only and p.playable
    empty = Presentation(5.0, 2, [], pending=["v360"])
    assert not empty.playable
    # Audio packaged while video is still pending is not playable on its own.
    waiting = Presentation(5.0, 2, [_audio("audio", default=True)], pending=["v360"])
    assert not waiting.audio_only and not waiting.playable
    assert "#EXT-X-MEDIA" not in render_hls_master(p)


def test_old_presentations_without_audio_labels_still_render(presentation: Presentation) -> None:
    """Presentations stored before audio labels existed: one audio, no name/default/role."""
    data = presentation.to_dict()
    for r in data["renditions"]:
        for key in ("name", "default", "role"):
            r.pop(key)
    old = Presentation.from_dict(data)
    media = m3u8.loads(render_hls_master(old)).media
    assert [(m.name, m.default) for m in media] == [("Default", "YES")]
    (aset,) = [
        a
        for a in MPEGDASHParser.parse(render_mpd(old)).periods[0].adaptation_sets
        if a.content_type == "audio"
    ]
    assert aset.roles[0].value == "main"
