"""What each audio stream of a source becomes: rendition id, language tag, name, role."""

from __future__ import annotations

from fractions import Fraction

import pytest

from mediaplane.media import AudioStream, MediaInfo, audio_tracks
from mediaplane.media._audio import language_tag


def _stream(index: int, **kw: object) -> AudioStream:
    fields: dict[str, object] = {
        "codec": "aac",
        "channels": 2,
        "channel_layout": "stereo",
        "sample_rate": 48000,
        "language": None,
        "title": None,
        "default": False,
        "comment": False,
        "visual_impaired": False,
    }
    fields.update(kw)
    return AudioStream(index=index, **fields)  # type: ignore[arg-type]


def _info(*audio: AudioStream) -> MediaInfo:
    return MediaInfo(
        container="matroska,webm",
        demuxer="matroska",
        duration=2.0,
        width=640,
        height=360,
        fps=Fraction(30),
        video_codec="h264",
        audio=audio,
        bit_rate=None,
    )


@pytest.mark.parametrize(
    ("tag", "bcp47"),
    [
        ("eng", "en"),
        ("fre", "fr"),
        ("fra", "fr"),
        ("ger", "de"),
        ("en", "en"),
        ("pt-BR", "pt-BR"),
        ("haw", "haw"),  # no two-letter code: kept
        ("", None),
        (None, None),
        ("12", None),
        ("english please", None),
    ],
)
def test_language_tag(tag: str | None, bcp47: str | None) -> None:
    assert language_tag(tag) == bcp47


def test_tracks_names_roles_and_ids() -> None:
    info = _info(
        _stream(1, language="eng", title="English", default=True),
        _stream(2, language="fre"),
        _stream(3, language="eng", comment=True),
        _stream(4, language="eng", visual_impaired=True),
        _stream(5),
    )
    tracks = audio_tracks(info)
    assert [t.rendition_id for t in tracks] == ["audio", "audio2", "audio3", "audio4", "audio5"]
    assert [t.stream.index for t in tracks] == [1, 2, 3, 4, 5]
    assert [t.language for t in tracks] == ["en", "fr", "en", "en", None]
    assert [t.name for t in tracks] == [
        "English",
        "French",
        "English (commentary)",
        "English (audio description)",
        "Audio 5",
    ]
    assert [t.role for t in tracks] == [
        "main",
        "alternate",
        "commentary",
        "description",
        "alternate",
    ]
    assert [t.default for t in tracks] == [True, False, False, False, False]


def test_track_names_are_unique() -> None:
    tracks = audio_tracks(_info(_stream(1, language="eng"), _stream(2, language="eng")))
    assert [t.name for t in tracks] == ["English", "English 2"]
