from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from mediaplane.config import Settings
from mediaplane.media import InvalidMedia, parse_probe

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
        "streams": [v, {"codec_type": "audio", "codec_name": "aac", "channels": 6}],
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
                "streams": [{"codec_type": "audio"}],
            },
            "no video track",
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
    data = _data(disposition={"attached_pic": 1})
    with pytest.raises(InvalidMedia, match="no video track"):
        parse_probe(data, S)


def test_matroska_and_webm_open_with_the_matroska_demuxer() -> None:
    data = {**_data(), "format": {"format_name": "matroska,webm", "duration": "3"}}
    assert parse_probe(data, S).demuxer == "matroska"
