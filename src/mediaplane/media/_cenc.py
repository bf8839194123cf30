"""Common Encryption (ISO/IEC 23001-7) of fragmented MP4 as it streams: ``cenc`` and ``cbcs``.

The live path has no packager that encrypts (ffmpeg 5.1 cannot, Shaka Packager is VOD's),
so :class:`CencWriter` encrypts the CMAF track :class:`~._fmp4.Fmp4Reader` hands out:

* :meth:`CencWriter.init_segment` rewrites the init segment: the sample entry becomes
  ``encv``/``enca`` with a ``sinf`` (``frma`` the original format, ``schm`` the scheme,
  ``schi``/``tenc`` the default KID: an 8-byte per-sample IV for ``cenc``; a constant IV and,
  for video, the 1:9 pattern for ``cbcs``), and the ``moov`` gains the W3C Common ``pssh``
  listing the KID (what Chromium's ClearKey reads);
* :meth:`CencWriter.fragment` encrypts each sample of a fragment in place — AES-CTR
  (``cenc``) or AES-CBC with the 1:9 pattern and the constant IV reset at each subsample
  (``cbcs``) — and adds ``saiz``, ``saio`` and ``senc`` to its ``traf`` (``saio`` pointing
  at the ``senc`` entries, the offset from the ``moof`` as ``default-base-is-moof`` says),
  moving the ``trun`` data offsets by what the ``moof`` grew.

Video is subsample-encrypted: every NAL unit's length prefix and header stay clear, a
slice's whole slice header too (its length parsed from the SPS/PPS, :mod:`._h264`), and
non-VCL NAL units entirely; the protected part of a slice is the last whole 16-byte blocks
of it (the remainder joins the clear bytes). Audio (AAC) is full-sample encrypted (``cbcs``:
whole blocks, the tail clear; pattern 0:0). Pure: no I/O.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, field, replace
from typing import Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ._errors import Fmp4Error, MediaError
from ._fmp4 import Fragment, InitSegment
from ._h264 import NAL_IDR, NAL_SLICE, ParameterSets, avcc_parameter_sets
from ._protection import common_pssh

__all__ = ["CENC_SCHEMES", "CencScheme", "CencWriter", "Subsample"]

CencScheme = Literal["cenc", "cbcs"]
CENC_SCHEMES: frozenset[str] = frozenset({"cenc", "cbcs"})
#: cbcs video pattern (ISO/IEC 23001-7 10.4): 1 block encrypted, 9 clear.
CBCS_CRYPT, CBCS_SKIP = 1, 9
#: senc flag: the entries carry subsample maps.
_SENC_SUBSAMPLES = 0x02
_TFHD_BASE_DATA_OFFSET = 0x01
_TFHD_DEFAULT_SIZE = 0x10
_TRUN_DATA_OFFSET = 0x01
_TRUN_FIRST_FLAGS = 0x04
_TRUN_DURATION = 0x100
_TRUN_SIZE = 0x200
_TRUN_FLAGS = 0x400
_TRUN_CTS = 0x800
#: Fixed fields before a sample entry's child boxes.
_ENTRY_FIELDS = {b"avc1": 78, b"avc3": 78, b"mp4a": 28}
_ENCRYPTED_ENTRY = {b"avc1": b"encv", b"avc3": b"encv", b"mp4a": b"enca"}
_CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl")
_MAX_CLEAR = 0xFFFF


@dataclass(frozen=True)
class Subsample:
    """One (clear bytes, protected bytes) pair of a sample's subsample map."""

    clear: int
    protected: int


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _walk(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of the boxes filling ``data[start:end]``."""
    out = []
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise Fmp4Error("truncated box header")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise Fmp4Error("truncated box header")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        if size < header or pos + size > end:
            raise Fmp4Error(f"box {kind!r} has a bad size")
        out.append((kind, pos, pos + header, pos + size))
        pos += size
    return out


@dataclass
class _TrackInfo:
    kind: bytes  # the clear sample entry type
    video: bool
    length_size: int = 4
    default_size: int = 0  # trex
    params: ParameterSets = field(default_factory=ParameterSets)


class CencWriter:
    """Encrypts one CMAF track (one init segment and the fragments after it) with one key.

    :param scheme: ``cenc`` or ``cbcs``.
    :param kid: the 16-byte key id written in ``tenc`` and the Common PSSH.
    :param key: the 16-byte AES key.
    :param init: the clear init segment (its single track's sample entry is rewritten).
    :param iv: cenc: the first sample's 8-byte IV (then counted up per sample); cbcs: the
        16-byte constant IV. Random when not given.
    """

    def __init__(
        self,
        scheme: str,
        kid: bytes,
        key: bytes,
        init: InitSegment,
        *,
        iv: bytes | None = None,
    ) -> None:
        if scheme not in CENC_SCHEMES:
            raise MediaError(f"sample encryption is cenc or cbcs, not {scheme!r}")
        if len(kid) != 16 or len(key) != 16:
            raise MediaError("a content key and its KID are 16 bytes each")
        self.scheme = scheme
        self.kid = kid
        self._aes = algorithms.AES(key)
        size = 8 if scheme == "cenc" else 16
        self.iv = iv if iv is not None else secrets.token_bytes(size)
        if len(self.iv) != size:
            raise MediaError(f"a {scheme} IV is {size} bytes")
        self._counter = int.from_bytes(self.iv, "big") if scheme == "cenc" else 0
        self._tracks: dict[int, _TrackInfo] = {}
        self._trex: dict[int, int] = {}  # track id: default sample size
        self._pending: _TrackInfo | None = None  # the sample entry of the trak being read
        self._init = self._rewrite_init(init)

    # -- the init segment -------------------------------------------------------------------

    def init_segment(self) -> InitSegment:
        """The init segment with the track marked encrypted (the tracks' codec strings stay
        the clear ones: the manifests name those)."""
        return self._init

    def _rewrite_init(self, init: InitSegment) -> InitSegment:
        data = init.data
        out = bytearray()
        for kind, s, p, e in _walk(data, 0, len(data)):
            if kind == b"moov":
                payload = self._container(data, p, e, 0)
                payload += common_pssh([self.kid])
                out += _box(b"moov", payload)
            else:
                out += data[s:e]
        if not self._tracks:
            raise Fmp4Error("the init segment has no H.264 or AAC track to encrypt")
        return InitSegment(bytes(out), init.tracks)

    def _container(self, data: bytes, start: int, end: int, depth: int) -> bytes:
        """The payload of a moov/trak/mdia/minf/stbl box, sample entries rewritten."""
        out = bytearray()
        track_id = 0
        for kind, s, p, e in _walk(data, start, end):
            if kind in _CONTAINERS[1:] and depth < len(_CONTAINERS) - 1:
                out += _box(kind, self._container(data, p, e, depth + 1))
            elif kind == b"stsd":
                out += _box(kind, self._stsd(data, p, e))
            elif kind == b"tkhd":
                version = data[p]
                track_id = struct.unpack_from(">I", data, p + (20 if version == 1 else 12))[0]
                out += data[s:e]
            elif kind == b"mvex":
                for k, _, tp, te in _walk(data, p, e):
                    if k == b"trex" and te - tp >= 24:
                        tid, _, _, size = struct.unpack_from(">4I", data, tp + 4)
                        self._trex[tid] = size
                out += data[s:e]
            else:
                out += data[s:e]
        if track_id and self._pending is not None:
            self._tracks[track_id] = self._pending
            self._pending = None
        return bytes(out)

    def _stsd(self, data: bytes, start: int, end: int) -> bytes:
        if end - start < 8:
            raise Fmp4Error("stsd box is too short")
        entries = _walk(data, start + 8, end)
        out = bytearray(data[start : start + 8])
        for i, (kind, s, p, e) in enumerate(entries):
            fixed = _ENTRY_FIELDS.get(kind)
            if i > 0 or fixed is None:
                if i == 0:
                    raise MediaError(
                        f"sample encryption here is of H.264 and AAC, not {kind.decode('latin-1')}"
                    )
                out += data[s:e]
                continue
            if e - p < fixed:
                raise Fmp4Error(f"{kind.decode('latin-1')} sample entry is too short")
            info = _TrackInfo(kind, video=kind != b"mp4a")
            if info.video:
                avcc = next(
                    ((d, f) for k, _, d, f in _walk(data, p + fixed, e) if k == b"avcC"), None
                )
                if avcc is None:
                    raise Fmp4Error("an H.264 sample entry without avcC")
                info.length_size, nals = avcc_parameter_sets(data[avcc[0] : avcc[1]])
                for nal in nals:
                    info.params.add(nal)
            self._pending = info
            sinf = _box(
                b"sinf",
                _box(b"frma", kind)
                + _full(b"schm", 0, 0, self.scheme.encode() + struct.pack(">I", 0x0001_0000))
                + _box(b"schi", self._tenc(info.video)),
            )
            out += _box(_ENCRYPTED_ENTRY[kind], data[p:e] + sinf)
        return bytes(out)

    def _tenc(self, video: bool) -> bytes:
        if self.scheme == "cenc":
            return _full(b"tenc", 0, 0, bytes([0, 0, 1, 8]) + self.kid)
        pattern = (CBCS_CRYPT << 4 | CBCS_SKIP) if video else 0
        return _full(b"tenc", 1, 0, bytes([0, pattern, 1, 0]) + self.kid + bytes([16]) + self.iv)

    # -- fragments --------------------------------------------------------------------------

    def fragment(self, frag: Fragment) -> Fragment:
        """``frag`` with its samples encrypted and its ``traf`` carrying their
        ``senc``/``saiz``/``saio`` (same timing and sequence)."""
        data = frag.data
        boxes = _walk(data, 0, len(data))
        moofs = [b for b in boxes if b[0] == b"moof"]
        if len(moofs) != 1:
            raise Fmp4Error("a fragment has one moof")
        _, m_start, m_pay, m_end = moofs[0]
        body = bytearray(data)  # samples are encrypted in place
        children = _walk(data, m_pay, m_end)
        new_children: list[bytes] = []
        patches: list[tuple[int, int, int]] = []  # (index in new_children, pos in it, offset)
        saio_at: list[tuple[int, int, int]] = []  # (child index, saio value pos, senc data)
        for kind, s, p, e in children:
            if kind != b"traf":
                new_children.append(data[s:e])
                continue
            traf, trun_offsets, saio_pos, senc_pos = self._traf(data, p, e, m_start, body)
            for pos, value in trun_offsets:
                patches.append((len(new_children), pos, value))
            if saio_pos is not None:
                saio_at.append((len(new_children), saio_pos, senc_pos))
            new_children.append(traf)
        moof_len = 8 + sum(map(len, new_children))
        grow = moof_len - (m_end - m_start)
        rebuilt = [bytearray(c) for c in new_children]
        for i, pos, value in patches:
            struct.pack_into(">i", rebuilt[i], pos, value + grow)
        starts = []
        at = 8
        for c in rebuilt:
            starts.append(at)
            at += len(c)
        for i, value_pos, senc_pos in saio_at:
            struct.pack_into(">I", rebuilt[i], value_pos, starts[i] + senc_pos)
        moof = struct.pack(">I4s", moof_len, b"moof") + b"".join(rebuilt)
        out = bytes(body[:m_start]) + moof + bytes(body[m_end:])
        return replace(frag, data=out)

    def _traf(
        self, data: bytes, start: int, end: int, moof_start: int, body: bytearray
    ) -> tuple[bytes, list[tuple[int, int]], int | None, int]:
        """The rebuilt traf box; the (position in it, old value) of each trun data offset;
        where in it the saio offset goes (None: no saio) and where senc's first entry is."""
        kids = _walk(data, start, end)
        tfhd = next(((p, e) for k, _, p, e in kids if k == b"tfhd"), None)
        if tfhd is None or tfhd[1] - tfhd[0] < 8:
            raise Fmp4Error("traf has no tfhd")
        tf_flags = struct.unpack_from(">I", data, tfhd[0])[0] & 0xFFFFFF
        track_id = struct.unpack_from(">I", data, tfhd[0] + 4)[0]
        info = self._tracks.get(track_id)
        if info is None:
            raise Fmp4Error(f"a fragment of track {track_id}, which the init does not have")
        if tf_flags & _TFHD_BASE_DATA_OFFSET:
            raise Fmp4Error("a fragment with an explicit base data offset (not a CMAF chunk)")
        default_size = self._trex.get(track_id, 0)
        if tf_flags & _TFHD_DEFAULT_SIZE:
            pos = tfhd[0] + 8
            for bit, n in ((0x02, 4), (0x08, 4)):
                if tf_flags & bit:
                    pos += n
            default_size = struct.unpack_from(">I", data, pos)[0]
        entries: list[bytes] = []
        maps: list[list[Subsample]] = []
        payload = bytearray()
        trun_offsets: list[tuple[int, int]] = []
        for kind, s, p, e in kids:
            if kind in (b"senc", b"saiz", b"saio"):
                raise Fmp4Error("this fragment is encrypted already")
            if kind == b"trun":
                flags = struct.unpack_from(">I", data, p)[0] & 0xFFFFFF
                count = struct.unpack_from(">I", data, p + 4)[0]
                if not flags & _TRUN_DATA_OFFSET:
                    raise Fmp4Error("a trun without a data offset")
                offset = struct.unpack_from(">i", data, p + 8)[0]
                trun_offsets.append((8 + len(payload) + (p - s) + 8, offset))
                pos = p + 12 + (4 if flags & _TRUN_FIRST_FLAGS else 0)
                fields = (_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS, _TRUN_CTS)
                per = 4 * sum(1 for f in fields if flags & f)
                if pos + count * per > e:
                    raise Fmp4Error(f"trun says {count} samples but holds fewer")
                size_at = 4 if flags & _TRUN_DURATION else 0
                at = moof_start + offset
                for i in range(count):
                    if flags & _TRUN_SIZE:
                        size = struct.unpack_from(">I", data, pos + i * per + size_at)[0]
                    else:
                        size = default_size
                    if at < 0 or at + size > len(body):
                        raise Fmp4Error("a sample runs past its fragment's data")
                    iv, subs = self._sample(info, body, at, size)
                    entries.append(iv)
                    maps.append(subs)
                    at += size
            payload += data[s:e]
        subsampled = info.video
        senc_body = bytearray(struct.pack(">I", len(entries)))
        sizes = []
        for iv, subs in zip(entries, maps, strict=True):
            entry = iv
            if subsampled:
                entry += struct.pack(">H", len(subs)) + b"".join(
                    struct.pack(">HI", x.clear, x.protected) for x in subs
                )
            senc_body += entry
            sizes.append(len(entry))
        if not any(sizes):  # cbcs full-sample (audio): a constant IV, no per-sample data
            saiz = saio = b""
        elif all(n == sizes[0] for n in sizes):
            saiz = _full(b"saiz", 0, 0, struct.pack(">BI", sizes[0], len(sizes)))
        else:
            saiz = _full(b"saiz", 0, 0, struct.pack(">BI", 0, len(sizes)) + bytes(sizes))
        if saiz:
            saio = _full(b"saio", 0, 0, struct.pack(">II", 1, 0))
        senc = _full(b"senc", 0, _SENC_SUBSAMPLES if subsampled else 0, bytes(senc_body))
        saio_value = 8 + len(payload) + len(saiz) + 16 if saio else None
        senc_data = 8 + len(payload) + len(saiz) + len(saio) + 16
        traf = _box(b"traf", bytes(payload) + saiz + saio + senc)
        return traf, trun_offsets, saio_value, senc_data

    # -- samples ----------------------------------------------------------------------------

    def _sample(
        self, info: _TrackInfo, body: bytearray, at: int, size: int
    ) -> tuple[bytes, list[Subsample]]:
        """Encrypt ``body[at:at+size]`` in place; its senc IV and subsample map."""
        if self.scheme == "cenc":
            iv = (self._counter & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big")
            self._counter += 1
        else:
            iv = b""
        subs = self.subsamples(info, bytes(body[at : at + size])) if info.video else []
        ranges: list[tuple[int, int]] = []
        pos = at
        for sub in subs:
            pos += sub.clear
            if sub.protected:
                ranges.append((pos, sub.protected))
            pos += sub.protected
        if not info.video:
            ranges = [(at, size)]
        if self.scheme == "cenc":
            enc = Cipher(self._aes, modes.CTR(iv + bytes(8))).encryptor()
            for start, n in ranges:
                body[start : start + n] = enc.update(bytes(body[start : start + n]))
        else:
            for start, n in ranges:
                self._cbcs(body, start, n, pattern=info.video)
        return iv, subs

    def _cbcs(self, body: bytearray, start: int, n: int, *, pattern: bool) -> None:
        """AES-CBC from the constant IV over one protected range: every block (audio) or
        the first of every ten (video, 1:9); a tail shorter than a block stays clear.

        The pattern's blocks are gathered and put back with 16 strided slices (byte ``j``
        of every block at once), not one slice per block: a 1080p frame has hundreds."""
        if n < 16:
            return
        enc = Cipher(self._aes, modes.CBC(self.iv)).encryptor()
        if not pattern:
            length = n // 16 * 16
            body[start : start + length] = enc.update(bytes(body[start : start + length]))
            return
        step = 16 * (CBCS_CRYPT + CBCS_SKIP)
        count = (n - 16) // step + 1  # blocks that start at start + k*step and fit
        stop = start + step * (count - 1) + 1  # one past the last block's first byte
        gathered = bytearray(16 * count)
        for j in range(16):
            gathered[j::16] = body[start + j : stop + j : step]
        out = enc.update(bytes(gathered))
        for j in range(16):
            body[start + j : stop + j : step] = out[j::16]

    @staticmethod
    def subsamples(info: _TrackInfo, sample: bytes) -> list[Subsample]:
        """The subsample map of one H.264 sample (length-prefixed NAL units)."""
        out: list[Subsample] = []
        clear = 0
        pos = 0
        n = info.length_size
        while pos < len(sample):
            if pos + n > len(sample):
                raise Fmp4Error("an H.264 sample ends inside a NAL length")
            length = int.from_bytes(sample[pos : pos + n], "big")
            nal = sample[pos + n : pos + n + length]
            if len(nal) != length or not length:
                raise Fmp4Error("an H.264 NAL unit runs past its sample")
            kind = nal[0] & 0x1F
            if kind in (NAL_SLICE, NAL_IDR):
                head = info.params.slice_header_bytes(nal)
                protected = (length - head) // 16 * 16
            else:
                info.params.add(nal)  # in-band SPS/PPS (avc3, or a change mid-stream)
                protected = 0
            clear += n + length - protected
            if protected:
                while clear > _MAX_CLEAR:
                    out.append(Subsample(_MAX_CLEAR, 0))
                    clear -= _MAX_CLEAR
                out.append(Subsample(clear, protected))
                clear = 0
            pos += n + length
        while clear > 0:
            take = min(clear, _MAX_CLEAR)
            out.append(Subsample(take, 0))
            clear -= take
        return out
