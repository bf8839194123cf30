"""Chromaprint audio fingerprints: computed by ffmpeg's chromaprint muxer, and compared.

Exact duplicates (the same bytes) are found at ingest by the source's sha256
(``catalog.record_content_hash``). A fingerprint finds the *same audio in a different file* —
another container, another video track, another audio bitrate or codec (the job that uses
it: :mod:`._fingerprint`). No database here: data in, data out.

How two fingerprints are compared (:func:`compare`): a chromaprint fingerprint is a run of
32-bit words, about 8 a second, each bit one comparison of chroma (pitch class) energies.
Aligned word by word, the *bit error rate* (BER, the share of differing bits) is near 0 for
the same audio and near 0.5 for unrelated audio. The alignment is searched over a small
offset (±:data:`MAX_OFFSET` words, about ±1 s: encoder delay, a trimmed start) and the best
one kept. Measured here on 8 s clips (ffmpeg 5.1, chromaprint algorithm 1):

====================================================================  =========
pair                                                                   best BER
====================================================================  =========
same audio, AAC 128 kb/s vs AAC 40 kb/s, different video               0.09
same audio, 300 ms cut off the start and re-encoded to Opus 24 kb/s    0.08
both of those degraded copies against each other                       0.14
same audio delayed by 700 ms of silence                                0.07
same beeps, AAC vs MP3 64 kb/s                                         0.02
different synthetic melodies, melody vs noise                          0.40–0.53
white noise vs white noise (different seeds)                           0.18
440 Hz vs 660 Hz sine; silence vs 660 Hz sine                          0.06; 0.00
====================================================================  =========

The last two rows are why a low BER alone is not enough: sounds that do not change over
time (silence, a steady tone, noise) give fingerprints that agree at *every* alignment, so
every silent track would "match" every other. A match therefore also needs contrast: the
aligned BER must be below half the BER of the same pair deliberately misaligned by 1.5–2.5 s
(:data:`BASELINE_OFFSETS`), which is ~0.4 for real content and stays put for steady sounds.
"""

from __future__ import annotations

import array
import functools
import statistics
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mediaplane.jobs import PermanentJobError
from mediaplane.media import ManagedProcess, Source, chromaprint_argv, has_muxer, muxers_argv

if TYPE_CHECKING:
    from mediaplane.media import Toolchain

#: Audio fingerprinted per asset, from the start: enough to identify a recording (AcoustID
#: uses 120 s too) while bounding the work for a 12-hour source.
FINGERPRINT_SECONDS = 120.0
#: Wall-clock bound for the ffmpeg run; decoding 2 min of audio takes about a second here.
FINGERPRINT_TIMEOUT_SECONDS = 300.0
#: Address space for that ffmpeg run (audio only: no video is decoded).
FINGERPRINT_MEMORY_BYTES = 1 << 30
#: Chromaprint emits a word every 4096/3 samples at 11025 Hz.
WORDS_PER_SECOND = 11025 / (4096 / 3)
#: Fewest aligned words (~3 s) a BER is computed over; chromaprint needs ~2.6 s of audio
#: before its first word, so a source needs about 6 s of audio to be comparable at all.
MIN_OVERLAP = 24
#: Alignments searched: ±8 words, about ±1 s.
MAX_OFFSET = 8
#: Misalignments (words, both signs) that give a pair's "unrelated" BER.
BASELINE_OFFSETS = (12, 14, 16, 18, 20)
#: Highest aligned BER that can be a match. The same audio re-encoded measured ≤ 0.09
#: against its original and 0.14 between two lossy copies of it; unrelated content measured
#: 0.4–0.53. Steady sounds that come lower (noise 0.18, tones) fail the contrast test, so
#: the bound can leave room for worse copies than measured.
MATCH_BER = 0.2
#: The aligned BER must also be below this share of the misaligned BER (see module doc).
CONTRAST = 0.5


@dataclass(frozen=True)
class Fingerprint:
    """A raw chromaprint fingerprint held as one integer: word ``i`` is bits [32i, 32i+32).

    XOR and popcount of big integers run in C, so one alignment of two 2-minute
    fingerprints costs microseconds, not a Python loop over ~1000 words.
    """

    words: int
    bits: int

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """From stored little-endian words (see :func:`parse_raw`)."""
        if len(data) % 4:
            raise ValueError(f"a fingerprint is whole 32-bit words, not {len(data)} bytes")
        return cls(len(data) // 4, int.from_bytes(data, "little"))

    @classmethod
    def from_words(cls, words: list[int]) -> Fingerprint:
        return cls.from_bytes(b"".join(w.to_bytes(4, "little") for w in words))

    def window(self, start: int, count: int) -> int:
        """Words ``[start, start + count)`` as one integer."""
        return (self.bits >> (32 * start)) & ((1 << (32 * count)) - 1)


def parse_raw(data: bytes) -> bytes:
    """ffmpeg's raw fingerprint (native-endian uint32 words) as little-endian bytes."""
    if len(data) % 4:
        raise ValueError(f"raw fingerprint of {len(data)} bytes is not whole 32-bit words")
    words = array.array("I")
    assert words.itemsize == 4
    words.frombytes(data)
    if sys.byteorder == "big":
        words.byteswap()
    return words.tobytes()


def bit_error_rate(a: Fingerprint, b: Fingerprint, offset: int = 0) -> float | None:
    """Share of differing bits with word ``a[i]`` against ``b[i + offset]``.

    None when fewer than :data:`MIN_OVERLAP` words overlap at that offset.
    """
    start = max(0, -offset)
    count = min(a.words, b.words - offset) - start
    if count < MIN_OVERLAP:
        return None
    diff = a.window(start, count) ^ b.window(start + offset, count)
    return diff.bit_count() / (32 * count)


@dataclass(frozen=True)
class AudioMatch:
    """The best alignment of two fingerprints that match."""

    ber: float
    offset: int  # words; a[i] aligns with b[i + offset]
    baseline: float  # median BER of the same pair misaligned

    @property
    def offset_seconds(self) -> float:
        return self.offset / WORDS_PER_SECOND


def compare(a: Fingerprint, b: Fingerprint) -> AudioMatch | None:
    """The match between ``a`` and ``b``, or None when their audio differs (or cannot be
    told apart from a steady sound: silence, a tone, noise)."""
    best: tuple[float, int] | None = None
    for offset in sorted(range(-MAX_OFFSET, MAX_OFFSET + 1), key=abs):
        ber = bit_error_rate(a, b, offset)
        if ber is not None and (best is None or ber < best[0]):
            best = (ber, offset)
    if best is None or best[0] > MATCH_BER:
        return None
    misaligned = [
        ber
        for shift in BASELINE_OFFSETS
        for offset in (best[1] - shift, best[1] + shift)
        if (ber := bit_error_rate(a, b, offset)) is not None
    ]
    if not misaligned:
        return None  # too short to tell a match from a steady sound
    baseline = statistics.median(misaligned)
    if best[0] >= CONTRAST * baseline:
        return None
    return AudioMatch(ber=best[0], offset=best[1], baseline=baseline)


@functools.cache
def _chromaprint_available(tools: Toolchain) -> bool:
    done = ManagedProcess(
        muxers_argv(tools), timeout=30, memory_bytes=FINGERPRINT_MEMORY_BYTES, name="ffmpeg"
    ).run()
    return has_muxer(done.stdout.decode("utf-8", "replace"), "chromaprint")


def audio_fingerprint(
    tools: Toolchain, source: Source, *, memory_bytes: int = FINGERPRINT_MEMORY_BYTES
) -> bytes:
    """Fingerprint the first :data:`FINGERPRINT_SECONDS` of ``source``'s first audio track
    (opened with the demuxer its probe named).

    Returns little-endian 32-bit words (possibly none, for very short audio).
    """
    if not _chromaprint_available(tools):
        raise PermanentJobError(
            f"ffmpeg at {tools.ffmpeg} was built without chromaprint; audio duplicate "
            "detection is off (Debian/Ubuntu's ffmpeg package has it)."
        )
    done = ManagedProcess(
        chromaprint_argv(tools, source, seconds=FINGERPRINT_SECONDS),
        timeout=FINGERPRINT_TIMEOUT_SECONDS,
        memory_bytes=memory_bytes,
        name="chromaprint",
    ).run()
    return parse_raw(done.stdout)
