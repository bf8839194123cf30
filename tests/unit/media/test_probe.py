from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from mediaplane.config import Settings
from mediaplane.media import InvalidMedia
from mediaplane.media._probe import MAX_AUDIO_STREAMS, parse_probe

S = Settings()


def _data(**video: Any) -> dict[str, Any]:
    v = {
        "codec_type": "video",
        "codec_name": "h264",
        "width": 1920,
        "height": 1080,
        "avg_frame_rate": "30000/1001",
        "r_frame_rate": "30000/1001",
    }
    v.update(video)
    return {
        "format": {
            "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
            "duration": "12.5",
            "bit_rate": "5000000",
        },
        "streams": [v, {"index": 1, "codec_type": "audio", "codec_name": "aac", "channels": 6}],
    }


def test_parse_ok() -> None:
    info = parse_probe(_data(), S)
    assert info.demuxer == "mov"  # the first allow-listed name of "mov,mp4,m4a,3gp,3g2,mj2"
    assert (info.width, info.height, info.duration) == (1920, 1080, 12.5)
    assert info.fps == Fraction(30000, 1001)
    assert info.has_audio and info.audio_channels == 6


def test_rotation_swaps_dimensions() -> None:
    info = parse_probe(_data(side_data_list=[{"rotation": -90}]), S)
    assert (info.width, info.height) == (1080, 1920)


def test_bogus_frame_rate_falls_back() -> None:
    assert parse_probe(_data(avg_frame_rate="0/0", r_frame_rate="90000/1"), S).fps == 30


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "not a video we can read"),
        (
            {
                "format": {"format_name": "mp3", "duration": "3"},
                "streams": [{"codec_type": "audio"}],  # no codec ffmpeg can name
            },
            "no video or audio track",
        ),
        (
            {
                "format": {"format_name": "matroska,webm", "duration": "3"},
                "streams": [{"codec_type": "subtitle", "codec_name": "subrip"}],
            },
            "no video or audio track",
        ),
        (
            {
                "format": {"format_name": "wav", "duration": "0"},
                "streams": [{"codec_type": "audio", "codec_name": "pcm_s16le", "channels": 2}],
            },
            "no duration",
        ),
        (_data(width=9000, height=9000), "9000×9000 is larger than the maximum"),
        (_data(width=0, height=0), "could not be read"),
        ({**_data(), "format": {"format_name": "png_pipe", "duration": "1"}}, "still image"),
        ({**_data(), "format": {"format_name": "hls", "duration": "2"}}, "playlist/manifest"),
        ({**_data(), "format": {"format_name": "dash", "duration": "2"}}, "playlist/manifest"),
        ({**_data(), "format": {"format_name": "concat", "duration": "2"}}, "playlist/manifest"),
        ({**_data(), "format": {"format_name": "h264", "duration": "2"}}, "not a video we can"),
        ({**_data(), "format": {"format_name": "mov", "duration": "0"}}, "no duration"),
        ({**_data(), "format": {"format_name": "mov", "duration": "99999999"}}, "hours long"),
    ],
)
def test_refusals(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidMedia, match=message):
        parse_probe(data, S)


def test_cover_art_is_not_video() -> None:
    """An MP3/M4A with cover art is an audio-only source, not a one-frame video."""
    info = parse_probe(_data(disposition={"attached_pic": 1}), S)
    assert not info.has_video and info.has_audio
    assert (info.width, info.height, info.video_codec) == (0, 0, None)


def test_audio_only_source() -> None:
    data = {
        "format": {"format_name": "mp3", "duration": "61.2", "bit_rate": "128000"},
        "streams": [
            {
                "index": 0,
                "codec_type": "audio",
                "codec_name": "mp3",
                "channels": 2,
                "channel_layout": "stereo",
                "sample_rate": "44100",
            }
        ],
    }
    info = parse_probe(data, S)
    assert not info.has_video and info.has_audio
    assert info.duration == 61.2 and info.bit_rate == 128000
    (a,) = info.audio
    assert (a.index, a.codec, a.channels, a.channel_layout, a.sample_rate) == (
        0,
        "mp3",
        2,
        "stereo",
        44100,
    )
    assert a.default  # the only stream is the default one
    assert (info.audio_codec, info.audio_channels) == ("mp3", 2)


def _audio(index: int, **kw: Any) -> dict[str, Any]:
    return {
        "index": index,
        "codec_type": "audio",
        "codec_name": "aac",
        "channels": kw.pop("channels", 2),
        "sample_rate": "48000",
        "disposition": {"default": 0, "comment": 0, "visual_impaired": 0, **kw.pop("disp", {})},
        "tags": kw.pop("tags", {}),
        **kw,
    }


def test_every_audio_stream_listed_default_first() -> None:
    data = _data()
    data["streams"] = [
        data["streams"][0],
        _audio(1, tags={"language": "fre", "title": "Français"}),
        _audio(
            2,
            channels=6,
            channel_layout="5.1",
            tags={"language": "eng", "title": "English"},
            disp={"default": 1},
        ),
        _audio(3, tags={"LANGUAGE": "eng", "title": "Commentary"}, disp={"comment": 1}),
        _audio(4, tags={"language": "eng"}, disp={"visual_impaired": 1}),
        _audio(5, tags={"language": "und"}),
        {"index": 6, "codec_type": "audio", "channels": 2},  # no decoder: skipped
        {"index": 7, "codec_type": "subtitle", "codec_name": "subrip"},
    ]
    info = parse_probe(data, S)
    assert [a.index for a in info.audio] == [2, 1, 3, 4, 5]
    assert [a.default for a in info.audio] == [True, False, False, False, False]
    eng, fre, comment, described, und = info.audio
    assert (eng.language, eng.title, eng.channels, eng.channel_layout) == (
        "eng",
        "English",
        6,
        "5.1",
    )
    assert (fre.language, fre.title) == ("fre", "Français")
    assert comment.comment and not comment.visual_impaired and comment.language == "eng"
    assert described.visual_impaired and described.title is None
    assert und.language is None
    assert info.audio_channels == 6  # the default stream's


def test_without_a_default_flag_the_first_stream_is_default() -> None:
    data = _data()
    data["streams"] = [data["streams"][0], _audio(1), _audio(2)]
    info = parse_probe(data, S)
    assert [(a.index, a.default) for a in info.audio] == [(1, True), (2, False)]


def test_audio_streams_are_capped() -> None:
    data = _data()
    data["streams"] = [data["streams"][0], *(_audio(i) for i in range(1, 40))]
    assert len(parse_probe(data, S).audio) == MAX_AUDIO_STREAMS


def test_matroska_and_webm_open_with_the_matroska_demuxer() -> None:
    data = {**_data(), "format": {"format_name": "matroska,webm", "duration": "3"}}
    assert parse_probe(data, S).demuxer == "matroska"
