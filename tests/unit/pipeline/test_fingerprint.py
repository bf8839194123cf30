"""Audio duplicate detection: fingerprint comparison, and the fingerprint job run against
real ffmpeg and SQLite (content hashes: tests/unit/catalog/test_content_hash.py)."""

from __future__ import annotations

import array
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediaplane.catalog import (
    Asset,
    FingerprintStatus,
    queue_fingerprint,
    record_content_hash,
    sha256_file,
    source_key,
)
from mediaplane.clips import H264, Clip, picture
from mediaplane.config import Settings
from mediaplane.jobs import JobState, run_job
from mediaplane.media import Source, Toolchain, probe
from mediaplane.pipeline._chromaprint import (
    MIN_OVERLAP,
    Fingerprint,
    audio_fingerprint,
    bit_error_rate,
    compare,
    parse_raw,
)
from mediaplane.runtime import Runtime
from tests.support import MEDIA_CACHE, migrated_runtime

MELODY = "sin(2*PI*(300+200*sin(t))*t)+0.3*sin(2*PI*1250*t)"
OTHER_MELODY = "sin(2*PI*(520+180*sin(1.7*t))*t)*(0.6+0.4*sin(3*t))"


def _random_words(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(32) for _ in range(n)]


def _flip(words: list[int], share: float, seed: int) -> list[int]:
    """Each bit flipped with probability ``share`` (a lossy copy of the same audio)."""
    rng = random.Random(seed)
    out = []
    for w in words:
        mask = 0
        for bit in range(32):
            if rng.random() < share:
                mask |= 1 << bit
        out.append(w ^ mask)
    return out


# -- fingerprints and their comparison ------------------------------------------------------


def test_parse_raw_reads_native_words() -> None:
    words = array.array("I", [1, 0xDEADBEEF, 0xFFFFFFFF])
    stored = parse_raw(words.tobytes())
    assert stored == b"".join(w.to_bytes(4, "little") for w in words)
    fp = Fingerprint.from_bytes(stored)
    assert fp.words == 3
    assert fp.window(1, 1) == 0xDEADBEEF
    assert fp.window(1, 2) == 0xDEADBEEF | 0xFFFFFFFF << 32
    with pytest.raises(ValueError, match="32-bit words"):
        parse_raw(b"\x00" * 7)
    with pytest.raises(ValueError, match="32-bit words"):
        Fingerprint.from_bytes(b"\x00" * 5)


def test_bit_error_rate_counts_differing_bits_at_an_offset() -> None:
    words = _random_words(60, 1)
    a = Fingerprint.from_words(words)
    assert bit_error_rate(a, a) == 0.0
    inverted = Fingerprint.from_words([w ^ 0xFFFFFFFF for w in words])
    assert bit_error_rate(a, inverted) == 1.0
    # b starts 3 words later in the same audio: a[i] lines up with b[i - 3].
    b = Fingerprint.from_words(_random_words(3, 2) + words)
    assert bit_error_rate(a, b, 3) == 0.0
    assert 0.4 < (bit_error_rate(a, b, 0) or 0) < 0.6
    # Too little overlap to say anything.
    short = Fingerprint.from_words(words[: MIN_OVERLAP - 1])
    assert bit_error_rate(a, short) is None
    assert bit_error_rate(a, a, len(words) - MIN_OVERLAP + 1) is None


def test_compare_finds_a_lossy_shifted_copy() -> None:
    words = _random_words(400, 3)
    copy = _flip(words[5:], 0.08, 4)  # 5 words (0.6 s) cut off the start, 8% bits wrong
    match = compare(Fingerprint.from_words(words), Fingerprint.from_words(copy))
    assert match is not None
    assert match.offset == -5
    assert 0.05 < match.ber < 0.11
    assert match.baseline > 0.45
    assert match.offset_seconds == pytest.approx(-0.62, abs=0.01)


def test_compare_rejects_unrelated_and_steady_sounds() -> None:
    a = Fingerprint.from_words(_random_words(200, 5))
    assert compare(a, Fingerprint.from_words(_random_words(200, 6))) is None
    # Silence or a steady tone: the same word over and over. Identical, and still no match:
    # every alignment agrees, so nothing says these are the same recording.
    steady = Fingerprint.from_words([0x256DF977] * 200)
    assert compare(steady, steady) is None
    # A copy offset beyond the search window is not found.
    words = _random_words(200, 7)
    assert compare(Fingerprint.from_words(words), Fingerprint.from_words(words[20:])) is None


def test_compare_needs_enough_overlap_for_a_baseline() -> None:
    words = _random_words(MIN_OVERLAP + 4, 8)
    fp = Fingerprint.from_words(words)
    assert bit_error_rate(fp, fp) == 0.0
    assert compare(fp, fp) is None  # no misaligned window is long enough to compare with


# -- real chromaprint -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools() -> Toolchain:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if not ffmpeg or not ffprobe:
        pytest.skip("ffmpeg is not installed")
    return Toolchain(ffmpeg=ffmpeg, ffprobe=ffprobe, packager="/nonexistent", ffmpeg_version="?")


def av_clip(
    name: str, *, audio: str | None, video: str = "testsrc2", extra: tuple[str, ...] = ()
) -> Path:
    """An 8 s 64×64 clip (cached): lavfi ``video`` plus lavfi ``audio`` (None: silent file)."""
    clip = Clip(
        seconds=8,
        video=picture("64x64", 10, video),
        audio=(audio,) if audio is not None else (),
        codecs=H264,
        extra=extra,
    )
    return clip.make(MEDIA_CACHE / name, timeout=120)


def _source(tools: Toolchain, path: Path) -> Source:
    """The clip as the fingerprint job opens it: with the demuxer its probe named."""
    return Source(path, probe(tools, path, Settings()).demuxer)


def test_chromaprint_same_audio_in_different_files(tools: Toolchain) -> None:
    def fp(path: Path) -> Fingerprint:
        return Fingerprint.from_bytes(audio_fingerprint(tools, _source(tools, path)))

    melody = fp(av_clip("dd-melody.mp4", audio=f"aevalsrc={MELODY}:s=44100", extra=("-c:a", "aac")))
    # Other video, other sample rate, another codec at a low bitrate.
    copy = fp(
        av_clip(
            "dd-melody-red.mkv",
            audio=f"aevalsrc={MELODY}:s=48000",
            video="color=red",
            extra=("-c:a", "libopus", "-b:a", "32k"),
        )
    )
    other = fp(
        av_clip("dd-other.mp4", audio=f"aevalsrc={OTHER_MELODY}:s=44100", extra=("-c:a", "aac"))
    )
    noise = fp(av_clip("dd-noise.mp4", audio="anoisesrc=seed=3:r=44100", extra=("-c:a", "aac")))
    assert melody.words > 35  # ~8 words a second after ~2.6 s of warm-up
    match = compare(melody, copy)
    assert match is not None and match.ber < 0.1, match
    assert compare(melody, other) is None
    assert compare(melody, noise) is None
    assert compare(other, noise) is None


def test_chromaprint_of_a_steady_tone_matches_nothing(tools: Toolchain) -> None:
    tone = audio_fingerprint(
        tools,
        _source(tools, av_clip("dd-tone.mp4", audio="sine=f=440:r=44100", extra=("-c:a", "aac"))),
    )
    tone2 = audio_fingerprint(
        tools,
        _source(
            tools,
            av_clip(
                "dd-tone-red.mp4",
                audio="sine=f=440:r=48000",
                video="color=red",
                extra=("-c:a", "aac", "-b:a", "48k"),
            ),
        ),
    )
    a, b = Fingerprint.from_bytes(tone), Fingerprint.from_bytes(tone2)
    assert bit_error_rate(a, b) == 0.0  # chromaprint cannot tell them apart...
    assert compare(a, b) is None  # ...so they are not reported as the same audio


# -- the fingerprint job and the links it writes --------------------------------------------


@pytest.fixture
def runtime(tmp_path: Path, tools: Toolchain) -> Iterator[Runtime]:
    with migrated_runtime("sqlite", tmp_path) as rt:
        rt.__dict__["toolchain"] = tools  # no packager needed to fingerprint
        yield rt


def _add(rt: Runtime, path: Path, title: str, *, hashed: bool = True) -> str:
    """An asset whose source is ``path``, hashed as at ingest (unless not ``hashed``)."""
    with rt.db.session() as s:
        asset = Asset(title=title, source_filename=path.name, tracks=[])
        s.add(asset)
        s.flush()
        asset.source_key = source_key(asset.id)
        rt.store.put_file(asset.source_key, path)
        if hashed:
            record_content_hash(s, asset, sha256_file(path))
        return asset.id


def _fingerprint(rt: Runtime, asset_id: str) -> None:
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        assert asset is not None
        job_id = queue_fingerprint(s, asset).id
    assert run_job(rt, job_id, "test-worker") is JobState.SUCCEEDED


def _asset(rt: Runtime, asset_id: str) -> Asset:
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        assert asset is not None
        s.expunge(asset)
        return asset


def test_fingerprint_job_links_matches_in_either_order(runtime: Runtime) -> None:
    melody = av_clip("dd-melody.mp4", audio=f"aevalsrc={MELODY}:s=44100", extra=("-c:a", "aac"))
    older = _add(runtime, melody, "original")
    newer = _add(
        runtime,
        av_clip(
            "dd-melody-red.mkv",
            audio=f"aevalsrc={MELODY}:s=48000",
            video="color=red",
            extra=("-c:a", "libopus", "-b:a", "32k"),
        ),
        "same audio, other video",
    )
    other = _add(
        runtime,
        av_clip("dd-other.mp4", audio=f"aevalsrc={OTHER_MELODY}:s=44100", extra=("-c:a", "aac")),
        "other audio",
    )
    silent = _add(runtime, av_clip("dd-silent.mp4", audio=None), "no audio track")
    # The newer asset is fingerprinted first: the older one's job links it afterwards.
    for asset_id in (newer, other, older, silent):
        _fingerprint(runtime, asset_id)
    assert _asset(runtime, newer).audio_match_of == older
    assert _asset(runtime, older).audio_match_of is None
    assert _asset(runtime, other).audio_match_of is None
    assert _asset(runtime, older).fingerprint_status is FingerprintStatus.READY
    silent_row = _asset(runtime, silent)
    assert silent_row.fingerprint_status is FingerprintStatus.NO_AUDIO
    assert silent_row.audio_match_of is None

    # An exact copy: flagged at ingest, and its fingerprint reused rather than recomputed.
    again = _add(runtime, melody, "uploaded twice")
    row = _asset(runtime, again)
    assert row.duplicate_of == older and row.content_hash == sha256_file(melody)
    _fingerprint(runtime, again)
    row = _asset(runtime, again)
    assert row.fingerprint_status is FingerprintStatus.READY
    assert row.audio_match_of == older

    # A source stored without its hash (a resumable upload): the job hashes it.
    late = _add(runtime, melody, "hashed by the job", hashed=False)
    assert _asset(runtime, late).content_hash is None
    _fingerprint(runtime, late)
    row = _asset(runtime, late)
    assert row.content_hash == sha256_file(melody)
    assert row.duplicate_of == older
