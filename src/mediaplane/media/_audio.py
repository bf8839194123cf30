"""What each audio stream of a source becomes: a labelled audio rendition.

The probe reports the tags as the file has them (ISO 639-2 ``eng``/``fre``, a title, the
``default``/``comment``/``visual_impaired`` dispositions); players and manifests want a BCP 47
language (``en``), a name for the track menu and a role (DASH Role, HLS CHARACTERISTICS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .ffmpeg import audio_name

if TYPE_CHECKING:
    from ._presentation import AudioRole
    from ._probe import AudioStream, MediaInfo

#: ISO 639-2 (bibliographic and terminology codes) → ISO 639-1, with an English name, for
#: the languages media is most often tagged with. Other codes are kept as tagged (BCP 47
#: allows a three-letter ISO 639 code where no two-letter one exists).
_LANGUAGES: dict[str, tuple[str, str]] = {
    "ara": ("ar", "Arabic"),
    "ben": ("bn", "Bengali"),
    "bul": ("bg", "Bulgarian"),
    "cat": ("ca", "Catalan"),
    "ces": ("cs", "Czech"),
    "cze": ("cs", "Czech"),
    "chi": ("zh", "Chinese"),
    "zho": ("zh", "Chinese"),
    "dan": ("da", "Danish"),
    "deu": ("de", "German"),
    "ger": ("de", "German"),
    "ell": ("el", "Greek"),
    "gre": ("el", "Greek"),
    "eng": ("en", "English"),
    "est": ("et", "Estonian"),
    "fas": ("fa", "Persian"),
    "per": ("fa", "Persian"),
    "fin": ("fi", "Finnish"),
    "fra": ("fr", "French"),
    "fre": ("fr", "French"),
    "heb": ("he", "Hebrew"),
    "hin": ("hi", "Hindi"),
    "hrv": ("hr", "Croatian"),
    "hun": ("hu", "Hungarian"),
    "ind": ("id", "Indonesian"),
    "isl": ("is", "Icelandic"),
    "ice": ("is", "Icelandic"),
    "ita": ("it", "Italian"),
    "jpn": ("ja", "Japanese"),
    "kor": ("ko", "Korean"),
    "lav": ("lv", "Latvian"),
    "lit": ("lt", "Lithuanian"),
    "msa": ("ms", "Malay"),
    "may": ("ms", "Malay"),
    "nld": ("nl", "Dutch"),
    "dut": ("nl", "Dutch"),
    "nor": ("no", "Norwegian"),
    "nob": ("nb", "Norwegian Bokmål"),
    "pol": ("pl", "Polish"),
    "por": ("pt", "Portuguese"),
    "ron": ("ro", "Romanian"),
    "rum": ("ro", "Romanian"),
    "rus": ("ru", "Russian"),
    "slk": ("sk", "Slovak"),
    "slo": ("sk", "Slovak"),
    "slv": ("sl", "Slovenian"),
    "spa": ("es", "Spanish"),
    "srp": ("sr", "Serbian"),
    "swe": ("sv", "Swedish"),
    "tam": ("ta", "Tamil"),
    "tha": ("th", "Thai"),
    "tur": ("tr", "Turkish"),
    "ukr": ("uk", "Ukrainian"),
    "urd": ("ur", "Urdu"),
    "vie": ("vi", "Vietnamese"),
}
_BY_TWO_LETTERS = {two: name for two, name in _LANGUAGES.values()}


def language_tag(code: str | None) -> str | None:
    """A BCP 47 language tag for a stream's language tag: ``eng`` → ``en``; None for none
    or one that is not a language code at all."""
    if not code:
        return None
    code = code.strip().replace("_", "-")
    primary = code.split("-", 1)[0].lower()
    if not primary.isascii() or not primary.isalpha() or not 2 <= len(primary) <= 3:
        return None
    if primary in _LANGUAGES:
        return _LANGUAGES[primary][0]
    return primary if code.lower() == primary else code


def language_name(tag: str | None) -> str | None:
    """An English name for a BCP 47 tag we know (``fr`` → ``French``)."""
    return _BY_TWO_LETTERS.get(tag.split("-", 1)[0]) if tag else None


@dataclass(frozen=True)
class AudioTrack:
    """One audio stream of the source as the rendition it becomes."""

    rendition_id: str  # "audio", "audio2", …: the output file and folder name
    stream: AudioStream
    language: str | None  # BCP 47
    name: str
    default: bool
    role: AudioRole


def _role(stream: AudioStream) -> AudioRole:
    if stream.visual_impaired:
        return "description"
    if stream.comment:
        return "commentary"
    return "main" if stream.default else "alternate"


_ROLE_SUFFIX = {"description": "audio description", "commentary": "commentary"}


def audio_tracks(info: MediaInfo) -> list[AudioTrack]:
    """The audio renditions of a source, in :attr:`MediaInfo.audio` order (default first),
    each with a name unique among them."""
    tracks: list[AudioTrack] = []
    names: set[str] = set()
    for i, stream in enumerate(info.audio):
        language = language_tag(stream.language)
        role = _role(stream)
        base = stream.title or language_name(language) or language or f"Audio {i + 1}"
        if not stream.title and role in _ROLE_SUFFIX:
            base = f"{base} ({_ROLE_SUFFIX[role]})"
        name, n = base, 2
        while name in names:
            name, n = f"{base} {n}", n + 1
        names.add(name)
        tracks.append(AudioTrack(audio_name(i), stream, language, name, default=i == 0, role=role))
    return tracks
